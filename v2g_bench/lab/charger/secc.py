"""The virtual lab's simulated DUT SECC: the iso15118 SECC coupled to the lab's Plant.

Runs INSIDE the lab process (`[services.secc] module = "v2g_bench.lab.charger.secc"`, `iface = <veth end>`).
The power stage follows the targets it is given:
  - scheduled control mode: EVTargetCurrent (signed: + into the EV) x present DC voltage;
  - dynamic control mode: the SECC decides: charge at min(EV max charge power, stage limit) when the
    EV offers charging, discharge at min(EV max discharge power, stage limit) when it offers discharging;
  - AC: EVPresentActivePower (signed).
Present voltage/current in every response come from `plant.state()`, never from the request (during
precharge, before the contactor closes, the stage's output follows the EV's target voltage, as a real
precharge converter does).

Coupled to the station through the plant's `SimulatedCharger` (v2g_bench.lab.charger.coupling): SessionSetup,
Authorization, the EV's needs (ChargeParameterDiscovery + ScheduleExchange), PowerDelivery and the
session end are reported to it (the station turns them into its transaction and NotifyEVChargingNeeds);
what the stage runs at is `charger.ev_request(...)` = min(EV request, CSMS profile window, ratings);
the DC_ChargeLoopRes limits and the -20 ScheduleExchangeRes schedule come from that same window.
Sign: + = into the EV; ISO 15118-20 discharge magnitudes are converted here.

cfg keys: iface (required), protocols (list, default all), tls (bool, default false),
auth (list, default ["EIM"]), max_charge_w / max_discharge_w (default: the plant's limits),
pki_path (the PKI shared with the EV; default: one made here), enforce_tls (default false),
sequence_timeout_s (the SECC's V2G_SECC_Sequence_Timeout; default the stack's 60 s),
defects (list of names or {name=, params}: switchable defects, v2g_bench.lab.charger.secc_defects; also the
control ops `secc.defect` name= on= params and `secc.defects` clear=),
ev_iface / ev_netns (only echoed into the ready file as "iso15118", for the harness).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from v2g_bench.errors import BenchError
from v2g_bench.ev import compat
from v2g_bench.lab.charger import secc_defects as defects
from v2g_bench.lab.charger.coupling import EVNeeds, charger_for, windows_to_entries

log = logging.getLogger(__name__)

DEFAULT_PROTOCOLS = ["ISO_15118_20_DC", "ISO_15118_20_AC", "ISO_15118_2", "DIN_SPEC_70121"]


class SessionCoupling:
    """The session as the charger's controller sees it: each handled request is reported to the
    plant's SimulatedCharger (-> the OCPP station's transaction and NotifyEVChargingNeeds)."""

    def _init_coupling(self, plant) -> None:
        self.charger = charger_for(plant)
        self.sessions_ended: list[tuple[str, str]] = []
        self._needs_sent = False

    async def set_present_protocol_state(self, state):
        # called after each response went out, with the state that handled the request
        name = type(state).__name__
        cs = getattr(state, "comm_session", None)
        try:
            if name == "SessionSetup":
                self._reset_ev_needs()
                proto = getattr(getattr(cs, "protocol", None), "name", None) or "ISO15118-20"
                self.charger.ev_connected(str(getattr(cs, "evcc_id", None) or "") or None, _proto_name(proto))
            elif name in ("Authorization", "ContractAuthentication") and cs is not None:
                auth = getattr(getattr(cs, "selected_auth_option", None), "value", None) or "EIM"
                self.charger.ev_authorized(str(auth))
            elif name in ("DCChargeParameterDiscovery", "ChargeParameterDiscovery", "ACChargeParameterDiscovery"):
                # -20: departure/energy come with ScheduleExchangeReq; -2/DIN: all is here
                self.charger.ev_needs(self._ev_needs(cs), final=not name.startswith(("DC", "AC")))
            elif name == "ScheduleExchange" and self._needs_sent is False:
                self._needs_sent = True
                self.charger.ev_needs(self._ev_needs(cs), final=True)
        except Exception:      # the EV's session must go on even if the coupling hiccups
            log.exception("charger coupling failed in %s", name)
        return await super().set_present_protocol_state(state)

    def _reset_ev_needs(self) -> None:
        # the stack keeps one EVDataContext across sessions: clear what a new EV must send again
        d = self.ev_data_context
        for k in ("departure_time", "target_energy_request", "target_soc", "max_energy_request",
                  "min_energy_request", "min_soc", "max_v2x_energy_request", "min_v2x_energy_request",
                  "present_soc", "total_battery_capacity"):
            setattr(d, k, None)
        self._needs_sent = False
        self._frozen_present = None

    def _ev_needs(self, cs) -> EVNeeds:
        from iso15118.shared.messages.enums import ControlMode

        d = self.ev_data_context
        service = getattr(getattr(getattr(cs, "selected_energy_service", None), "service", None), "name", None)
        ac = (service or "").startswith("AC") or getattr(d, "current_type", None) == "AC"
        lim = _Fields(d.rated_limits.ac_limits if ac else d.rated_limits.dc_limits)
        ctrl = getattr(cs, "control_mode", None)
        mode = None if ctrl is None else ("scheduled" if ctrl == ControlMode.SCHEDULED else "dynamic")
        pct = lambda x: None if x is None else float(x) / 100.0          # noqa: E731
        neg = lambda x: None if x is None else -abs(float(x))             # noqa: E731  ISO magnitude -> bench sign
        flt = lambda x: None if x is None else float(x)                   # noqa: E731
        bpt = service in ("DC_BPT", "AC_BPT")
        return EVNeeds(
            protocol=_proto_name(getattr(getattr(cs, "protocol", None), "name", "") or ""),
            service=service or "DC", control_mode=mode,
            evcc_id=str(getattr(cs, "evcc_id", None) or "") or None,
            max_charge_power_w=flt(lim.max_charge_power), min_charge_power_w=flt(lim.min_charge_power),
            max_charge_current_a=flt(lim.max_charge_current), min_charge_current_a=flt(lim.min_charge_current),
            max_voltage_v=flt(lim.max_voltage), min_voltage_v=flt(lim.min_voltage),
            max_discharge_power_w=neg(lim.max_discharge_power) if bpt else None,
            min_discharge_power_w=neg(lim.min_discharge_power) if bpt else None,
            max_discharge_current_a=neg(lim.max_discharge_current) if bpt else None,
            min_discharge_current_a=neg(lim.min_discharge_current) if bpt else None,
            target_soc=pct(d.target_soc), min_soc=pct(d.min_soc), present_soc=pct(d.present_soc),
            departure_s=flt(d.departure_time), target_energy_wh=flt(d.target_energy_request),
            max_energy_wh=flt(d.max_energy_request), min_energy_wh=flt(d.min_energy_request),
            max_v2x_energy_wh=flt(d.max_v2x_energy_request), min_v2x_energy_wh=flt(d.min_v2x_energy_request),
            capacity_wh=flt(d.total_battery_capacity))

    async def get_evse_status(self):
        # -20: when the charger ends the session (CSMS RequestStopTransaction ...), tell the EV
        s = self.charger.session
        if s is not None and s.stop_requested is not None and not defects.active("no_terminate_notification"):
            from iso15118.shared.messages.iso15118_20.common_types import EVSENotification, EVSEStatus
            return EVSEStatus(notification_max_delay=0, evse_notification=EVSENotification.TERMINATE)
        return await super().get_evse_status()

    async def session_ended(self, current_state: str, reason: str):
        # any end (SessionStop, timeout, closed TCP, garbage): no power, contactor open
        self.plant.set_power_setpoint(0.0)
        self.plant.set_contactor(False)
        self.last_setpoint_w, self.mode, self.precharge_v = 0.0, "idle", None
        self.sessions_ended.append((current_state, reason))
        self.charger.ev_session_ended(current_state, reason)     # -> the station ends its transaction


class EVSELimits:
    """What the EVSE states it can do: the stage's ratings within the CSMS window (ISO magnitudes)."""

    def _stage(self):
        st = self.plant.cfg.stage
        ch = min(st.charge.p_max_w, self.max_charge_w if self.max_charge_w is not None else float("inf"))
        dis = min(st.discharge.p_max_w, self.max_discharge_w if self.max_discharge_w is not None else float("inf"))
        return st, ch, dis

    def _evse_limits(self) -> dict:
        """EVSE limits (ISO magnitudes, >= 0) = ratings within the CSMS window now."""
        st, ch, dis = self._stage()
        w = self.charger.window()
        ch, dis = min(ch, w.charge_cap_w), min(dis, w.discharge_cap_w)
        v = max(self.plant.state().dc_voltage_v, st.charge.v_min_v, 1.0)
        lim = {"max_charge_power": ch, "min_charge_power": 0.0,
               "max_charge_current": min(st.charge.i_max_a, ch / v), "max_voltage": st.charge.v_max_v,
               "min_voltage": st.discharge.v_min_v, "max_discharge_power": dis, "min_discharge_power": 0.0,
               "max_discharge_current": min(st.discharge.i_max_a, dis / v)}
        beyond = defects.active("loop_limits_beyond_cpd")
        if beyond:
            for k in ("max_charge_power", "max_discharge_power", "max_charge_current", "max_discharge_current"):
                lim[k] = lim[k] * beyond["factor"] + 1.0
        return lim

    async def get_dc_charge_params_v20(self, energy_service):
        from iso15118.shared.messages.enums import ServiceV20
        from iso15118.shared.messages.iso15118_20.common_types import RationalNumber
        from iso15118.shared.messages.iso15118_20.dc import (
            BPTDCChargeParameterDiscoveryResParams, DCChargeParameterDiscoveryResParams)
        st, ch, dis = self._stage()
        over = defects.active("overstate_ratings")
        k = over["factor"] if over else 1.0
        ch, dis = ch * k, dis * k
        R = RationalNumber.get_rational_repr
        dc = DCChargeParameterDiscoveryResParams(
            evse_max_charge_power=R(ch), evse_min_charge_power=R(0), evse_max_charge_current=R(st.charge.i_max_a),
            evse_min_charge_current=R(0), evse_max_voltage=R(st.charge.v_max_v), evse_min_voltage=R(st.charge.v_min_v),
            evse_power_ramp_limit=R(min(self.plant.cfg.stage.ramp_w_per_s, 32000)))
        if energy_service == ServiceV20.DC:
            return dc
        if energy_service == ServiceV20.DC_BPT:
            return BPTDCChargeParameterDiscoveryResParams(
                **dc.dict(), evse_max_discharge_power=R(dis), evse_min_discharge_power=R(0),
                evse_max_discharge_current=R(st.discharge.i_max_a), evse_min_discharge_current=R(0))
        return await super().get_dc_charge_params_v20(energy_service)

    async def get_dc_charge_loop_params_v20(self, control_mode, selected_service):
        # the limits in DC_ChargeLoopRes follow the CSMS window (EVSEMaximumCharge/DischargePower ...)
        self.evse_data_context.session_limits.dc_limits.update_from_dict(self._evse_limits())
        return await super().get_dc_charge_loop_params_v20(control_mode, selected_service)

    async def is_evse_power_limit_achieved(self) -> bool:
        s = self.charger.session
        return bool(s is not None and s.limited)


