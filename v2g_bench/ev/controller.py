"""Our EVControllerInterface for the iso15118 EVCC: every value the EV sends comes from the EVModel
and the session plan; nothing random, nothing fixed. -2/DIN defaults we do not model (evcc IDs,
certificate storage) come from the stack's SimEVController base.
"""
from __future__ import annotations

import time

from v2g_bench.ev import compat

compat.import_stack()

from iso15118.evcc.controller.simulator import SimEVController  # noqa: E402
from iso15118.evcc.evcc_config import EVCCConfig  # noqa: E402
from iso15118.shared.messages.datatypes import (  # noqa: E402
    DCEVChargeParams, PVEVEnergyCapacity, PVEVMaxCurrentLimit, PVEVMaxPowerLimit,
    PVEVMaxVoltageLimit, PVEVTargetCurrent, PVEVTargetVoltage, PVRemainingTimeToFullSOC,
)
from iso15118.shared.messages.enums import DCEVErrorCode, ServiceV20, UnitSymbol  # noqa: E402
from iso15118.shared.messages.iso15118_2.datatypes import DCEVStatus  # noqa: E402
from iso15118.shared.messages.din_spec.datatypes import DCEVStatus as DCEVStatusDINSPEC  # noqa: E402
from iso15118.shared.messages.iso15118_20.ac import (  # noqa: E402
    ACChargeParameterDiscoveryReqParams, BPTACChargeParameterDiscoveryReqParams,
    BPTDynamicACChargeLoopReqParams, BPTScheduledACChargeLoopReqParams, DynamicACChargeLoopReqParams,
    ScheduledACChargeLoopReqParams,
)
from iso15118.shared.messages.iso15118_20.common_messages import (  # noqa: E402
    ChargeProgress, DynamicEVPowerProfile, DynamicScheduleExchangeReqParams, EVPowerProfile,
    EVPowerScheduleEntry, EVPowerScheduleEntryList, PowerToleranceAcceptance, ScheduledEVPowerProfile,
    ScheduledScheduleExchangeReqParams,
)
from iso15118.shared.messages.iso15118_20.common_types import DisplayParameters, RationalNumber  # noqa: E402
from iso15118.shared.messages.iso15118_20.dc import (  # noqa: E402
    BPTDCChargeParameterDiscoveryReqParams, BPTDynamicDCChargeLoopReqParams,
    BPTScheduledDCChargeLoopReqParams, DCChargeParameterDiscoveryReqParams, DynamicDCChargeLoopReqParams,
    ScheduledDCChargeLoopReqParams,
)

from v2g_bench.ev.model import EVModel, PlanCursor  # noqa: E402


def R(x: float) -> RationalNumber:
    return RationalNumber.get_rational_repr(round(float(x), 3))


def _pv(cls, value: float, unit):
    # -2/DIN physical values: value * 10^multiplier, value a short
    mult = 0
    while abs(value) >= 32000 and mult < 3:
        value /= 10
        mult += 1
    return cls(multiplier=mult, value=int(round(value)), unit=unit)


