"""The virtual lab's simulated DUT SECC: the iso15118 SECC coupled to the lab's Plant.

Runs INSIDE the lab process (`[services.secc] module = "v2g_bench.ev.lab_secc"`, `iface = <veth end>`).
The power stage follows the targets it is given:
  - scheduled control mode: EVTargetCurrent (signed: + into the EV) x present DC voltage;
  - dynamic control mode: the SECC decides: charge at min(EV max charge power, stage limit) when the
    EV offers charging, discharge at min(EV max discharge power, stage limit) when it offers discharging;
  - AC: EVPresentActivePower (signed).
Present voltage/current in every response come from `plant.state()`, never from the request (during
precharge, before the contactor closes, the stage's output follows the EV's target voltage, as a real
precharge converter does).

cfg keys: iface (required), protocols (list, default all), tls (bool, default false),
auth (list, default ["EIM"]), max_charge_w / max_discharge_w (default: the plant's limits),
pki_path (the PKI shared with the EV; default: one made here), enforce_tls (default false),
sequence_timeout_s (the SECC's V2G_SECC_Sequence_Timeout; default the stack's 60 s),
ev_iface / ev_netns (only echoed into the ready file as "iso15118", for the harness).
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from v2g_bench.errors import BenchError
from v2g_bench.ev import compat

log = logging.getLogger(__name__)

DEFAULT_PROTOCOLS = ["ISO_15118_20_DC", "ISO_15118_20_AC", "ISO_15118_2", "DIN_SPEC_70121"]


def _make_controller_class():
    compat.import_stack()
    from iso15118.secc.controller.simulator import SimEVSEController
    from iso15118.shared.messages.enums import ControlMode, Protocol
    from iso15118.shared.messages.iso15118_20.common_types import RationalNumber

    class PlantEVSEController(SimEVSEController):
        """EVSE controller whose power stage is the lab Plant."""

        def __init__(self, plant, max_charge_w: float | None = None, max_discharge_w: float | None = None):
            super().__init__()
            self.plant = plant
            self.max_charge_w, self.max_discharge_w = max_charge_w, max_discharge_w
            self.precharge_v: float | None = None
            self.last_setpoint_w = 0.0
            self.mode = "idle"
            self.sessions_ended: list[tuple[str, str]] = []
            self.commands: list[dict] = []

        # --- contactor and stage -------------------------------------------------------------
        async def is_contactor_closed(self):
            self.plant.set_contactor(True)
            return bool(self.plant.state().contactor_closed)

        async def is_contactor_opened(self):
            self.plant.set_power_setpoint(0.0)
            self.plant.set_contactor(False)
            return not self.plant.state().contactor_closed

        async def stop_charger(self) -> None:
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
            if is_precharge:
                self.precharge_v = ev_target_voltage
                self.mode = "precharge"
                return
            ch_lim, dis_lim = self._limits()
            if ev_target_current is not None:
                # scheduled: the EV asks for a current; + into the EV. Only BPT may discharge.
                i = float(ev_target_current)
                if i < 0 and not is_session_bpt:
                    i = 0.0
                p = i * self.plant.state().dc_voltage_v
                self.mode = "scheduled"
            else:
                # dynamic: the charger decides within what the EV offers
                lim = self.ev_data_context.session_limits.dc_limits
                ev_ch = float(lim.max_charge_power or 0.0)
                ev_dis = float(lim.max_discharge_power or 0.0) if is_session_bpt else 0.0
                p = min(ev_ch, ch_lim) if ev_ch > 0 else (-min(ev_dis, dis_lim) if ev_dis > 0 else 0.0)
                self.mode = "dynamic"
            p = max(-dis_lim, min(ch_lim, p))
            self.plant.set_power_setpoint(p)
            self.last_setpoint_w = p

        async def get_ac_charge_loop_params_v20(self, control_mode, selected_service):
            # AC: the EV's present active power request drives the stage (signed)
            p = getattr(self.ev_data_context, "present_active_power", None)
            if p is not None and self.plant.state().contactor_closed:
                ch_lim, dis_lim = self._limits()
                p = max(-dis_lim, min(ch_lim, float(p)))
                self.plant.set_power_setpoint(p)
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
                self.plant.set_power_setpoint(p)
                self.last_setpoint_w, self.mode = p, "ac-2"
            return await super().get_ac_evse_status()

        # --- what the charger reports: the plant, never the request ---------------------------------
        def _refresh(self) -> None:
            st = self.plant.state()
            if not st.contactor_closed and self.precharge_v is not None:
                self.evse_data_context.present_voltage = self.precharge_v
                self.evse_data_context.present_current = 0.0
            else:
                self.evse_data_context.present_voltage = round(st.dc_voltage_v, 2)
                self.evse_data_context.present_current = round(st.dc_current_a, 2)

        async def get_evse_present_voltage(self, protocol):
            self._refresh()
            if protocol in (Protocol.DIN_SPEC_70121, Protocol.ISO_15118_2):
                return await super().get_evse_present_voltage(protocol)
            return RationalNumber.get_rational_repr(self.evse_data_context.present_voltage)

        async def get_evse_present_current(self, protocol):
            self._refresh()
            if protocol in (Protocol.DIN_SPEC_70121, Protocol.ISO_15118_2):
                return await super().get_evse_present_current(protocol)
            return RationalNumber.get_rational_repr(self.evse_data_context.present_current)

        async def get_meter_info_v20(self):
            from iso15118.shared.messages.iso15118_20.common_types import MeterInfo
            import time as _t

            st = self.plant.state()
            return MeterInfo(meter_id="lab-dc-meter", charged_energy_reading_wh=int(st.dc_import_wh),
                             bpt_discharged_energy_reading_wh=int(st.dc_export_wh), meter_timestamp=int(_t.time()))

        async def session_ended(self, current_state: str, reason: str):
            # any end (SessionStop, timeout, closed TCP, garbage): no power, contactor open
            self.plant.set_power_setpoint(0.0)
            self.plant.set_contactor(False)
            self.last_setpoint_w, self.mode, self.precharge_v = 0.0, "idle", None
            self.sessions_ended.append((current_state, reason))

        def status(self) -> dict[str, Any]:
            return {"mode": self.mode, "setpoint_w": self.last_setpoint_w, "precharge_v": self.precharge_v,
                    "sessions_ended": self.sessions_ended[-5:], "sessions_ended_count": len(self.sessions_ended), "commands": len(self.commands)}

    _ = ControlMode
    return PlantEVSEController


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

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
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
    controller = controller_class()(plant, cfg.get("max_charge_w"), cfg.get("max_discharge_w"))
    handler = SECCHandler(exi_codec=codec, evse_controller=controller, config=config)
    task = asyncio.ensure_future(handler.start(iface))
    await asyncio.sleep(0)
    service = SeccService(controller, handler, task, plant, iface)
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
    return service