class ScheduleOffer:
    """-20 ScheduleExchangeRes: the CSMS's composite schedule (scheduled) or the EV's own needs (dynamic)."""

    async def get_scheduled_se_params(self, selected_energy_service, schedule_exchange_req):
        """The offered ScheduleTuple carries the composite schedule of the CSMS's profiles:
        ChargingSchedule = charge limit per period, DischargingSchedule = discharge limit
        (negative Power: -20 sign, + into the EV)."""
        import time as _t

        from iso15118.shared.messages.enums import ServiceV20
        from iso15118.shared.messages.iso15118_20.common_messages import (
            PowerSchedule, PowerScheduleEntry, PowerScheduleEntryList)
        from iso15118.shared.messages.iso15118_20.common_types import RationalNumber
        params = await super().get_scheduled_se_params(selected_energy_service, schedule_exchange_req)
        dep = self.ev_data_context.departure_time
        horizon = int(min(max(float(dep or 0) or 86400.0, 60.0), 86400.0))
        _, ch, dis = self._stage()
        entries = windows_to_entries(self.charger.schedule(horizon), horizon)[:1024]
        anchor = int(_t.time())
        R = RationalNumber.get_rational_repr
        charge = [PowerScheduleEntry(duration=d, power=R(round(min(w.charge_cap_w, ch), 1))) for d, w in entries]
        discharge = [PowerScheduleEntry(duration=d, power=R(-round(min(w.discharge_cap_w, dis), 1)))
                     for d, w in entries]
        tup = params.schedule_tuples[0]
        tup.charging_schedule.power_schedule = PowerSchedule(
            time_anchor=anchor, schedule_entry_list=PowerScheduleEntryList(entries=charge))
        if tup.discharging_schedule is not None:
            if selected_energy_service.service in (ServiceV20.DC_BPT, ServiceV20.AC_BPT):
                tup.discharging_schedule.power_schedule = PowerSchedule(
                    time_anchor=anchor, schedule_entry_list=PowerScheduleEntryList(entries=discharge))
            else:
                tup.discharging_schedule = None
        self.offered_schedule = [(d, w.lo_w, w.hi_w) for d, w in entries]
        return params

    async def get_dynamic_se_params(self, selected_energy_service, schedule_exchange_req):
        params = await super().get_dynamic_se_params(selected_energy_service, schedule_exchange_req)
        d = self.ev_data_context       # echo the EV's own mobility needs, not the stack's constants
        if d.departure_time is not None:
            params.departure_time = int(d.departure_time)
        if d.target_soc is not None and d.min_soc is not None and d.min_soc <= d.target_soc:
            params.min_soc, params.target_soc = int(d.min_soc), int(d.target_soc)
        return params