class BenchEVController(SimEVController):
    def __init__(self, config: EVCCConfig, model: EVModel, plan: PlanCursor, *,
                 precharge_tolerance_v: float = 10.0, precharge_max_cycles: int = 100):
        super().__init__(config)
        self.model, self.plan = model, plan
        self.precharge_tolerance_v = precharge_tolerance_v
        self.precharge_max_cycles = precharge_max_cycles
        self.charge_loops = 0
        self.stop_requested = False
        self.evse_present_v: float | None = None
        self.evse_present_a: float | None = None
        self.history: list[dict] = []        # one row per charge-loop cycle: t, soc, asked, got
        self._asked_power = 0.0
        self._t0 = time.monotonic()

    # --- what the charger reported (called by the session for each charge-loop response) --------
    def observe_evse(self, voltage_v: float | None, current_a: float | None) -> None:
        if voltage_v is None or current_a is None:
            return
        self.evse_present_v, self.evse_present_a = voltage_v, current_a
        self.model.observe(voltage_v, current_a)

    # --- plan -----------------------------------------------------------------------------------
    def _power(self) -> float:
        ph = self.plan.current
        return self.model.allowed_power(ph.power_w) if ph else 0.0

    async def continue_charging(self) -> bool:
        self.model.update_soc()
        if self.stop_requested:
            return False
        ph = self.plan.advance(self.model)
        if ph is None:
            return False
        self.charge_loops += 1
        self._asked_power = self.model.allowed_power(ph.power_w)
        self.history.append({"t": time.monotonic() - self._t0, "tm": time.monotonic(), "soc": self.model.soc,
                             "asked_w": self._asked_power, "evse_v": self.evse_present_v,
                             "evse_a": self.evse_present_a, "moved_wh": self.model.moved_wh()})
        return True

    async def ready_to_charge(self) -> bool:
        return not self.plan.done

    async def charge_loop_delay(self) -> int:
        return 0

    async def is_charging_complete(self) -> bool:
        return self.plan.done or self.stop_requested

    async def stop_charging(self) -> None:
        self.stop_requested = True

    # --- -20 parameters -------------------------------------------------------------------------
    def _first_power(self) -> float:
        ph = self.plan.current or (self.plan.phases[0] if self.plan.phases else None)
        return ph.power_w if ph else 0.0

    async def get_charge_params_v20(self, selected_service):
        m = self.model
        v = m.terminal_voltage(0.0)
        dc = DCChargeParameterDiscoveryReqParams(
            ev_max_charge_power=R(m.max_charge_power_w), ev_min_charge_power=R(0),
            ev_max_charge_current=R(m.max_charge_current_a), ev_min_charge_current=R(0),
            ev_max_voltage=R(m.max_voltage_v), ev_min_voltage=R(m.min_voltage_v),
            target_soc=int(round(m.target_soc * 100)))
        ac = ACChargeParameterDiscoveryReqParams(ev_max_charge_power=R(m.max_charge_power_w),
                                                 ev_min_charge_power=R(0))
        svc = selected_service.service
        if svc == ServiceV20.DC:
            return dc
        if svc == ServiceV20.DC_BPT:
            return BPTDCChargeParameterDiscoveryReqParams(
                **dc.dict(), ev_max_discharge_power=R(m.max_discharge_power_w), ev_min_discharge_power=R(0),
                ev_max_discharge_current=R(m.max_discharge_current_a), ev_min_discharge_current=R(0))
        if svc == ServiceV20.AC:
            return ac
        if svc == ServiceV20.AC_BPT:
            return BPTACChargeParameterDiscoveryReqParams(
                **ac.dict(), ev_max_discharge_power=R(m.max_discharge_power_w), ev_min_discharge_power=R(0))
        raise NotImplementedError(f"energy service {svc} is not emulated (v={v:.0f} V)")

    async def get_scheduled_se_params(self, selected_energy_service) -> ScheduledScheduleExchangeReqParams:
        m = self.model
        return ScheduledScheduleExchangeReqParams(
            departure_time=int(m.departure_s),
            ev_target_energy_request=R(max(0.0, m.energy_request_wh())),
            ev_max_energy_request=R(m.max_energy_request_wh()),
            ev_min_energy_request=R(m.min_energy_request_wh()))

    async def get_dynamic_se_params(self, selected_energy_service) -> DynamicScheduleExchangeReqParams:
        m = self.model
        bpt = selected_energy_service.service in (ServiceV20.DC_BPT, ServiceV20.AC_BPT)
        return DynamicScheduleExchangeReqParams(
            departure_time=int(m.departure_s), min_soc=int(round(m.min_soc * 100)),
            target_soc=int(round(m.target_soc * 100)),
            ev_target_energy_request=R(m.energy_request_wh()), ev_max_energy_request=R(m.max_energy_request_wh()),
            ev_min_energy_request=R(m.min_energy_request_wh()),
            ev_max_v2x_energy_request=R(m.max_energy_request_wh()) if bpt else None,
            ev_min_v2x_energy_request=R(m.min_energy_request_wh()) if bpt else None)

    def _profile_entries(self) -> EVPowerScheduleEntryList:
        # the EV's intended power per plan phase; the stack derives BPT_ChannelSelection from the
        # LAST entry's sign, so the session's first direction goes last as a one-entry profile
        p = self._first_power()
        dur = int(sum(ph.duration_s or 3600 for ph in self.plan.phases)) or 3600
        return EVPowerScheduleEntryList(entries=[EVPowerScheduleEntry(duration=max(1, dur), power=R(p))])

    async def process_scheduled_se_params(self, scheduled_params, pause: bool):
        progress = ChargeProgress.STOP if pause else ChargeProgress.START
        tuple0 = scheduled_params.schedule_tuples[0]
        return EVPowerProfile(
            time_anchor=0, entry_list=self._profile_entries(),
            scheduled_profile=ScheduledEVPowerProfile(
                selected_schedule_tuple_id=tuple0.schedule_tuple_id,
                power_tolerance_acceptance=PowerToleranceAcceptance.CONFIRMED)), progress

    async def process_dynamic_se_params(self, dynamic_params, pause: bool):
        progress = ChargeProgress.STOP if pause else ChargeProgress.START
        return EVPowerProfile(time_anchor=0, entry_list=self._profile_entries(),
                              dynamic_profile=DynamicEVPowerProfile()), progress

    # --- DC charge loop ------------------------------------------------------------------------
    async def get_present_voltage(self) -> RationalNumber:
        return R(self.model.terminal_voltage())

    async def get_target_voltage(self) -> RationalNumber:
        return R(self.model.terminal_voltage(0.0))

    async def is_precharged(self, present_voltage_evse) -> bool:
        self.precharge_loop_cycles += 1
        if abs(present_voltage_evse.get_decimal_value() - self.model.terminal_voltage(0.0)) <= self.precharge_tolerance_v:
            return True
        if self.precharge_loop_cycles >= self.precharge_max_cycles:
            raise RuntimeError(f"precharge: charger at {present_voltage_evse.get_decimal_value():.1f} V, "
                               f"battery at {self.model.terminal_voltage(0.0):.1f} V after "
                               f"{self.precharge_loop_cycles} PreChargeReq")
        return False

    def _dc_scheduled(self) -> ScheduledDCChargeLoopReqParams:
        m = self.model
        p = self._asked_power
        # -20 BPT scheduled: a negative EVTargetCurrent asks to discharge (sign convention of ours
        # = the standard's: + into the EV battery)
        return ScheduledDCChargeLoopReqParams(
            ev_target_current=R(p / max(m.terminal_voltage(0.0), 1.0)), ev_target_voltage=R(m.max_voltage_v),
            ev_max_charge_power=R(m.max_charge_power_w), ev_max_charge_current=R(m.max_charge_current_a),
            ev_max_voltage=R(m.max_voltage_v), ev_min_voltage=R(m.min_voltage_v))

    async def get_scheduled_dc_charge_loop_params(self) -> ScheduledDCChargeLoopReqParams:
        return self._dc_scheduled()

    async def get_bpt_scheduled_dc_charge_loop_params(self) -> BPTScheduledDCChargeLoopReqParams:
        m = self.model
        return BPTScheduledDCChargeLoopReqParams(
            **self._dc_scheduled().dict(), ev_max_discharge_power=R(m.max_discharge_power_w),
            ev_max_discharge_current=R(m.max_discharge_current_a))

    def _offer(self) -> tuple[float, float]:
        """(charge W, discharge W >= 0) the EV accepts in this charge loop: the phase's one direction, or with
        `model.offer_both` both within its limits and SOC window (the charger decides)."""
        m = self.model
        p = self._asked_power
        if m.offer_both and self.plan.current is not None:
            return m.allowed_power(m.max_charge_power_w), -m.allowed_power(-m.max_discharge_power_w)
        return max(p, 0.0), max(-p, 0.0)

    def _dyn_common(self) -> dict:
        m = self.model
        p = self._asked_power
        ch, dis = self._offer()
        # dynamic mode: the charger decides; the EV states its needs. The phase's direction and size
        # shape them: a discharge phase asks for a lower target (negative request) and no charging.
        target = m.energy_request_wh() if p >= 0 else min(m.min_energy_request_wh(), -abs(p) / 3600.0 * 60)
        return dict(departure_time=int(m.departure_s), ev_target_energy_request=R(target),
                    ev_max_energy_request=R(m.max_energy_request_wh()),
                    ev_min_energy_request=R(m.min_energy_request_wh()),
                    ev_max_charge_power=R(ch), ev_min_charge_power=R(0),
                    ev_max_charge_current=R(m.max_charge_current_a if ch > 0 else 0),
                    ev_max_voltage=R(m.max_voltage_v), ev_min_voltage=R(m.min_voltage_v))

    async def get_dynamic_dc_charge_loop_params(self) -> DynamicDCChargeLoopReqParams:
        return DynamicDCChargeLoopReqParams(**self._dyn_common())

    async def get_bpt_dynamic_dc_charge_loop_params(self) -> BPTDynamicDCChargeLoopReqParams:
        m = self.model
        _, dis = self._offer()
        return BPTDynamicDCChargeLoopReqParams(
            **self._dyn_common(), ev_max_discharge_power=R(dis), ev_min_discharge_power=R(0),
            ev_max_discharge_current=R(m.max_discharge_current_a if dis > 0 else 0),
            ev_max_v2x_energy_request=R(m.max_energy_request_wh()),
            ev_min_v2x_energy_request=R(m.min_energy_request_wh()))

    # --- AC charge loop ------------------------------------------------------------------------
    async def get_ac_charge_loop_params_v20(self, control_mode, selected_service):
        from iso15118.shared.messages.enums import ControlMode

        m = self.model
        p = self._asked_power
        if control_mode == ControlMode.SCHEDULED:
            # present active power: what the EV draws (+) / feeds (-) right now = what it asks
            sched = ScheduledACChargeLoopReqParams(ev_present_active_power=R(p))
            if selected_service == ServiceV20.AC_BPT:
                return BPTScheduledACChargeLoopReqParams(**sched.dict())
            return sched
        dyn = DynamicACChargeLoopReqParams(
            departure_time=int(m.departure_s), ev_target_energy_request=R(m.energy_request_wh()),
            ev_max_energy_request=R(m.max_energy_request_wh()), ev_min_energy_request=R(m.min_energy_request_wh()),
            ev_max_charge_power=R(max(p, 0.0)), ev_min_charge_power=R(0), ev_present_active_power=R(p),
            ev_present_reactive_power=R(0))
        if selected_service == ServiceV20.AC_BPT:
            return BPTDynamicACChargeLoopReqParams(**dyn.dict(), ev_max_discharge_power=R(max(-p, 0.0)),
                                                   ev_min_discharge_power=R(0))
        return dyn

    # --- -2 / DIN status and display -------------------------------------------------------------
    async def get_display_params(self) -> DisplayParameters:
        return DisplayParameters(present_soc=int(round(self.model.soc * 100)),
                                 min_soc=int(round(self.model.min_soc * 100)),
                                 target_soc=int(round(self.model.target_soc * 100)),
                                 charging_complete=await self.is_charging_complete())

    async def get_dc_ev_status(self) -> DCEVStatus:
        return DCEVStatus(ev_ready=True, ev_error_code=DCEVErrorCode.NO_ERROR,
                          ev_ress_soc=int(round(self.model.soc * 100)))

    async def get_dc_ev_status_dinspec(self) -> DCEVStatusDINSPEC:
        return DCEVStatusDINSPEC(ev_ready=True, ev_error_code=DCEVErrorCode.NO_ERROR,
                                 ev_ress_soc=int(round(self.model.soc * 100)))

    async def get_dc_charge_params(self) -> DCEVChargeParams:
        m = self.model
        i = max(0.0, self._asked_power) / max(m.terminal_voltage(0.0), 1.0)
        return DCEVChargeParams(
            dc_max_current_limit=_pv(PVEVMaxCurrentLimit, m.max_charge_current_a, UnitSymbol.AMPERE),
            dc_max_power_limit=_pv(PVEVMaxPowerLimit, m.max_charge_power_w, UnitSymbol.WATT),
            dc_max_voltage_limit=_pv(PVEVMaxVoltageLimit, m.max_voltage_v, UnitSymbol.VOLTAGE),
            dc_energy_capacity=_pv(PVEVEnergyCapacity, m.capacity_wh, UnitSymbol.WATT_HOURS),
            dc_target_current=_pv(PVEVTargetCurrent, i, UnitSymbol.AMPERE),
            dc_target_voltage=_pv(PVEVTargetVoltage, m.terminal_voltage(0.0), UnitSymbol.VOLTAGE))

    async def get_remaining_time_to_full_soc(self) -> PVRemainingTimeToFullSOC:
        p = max(self._asked_power, 1.0)
        secs = max(0.0, (1.0 - self.model.soc) * self.model.capacity_wh / p * 3600)
        return _pv(PVRemainingTimeToFullSOC, min(secs, 3e6), "s")

    async def welding_detection_has_finished(self) -> bool:
        return True


def _param(ps, name):
    for p in ps.parameters:
        if p.name == name:
            return p.int_value
    return None


class _ServiceSelection:
    """Pick the offered energy service and the parameter set with the wanted control mode."""

    @staticmethod
    def pick(services, wanted_service, control_mode: int):
        from iso15118.shared.messages.iso15118_20.common_messages import SelectedEnergyService

        chosen = next((s for s in services if s.service == wanted_service), services[0])
        sets = chosen.parameter_sets
        fits = [ps for ps in sets if _param(ps, "ControlMode") == control_mode]
        # dynamic: prefer MobilityNeedsMode 1 (the EV provides its needs: it has the model)
        fits.sort(key=lambda ps: 0 if _param(ps, "MobilityNeedsMode") in (None, 1) else 1)
        ps = (fits or sets)[0]
        return SelectedEnergyService(service=chosen.service, is_free=chosen.is_free, parameter_set=ps)


async def _select_energy_service_v20(self, services):
    wanted = next(iter(self.config.supported_energy_services), None)
    return _ServiceSelection.pick(services, wanted, self.wanted_control_mode)


BenchEVController.select_energy_service_v20 = _select_energy_service_v20
BenchEVController.wanted_control_mode = 1