class PowerStage:
    """Contactor and power stage: the EV's targets, within min(EV, CSMS profile, ratings), drive the plant."""

    async def is_contactor_closed(self):
        self.plant.set_contactor(True)
        if self.charger.session is not None:
            self.charger.ev_power_delivery(True)
        return bool(self.plant.state().contactor_closed)

    async def is_contactor_opened(self):
        if self.charger.session is not None:
            self.charger.ev_power_delivery(False)
        self.plant.set_power_setpoint(0.0)
        self.plant.set_contactor(False)
        return not self.plant.state().contactor_closed

    async def stop_charger(self) -> None:
        if self.charger.session is not None:
            self.charger.ev_power_delivery(False)
        self.plant.set_power_setpoint(0.0)
        self.last_setpoint_w, self.mode = 0.0, "stopped"

    def _limits(self) -> tuple[float, float]:
        st = self.plant.state()
        ch, dis = st.charge_limit_w, st.discharge_limit_w
        if self.max_charge_w is not None:
            ch = min(ch, self.max_charge_w)
        if self.max_discharge_w is not None:
            dis = min(dis, self.max_discharge_w)
        return ch, dis

    @compat.fix_send_charging_command
    async def send_charging_command(self, ev_target_voltage, ev_target_current, is_precharge=False,
                                    is_session_bpt=False):
        self.commands.append({"v": ev_target_voltage, "i": ev_target_current, "precharge": is_precharge,
                              "bpt": is_session_bpt})
        self.commands_count += 1
        if len(self.commands) > 200:           # a long lab life: keep the last ones, count them all
            del self.commands[:100]
        if is_precharge:
            self.precharge_v = ev_target_voltage
            self.mode = "precharge"
            return
        lim = self.ev_data_context.session_limits.dc_limits
        ev_ch = abs(float(lim.max_charge_power or 0.0))
        ev_dis = abs(float(lim.max_discharge_power or 0.0)) if is_session_bpt else 0.0
        exceed = defects.active("exceed_discharge_limit")
        if exceed and ev_dis > 0:
            ev_dis *= exceed["factor"]             # the defect: the EV's limit is not respected
        if ev_target_current is not None:
            # scheduled: the EV asks for a current; + into the EV. Only BPT may discharge. It gets
            # at most what it asked, in that direction, within its own power limits.
            i = float(ev_target_current)
            if i < 0 and not is_session_bpt:
                i = 0.0
            request = i * self.plant.state().dc_voltage_v
            if exceed and request < 0:
                request = -ev_dis
            lo = max(min(request, 0.0), -ev_dis) if ev_dis > 0 else min(request, 0.0)
            hi = min(max(request, 0.0), ev_ch) if ev_ch > 0 else max(request, 0.0)
            self.mode = "scheduled"
        else:
            # dynamic: the charger decides within what the EV offers (charge if it offers charging)
            request = ev_ch if ev_ch > 0 else -ev_dis
            lo, hi = -ev_dis, ev_ch
            self.mode = "dynamic"
        # min(EV, CSMS profile, ratings): the charger drives the stage (setpoint + caps)
        p = self.charger.ev_request(request, lo, hi)
        self.last_setpoint_w = self.granted_w = p

    async def get_ac_charge_loop_params_v20(self, control_mode, selected_service):
        # AC: the EV's present active power request drives the stage (signed)
        p = getattr(self.ev_data_context, "present_active_power", None)
        if p is not None and self.plant.state().contactor_closed:
            ch_lim, dis_lim = self._limits()
            p = max(-dis_lim, min(ch_lim, float(p)))
            p = self.charger.ev_request(p, min(p, 0.0), max(p, 0.0))    # within the CSMS window
            self.last_setpoint_w, self.mode = p, "ac"
        return await super().get_ac_charge_loop_params_v20(control_mode, selected_service)

    async def get_ac_evse_status(self):
        # -2 AC has no power request: the EV's on-board charger draws up to its EVMaxCurrent on
        # every phase. ChargingStatus polls this each loop, so the stage follows it here.
        if self.plant.state().contactor_closed and self.mode != "ac":
            lim = self.ev_data_context.rated_limits.ac_limits      # EVMaxCurrent of the -2 CPD
            i_max = float(getattr(lim, "max_charge_current", None) or 0.0)
            st = self.plant.state()
            ch_lim, _ = self._limits()
            p = min(ch_lim, i_max * st.ac_voltage_v * 3)
            p = self.charger.ev_request(p, 0.0, p)                       # within the CSMS window
            self.last_setpoint_w, self.mode = p, "ac-2"
        return await super().get_ac_evse_status()


class PresentValues:
    """What the charger reports: the plant, never the request."""

    def _refresh(self) -> None:
        frozen = getattr(self, "_frozen_present", None)
        if defects.active("stale_present_values") and frozen is not None:
            self.evse_data_context.present_voltage, self.evse_data_context.present_current = frozen
            return
        st = self.plant.state()
        if not st.contactor_closed and self.precharge_v is not None:
            self.evse_data_context.present_voltage = self.precharge_v
            self.evse_data_context.present_current = 0.0
        else:
            self.evse_data_context.present_voltage = round(st.dc_voltage_v, 2)
            self.evse_data_context.present_current = round(st.dc_current_a, 2)
            if st.contactor_closed:      # the defect freezes the first value seen with power flowing
                self._frozen_present = (self.evse_data_context.present_voltage,
                                        self.evse_data_context.present_current)

    async def get_evse_present_voltage(self, protocol):
        from iso15118.shared.messages.enums import Protocol
        from iso15118.shared.messages.iso15118_20.common_types import RationalNumber
        self._refresh()
        if protocol in (Protocol.DIN_SPEC_70121, Protocol.ISO_15118_2):
            return await super().get_evse_present_voltage(protocol)
        return RationalNumber.get_rational_repr(self.evse_data_context.present_voltage)

    async def get_evse_present_current(self, protocol):
        from iso15118.shared.messages.enums import Protocol
        from iso15118.shared.messages.iso15118_20.common_types import RationalNumber
        self._refresh()
        if protocol in (Protocol.DIN_SPEC_70121, Protocol.ISO_15118_2):
            return await super().get_evse_present_current(protocol)
        return RationalNumber.get_rational_repr(self.evse_data_context.present_current)

    async def get_meter_info_v20(self):
        import time as _t

        from iso15118.shared.messages.iso15118_20.common_types import MeterInfo
        st = self.plant.state()
        return MeterInfo(meter_id="lab-dc-meter", charged_energy_reading_wh=int(st.dc_import_wh),
                         bpt_discharged_energy_reading_wh=int(st.dc_export_wh), meter_timestamp=int(_t.time()))


def _make_controller_class():
    """The stack's SimEVSEController with the plant behind it, one mixin per concept."""
    compat.import_stack()
    from iso15118.secc.controller.simulator import SimEVSEController

    def __init__(self, plant, max_charge_w: float | None = None, max_discharge_w: float | None = None):
        SimEVSEController.__init__(self)
        self.plant = plant
        self.max_charge_w, self.max_discharge_w = max_charge_w, max_discharge_w
        self.precharge_v: float | None = None
        self.last_setpoint_w = 0.0
        self.mode = "idle"
        self.commands: list[dict] = []
        self._init_coupling(plant)
        self.charger.set_rating("secc", max_charge_w, max_discharge_w)
        self.granted_w = 0.0
        self.commands_count = 0
        self.offered_schedule: list = []
        self._frozen_present = None

    def status(self) -> dict[str, Any]:
        return {"mode": self.mode, "setpoint_w": self.last_setpoint_w, "precharge_v": self.precharge_v,
                "sessions_ended": self.sessions_ended[-5:], "sessions_ended_count": len(self.sessions_ended),
                "commands": self.commands_count, "charger": self.charger.status(),
                "defects": defects.snapshot()}

    return type("PlantEVSEController",
                (SessionCoupling, EVSELimits, ScheduleOffer, PowerStage, PresentValues, SimEVSEController),
                {"__init__": __init__, "status": status, "__doc__": "EVSE controller whose power stage is the lab Plant."})


class _Fields:
    """Attribute access that gives None for what a limits object of the stack does not have (the AC
    and DC ChargeParameterDiscovery limits have different fields)."""

    def __init__(self, obj):
        self._obj = obj

    def __getattr__(self, name):
        return getattr(self._obj, name, None)


def _proto_name(stack_name: str) -> str:
    """iso15118 Protocol enum name -> ours ("ISO_15118_20_DC" -> "ISO15118-20")."""
    n = stack_name.upper()
    if "15118_20" in n:
        return "ISO15118-20"
    if "15118_2" in n:
        return "ISO15118-2"
    if "DIN" in n:
        return "DIN70121"
    return stack_name or "?"


_controller_cls = None


def controller_class():
    global _controller_cls
    if _controller_cls is None:
        _controller_cls = _make_controller_class()
    return _controller_cls


@dataclass
class SeccService:
    controller: Any
    handler: Any
    task: asyncio.Task
    plant: Any
    iface: str
    _stopped: bool = field(default=False)
    watchdog: Any = None

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.watchdog is not None:
            self.watchdog.cancel()
        self.task.cancel()
        await asyncio.wait({self.task}, timeout=3.0)
        for srv in (getattr(self.handler, "tcp_server_handler", None),):
            if srv is not None and not srv.done():
                srv.cancel()
        for s in getattr(self.handler, "comm_sessions", {}).values():
            s[1].cancel()
        udp = getattr(self.handler, "udp_server", None)
        if udp is not None and getattr(udp, "_transport", None) is not None:
            udp._transport.close()
        # safe state: no power, contactor open
        self.plant.set_power_setpoint(0.0)
        self.plant.set_contactor(False)


_sequence_timeout_s: float | None = None


def set_sequence_timeout(seconds: float) -> None:
    """The simulated DUT's V2G_SECC_Sequence_Timeout (stack default 60 s) for every protocol.

    A lab knob: misbehaviour tests (delay, stop answering) probe it without waiting a minute. The
    stack's Timeouts are Enums (not settable), so the SECC states' `create_next_message` is wrapped:
    a SECC state (module iso15118.secc.*) asking for the 60 s sequence timeout gets `seconds`.
    """
    global _sequence_timeout_s
    if not 0.5 <= seconds <= 600:
        raise BenchError(f"sequence_timeout_s {seconds:g} out of 0.5..600", where="services.secc.sequence_timeout_s")
    _sequence_timeout_s = seconds
    from iso15118.shared.states import State

    if getattr(State.create_next_message, "_v2g_bench_seq", False):
        return
    original = State.create_next_message

    def create_next_message(self, *args, **kwargs):
        if _sequence_timeout_s is not None and type(self).__module__.startswith("iso15118.secc"):
            if "next_msg_timeout" in kwargs:
                if float(kwargs["next_msg_timeout"]) == 60.0:
                    kwargs["next_msg_timeout"] = _sequence_timeout_s
            elif len(args) >= 3 and float(args[2]) == 60.0:
                args = args[:2] + (_sequence_timeout_s,) + args[3:]
        return original(self, *args, **kwargs)

    create_next_message._v2g_bench_seq = True
    State.create_next_message = create_next_message


async def start_service(plant, cfg: dict, ctx) -> SeccService:
    iface = cfg.get("iface")
    if not iface:
        raise BenchError("services.secc.iface missing", where="lab config [services.secc]",
                         fix="set it to the SECC's veth end (never the host NIC)")
    compat.apply_all()
    from v2g_bench.ev.codec import shared_codec

    codec = await asyncio.to_thread(shared_codec, cfg.get("codec", "jar"))  # JVM start off the loop
    from iso15118.secc import SECCHandler
    from iso15118.secc.secc_settings import Config
    from iso15118.shared.settings import shared_settings
    from iso15118.shared.utils import load_requested_auth_modes, load_requested_protocols

    if cfg.get("sequence_timeout_s") is not None:
        set_sequence_timeout(float(cfg["sequence_timeout_s"]))
    tls = bool(cfg.get("tls", False))
    if tls:
        from v2g_bench.ev.pki import ensure_pki
        await asyncio.to_thread(ensure_pki, cfg.get("pki_path"))
    shared_settings.setdefault("PKI_PATH", "/nonexistent/")
    shared_settings.update({"MESSAGE_LOG_JSON": False, "MESSAGE_LOG_EXI": False,
                            "ENABLE_TLS_1_3": bool(cfg.get("tls13", tls))})
    # tls: TLS offered to an EV that asks for it in SDP; enforce_tls: plain TCP refused
    config = Config(iface=iface, log_level="WARNING", enforce_tls=bool(cfg.get("enforce_tls", False)), free_charging_service=True,
                    supported_protocols=load_requested_protocols(list(cfg.get("protocols", DEFAULT_PROTOCOLS))),
                    supported_auth_options=load_requested_auth_modes(
                        compat.secc_auth_modes(tls, list(cfg.get("auth", ["EIM"])))),
                    standby_allowed=False)
    for d in cfg.get("defects", []) or []:     # defects switched on from the lab config
        if isinstance(d, str):
            defects.enable(d)
        elif isinstance(d, dict) and "name" in d:
            defects.enable(d["name"], **{k: v for k, v in d.items() if k != "name"})
        else:
            raise BenchError(f"services.secc.defects entry {d!r}", where="services.secc.defects",
                             fix='a defect name or {name = "...", <param> = ...}')
    controller = controller_class()(plant, cfg.get("max_charge_w"), cfg.get("max_discharge_w"))
    handler = SECCHandler(exi_codec=codec, evse_controller=controller, config=config)
    task = asyncio.ensure_future(handler.start(iface))
    await asyncio.sleep(0)
    service = SeccService(controller, handler, task, plant, iface)
    service.watchdog = asyncio.ensure_future(compat.keep_sdp_answering(handler))   # stack defect, see there
    if ctx is not None and isinstance(getattr(ctx, "ready", None), dict):
        # the ready file tells the harness (and EVEmulator.open) where the wire is
        ctx.ready["iso15118"] = {"secc_iface": iface, "ev_iface": cfg.get("ev_iface"),
                                 "ev_netns": cfg.get("ev_netns"), "tls": tls,
                                 "sequence_timeout_s": cfg.get("sequence_timeout_s", 60),
                                 "pki_path": shared_settings["PKI_PATH"].rstrip("/") if tls else None,
                                 "protocols": list(cfg.get("protocols", DEFAULT_PROTOCOLS))}
    if ctx is not None and hasattr(ctx, "register_op"):
        async def secc_status(**_kw):
            return {"iface": iface, "running": not task.done(), **controller.status()}
        ctx.register_op("secc_status", secc_status)

        async def secc_defect(name: str, on: bool = True, **params):
            # a switchable defect of this SECC (v2g_bench.lab.charger.secc_defects); takes effect at
            # the next message, so switch it between sessions
            if on:
                return {"name": name, "on": True, "params": defects.enable(name, **params)}
            defects.disable(name)
            return {"name": name, "on": False}

        async def secc_defects(clear: bool = False):
            if clear:
                defects.disable()
            return {"active": defects.snapshot(),
                    "known": {d.name: {"what": d.what, "breaks": d.breaks, "params": dict(d.params)}
                              for d in defects.DEFECTS.values()}}
        async def secc_request_stop(reason: str = "Local"):
            # the charger ends the EV's session on its own (operator / fault): EVSENotification Terminate
            return {"stopped": controller.charger.request_stop(reason)}
        ctx.register_op("secc.request_stop", secc_request_stop)
        ctx.register_op("secc.defect", secc_defect)
        ctx.register_op("secc.defects", secc_defects)
    return service
