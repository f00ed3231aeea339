"""Smart charging of the simulated station (block K; 2.1 blocks Q and R's power effect): profiles in,
composite schedules and profile reports out, the power stage driven by the profile window, and the
EV's charging needs forwarded (K15/K18, Q01).

During an EV session the station does not drive the stage; it gives the charger its profile window
(`current_window`) and composite schedule, and tells it when they change (`apply_now`)."""
from __future__ import annotations

import asyncio
import datetime as dt
import math
from typing import Any

from ocpp.charge_point import camel_to_snake_case

from v2g_bench.lab.charger.coupling import EVNeeds
from v2g_bench.lab.charger.profile_stack import PowerWindow, iso

from .config import iso_ms, utcnow


class SmartChargingMixin:
    # -- K01 / K10 / K09 ----------------------------------------------------------------------------
    def set_profile(self, evse_id: int, profile: dict) -> tuple[str, str]:
        if self.defects.on("accept_invalid_profile"):
            self.profiles.installed.append((evse_id, profile))      # no checks at all
            self.apply_now()
            return "Accepted", ""
        if evse_id not in (0, self.cfg.evse_id):
            return "Rejected", f"no EVSE {evse_id}"
        if self.device.get("SmartChargingCtrlr", "Enabled") != "true":
            return "Rejected", "smart charging is disabled"
        unit = profile["chargingSchedule"][0]["chargingRateUnit"]
        if unit not in self.device.get("SmartChargingCtrlr", "ChargingScheduleChargingRateUnit").split(","):
            return "Rejected", f"chargingRateUnit {unit} not supported"
        why = self._unsupported_21(profile)
        if why and not self.defects.on("accept_unsupported_feature"):
            return "Rejected", why
        if self.defects.on("charging_only_ignores_limit"):
            profile = _without_charging_only_limits(profile)
        if self.defects.on("profile_duration_ignored"):
            profile = {**profile, "chargingSchedule": [{k: v for k, v in s.items() if k != "duration"}
                                                       for s in profile["chargingSchedule"]]}
        status, reason = self.profiles.add(evse_id, profile, active_tx=self.tx_id)
        if status == "Accepted":
            self.apply_now()
            if profile.get("chargingProfileKind") == "Dynamic" and profile.get("dynUpdateInterval"):
                self._spawn(self._pull_dynamic(profile["id"], float(profile["dynUpdateInterval"])))
        return status, reason

    # -- 2.1 K28 dynamic profiles --------------------------------------------------------------------
    def _dynamic(self, profile_id: int) -> dict | None:
        for _, p in self.profiles.installed:
            if p["id"] == profile_id and p.get("chargingProfileKind") == "Dynamic":
                return p
        return None

    def update_dynamic(self, profile_id: int, update: dict) -> str:
        """UpdateDynamicSchedule (push) / a PullDynamicScheduleUpdate answer: the Dynamic profile's one period
        takes the new limit / setpoint / dischargeLimit."""
        p = self._dynamic(profile_id)
        if p is None:
            return "Rejected"
        if not self.defects.on("dynamic_update_ignored"):
            period = p["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            period.update({k: v for k, v in update.items() if k != "customData"})
            p["dynUpdateTime"] = iso(utcnow())
            self.apply_now()
        return "Accepted"

    async def _pull_dynamic(self, profile_id: int, interval_s: float) -> None:
        """K28.FR: the station asks for the Dynamic profile's update every dynUpdateInterval while it exists."""
        while self._dynamic(profile_id) is not None and self.online:
            r = await self._call("PullDynamicScheduleUpdate", charging_profile_id=profile_id)
            if r.status == "Accepted" and r.schedule_update:
                from v2g_bench.csms import compat
                self.update_dynamic(profile_id, compat.snake_to_camel_case(r.schedule_update))
            await asyncio.sleep(max(interval_s, 0.5))

    def _unsupported_21(self, profile: dict) -> str:
        """2.1 (K01, Q): a profile that uses a feature this station declares unsupported in its device model
        is refused (K_130..K_135, Q_123); a LocalFrequency period needs its frequency-watt curve (Q_119)."""
        if self.version != "2.1":
            return ""
        dm = self.device.get
        purpose = profile["chargingProfilePurpose"]
        if purpose in ("PriorityCharging", "LocalGeneration") and purpose not in dm(
                "SmartChargingCtrlr", "SupportedAdditionalPurposes").split(","):
            return f"chargingProfilePurpose {purpose} is not supported"
        modes = dm("V2XChargingCtrlr", "SupportedOperationModes").split(",")
        if profile.get("chargingProfileKind") == "Dynamic" and any(
                len(s.get("chargingSchedulePeriod") or []) != 1 for s in profile.get("chargingSchedule") or []):
            return "a Dynamic profile has exactly one chargingSchedulePeriod (its values are updated)"
        for sched in profile.get("chargingSchedule") or []:
            for key, var in (("useLocalTime", "SupportsUseLocalTime"), ("randomizedDelay", "SupportsRandomizedDelay"),
                             ("limitAtSoC", "SupportsLimitAtSoC")):
                if sched.get(key) not in (None, False, 0) and dm("SmartChargingCtrlr", var) != "true":
                    return f"{key} is not supported ({var} = false)"
            for p in sched.get("chargingSchedulePeriod") or []:
                if p.get("evseSleep") and dm("SmartChargingCtrlr", "SupportsEvseSleep") != "true":
                    return "evseSleep is not supported (SupportsEvseSleep = false)"
                mode = p.get("operationMode")
                if mode is not None and mode not in modes:
                    return f"operationMode {mode} is not supported"
                if mode == "LocalFrequency" and len(p.get("v2xFreqWattCurve") or []) < 2:
                    return "a LocalFrequency period needs a v2xFreqWattCurve of at least 2 points"
        return ""

    def clear_profiles(self, profile_id, criteria: dict) -> str:
        if self.defects.on("clear_not_applied"):
            return "Accepted"
        n = self.profiles.clear(profile_id, criteria.get("evse_id"), criteria.get("charging_profile_purpose"),
                                criteria.get("stack_level"))
        self.apply_now()
        return "Accepted" if (n or self.defects.on("clear_always_accepted")) else "Unknown"

    def get_profiles(self, request_id: int, criteria: dict, evse_id) -> str:
        found = self.profiles.query(evse_id, criteria.get("charging_profile_purpose"),
                                    criteria.get("charging_profile_id"))
        if criteria.get("stack_level") is not None:
            found = [(e, p) for e, p in found if p["stackLevel"] == criteria["stack_level"]]
        if criteria.get("charging_limit_source") and "CSO" not in criteria["charging_limit_source"]:
            found = []                     # every profile here came from the CSMS (source CSO)
        if found and not self.defects.on("report_profiles_missing"):
            self._spawn(self.report_profiles(request_id, found))
        return "Accepted" if found else "NoProfiles"

    async def report_profiles(self, request_id: int, found) -> None:
        await asyncio.sleep(0.05)        # after our CALLRESULT
        by_evse: dict[int, list] = {}
        for e, p in found:
            by_evse.setdefault(e, []).append(p)
        items = list(by_evse.items())
        for i, (e, profs) in enumerate(items):
            await self._call("ReportChargingProfiles", request_id=request_id, charging_limit_source="CSO",
                             evse_id=e, tbc=i < len(items) - 1,
                             charging_profile=[camel_to_snake_case(p) for p in profs])

    # -- K08 composite schedule -------------------------------------------------------------------------
    def _composite(self, evse_id: int, start: dt.datetime, duration_s: int):
        profiles = self.profiles
        if self.defects.on("composite_ignores_station_max"):
            from v2g_bench.lab.charger.profile_stack import ProfileStack
            profiles = ProfileStack()
            profiles.installed = [(e, p) for e, p in self.profiles.installed
                                  if p["chargingProfilePurpose"] != "ChargingStationMaxProfile"]
        return profiles.composite(evse_id or self.cfg.evse_id, start, int(duration_s), tx_id=self.tx_id,
                                  tx_start=self.tx_start, volts=self._volts(), station_max_w=self.cfg.max_charge_w,
                                  station_max_discharge_w=self.cfg.max_discharge_w)

    def _composite_windows(self, duration_s: int):
        """For the SECC's -20 ScheduleExchangeRes: [(offset_s, window)] from now, W, bench sign."""
        return self._composite(self.cfg.evse_id, utcnow(), duration_s)

    def composite_schedule(self, evse_id: int, duration: int, unit: str) -> dict:
        # scheduleStart on the next whole second: every profile set up to now applies from period 0
        now = utcnow()
        start = now.replace(microsecond=0) + (dt.timedelta(seconds=1) if now.microsecond else dt.timedelta(0))
        k = self._volts() if unit == "A" else 1.0
        periods = []
        for off, w in self._composite(evse_id, start, duration):
            if self.version == "2.0.1":
                lim = w.setpoint_w if (w.setpoint_w is not None and w.setpoint_w < 0) else w.hi_w
                periods.append({"start_period": off, "limit": round(lim / k, 1)})
            else:
                p: dict[str, Any] = {"start_period": off, "limit": round(max(w.hi_w, 0.0) / k, 1)}
                if w.setpoint_w is not None:
                    p.update(operation_mode="CentralSetpoint", setpoint=round(w.setpoint_w / k, 1))
                if math.isfinite(w.lo_w) and w.lo_w < 0:
                    p["discharge_limit"] = round(w.lo_w / k, 1)
                periods.append(p)
        if self.defects.on("composite_wrong_duration"):
            duration = max(0, duration - 60)
        return {"evse_id": evse_id, "duration": duration, "schedule_start": iso(start),
                "charging_rate_unit": unit, "charging_schedule_period": periods}

    # -- the power stage ------------------------------------------------------------------------------
    def ev_wanted_w(self) -> float:
        ev = self.cfg.ev
        soc = self.plant.state().soc
        want = min(ev["max_charge_w"], self.cfg.max_charge_w)
        if self.cfg.default_power_w is not None:
            want = min(want, self.cfg.default_power_w)
        return want if soc < ev.get("target_soc", 1.0) else 0.0

    def current_window(self) -> PowerWindow:
        now = utcnow()
        w, _ = self.profiles.window(self.cfg.evse_id, now, tx_id=self.tx_id, tx_start=self.tx_start,
                                    volts=self._volts())
        frac = self.der.max_discharge_fraction(now) if self.version == "2.1" else None
        if frac is not None:         # R: LimitMaxDischarge caps discharge at a share of the rating
            rated = min(self.cfg.max_discharge_w, self.plant.cfg.stage.discharge.p_max_w)
            w = w.combine(PowerWindow(-frac * rated, math.inf))
        if self.defects.on("ignore_setpoint") and w.setpoint_w is not None:
            w = PowerWindow(w.lo_w, w.hi_w, None, w.sources)
        if self.defects.on("ignore_discharge_limit") and (w.lo_w < 0 or (w.setpoint_w or 0) < 0):
            full = -self.cfg.max_discharge_w
            w = PowerWindow(full, max(w.hi_w, full), full if w.setpoint_w is not None else None, w.sources)
        return w

    def _volts(self) -> float:
        v = getattr(self.plant.state(), "dc_voltage_v", None)
        return v if v and v > 1 else self.cfg.nominal_dc_v

    def apply_now(self) -> float:
        """Evaluate the profile stack and drive the stage (also called after every profile change).
        During an EV session the charger does it: min(EV request, this window)."""
        if self.charger.session_active:
            g = self.charger.limits_changed()
            self.last_target_w = g or 0.0
            return self.last_target_w
        if self.tx_id is None:
            return 0.0
        ev = self.cfg.ev
        target = self.current_window().target(self.ev_wanted_w())
        target = min(max(target, -min(ev["max_discharge_w"], self.cfg.max_discharge_w)),
                     min(ev["max_charge_w"], self.cfg.max_charge_w))
        if not self.operative or not self.plugged:       # no EV (E10 suspended, authorized before plug-in)
            target = 0.0
        self.plant.set_power_setpoint(target)
        self.last_target_w = target
        return target

    async def _control_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.control_interval_s)
            try:
                self.apply_now()
                if self.version == "2.1" and self.online:
                    for control_id, live in self.der.transitions(utcnow()):
                        self._spawn(self._call("NotifyDERStartStop", control_id=control_id, started=live,
                                               timestamp=iso_ms(utcnow())))
            except Exception as e:     # never let the control loop die silently
                self.errors.append(f"control loop: {e!r}")

    # -- the EV's needs (K15/K18, Q01) -------------------------------------------------------------------
    async def _forward_needs(self, needs: EVNeeds) -> None:
        # after the transaction's Started event (queued at Authorization) has gone out, so the CSMS
        # sees Started -> NotifyEVChargingNeeds in that order
        await self._sent("Started")
        if not (self.online and self.cp is not None):
            self.errors.append("NotifyEVChargingNeeds not sent: station offline")
            return
        await self.notify_ev_charging_needs(needs)

    def ev_charging_needs(self, needs: EVNeeds) -> dict:
        """chargingNeeds (camelCase) from what the EV sent over ISO 15118. Bench sign -> OCPP: the 2.1
        discharge fields are magnitudes (>= 0); max values are min(EV, EVSE), min values max(EV, EVSE),
        as the 2.1 schema defines them."""
        st = self.plant.cfg.stage
        ch_rate, dis_rate = self.charger.rating()

        def lo(*xs):
            xs = [x for x in xs if x is not None and math.isfinite(x)]
            return round(min(xs), 3) if xs else None

        def hi(*xs):
            xs = [x for x in xs if x is not None and math.isfinite(x)]
            return round(max(xs), 3) if xs else None

        def mag(x):                 # bench sign (<= 0) -> OCPP magnitude
            return None if x is None else abs(x)

        out: dict[str, Any] = {}
        if needs.departure_s is not None:
            out["departureTime"] = iso(utcnow() + dt.timedelta(seconds=float(needs.departure_s)))
        if self.version == "2.1":
            out["requestedEnergyTransfer"] = needs.service if needs.service in ("DC", "DC_BPT", "AC_BPT") else "DC"
            if needs.control_mode:
                out["controlMode"] = "ScheduledControl" if needs.control_mode == "scheduled" else "DynamicControl"
                if needs.control_mode == "dynamic":
                    out["mobilityNeedsMode"] = "EVCC"          # the EV states its needs (MobilityNeedsMode 1)
            v2x = {"maxChargePower": lo(needs.max_charge_power_w, ch_rate, st.charge.p_max_w),
                   "minChargePower": hi(needs.min_charge_power_w, 0.0),
                   "maxChargeCurrent": lo(needs.max_charge_current_a, st.charge.i_max_a),
                   "minChargeCurrent": hi(needs.min_charge_current_a, 0.0),
                   "maxVoltage": lo(needs.max_voltage_v, st.charge.v_max_v),
                   "minVoltage": hi(needs.min_voltage_v, st.charge.v_min_v),
                   "evTargetEnergyRequest": needs.target_energy_wh, "evMinEnergyRequest": needs.min_energy_wh,
                   "evMaxEnergyRequest": needs.max_energy_wh, "evMinV2XEnergyRequest": needs.min_v2x_energy_wh,
                   "evMaxV2XEnergyRequest": needs.max_v2x_energy_wh,
                   "targetSoC": None if needs.target_soc is None else int(round(needs.target_soc * 100))}
            if needs.bidirectional:
                v2x.update({"maxDischargePower": lo(mag(needs.max_discharge_power_w), dis_rate, st.discharge.p_max_w),
                            "minDischargePower": hi(mag(needs.min_discharge_power_w), 0.0),
                            "maxDischargeCurrent": lo(mag(needs.max_discharge_current_a), st.discharge.i_max_a),
                            "minDischargeCurrent": hi(mag(needs.min_discharge_current_a), 0.0)})
            out["v2xChargingParameters"] = {k: v for k, v in v2x.items() if v is not None}
        else:
            # 2.0.1 has no bidirectional parameters: the EV's charging side, as the EV sent it
            out["requestedEnergyTransfer"] = "DC"
            # (2.0.1's DCChargingParametersType has integers only)
            dc = {"evMaxCurrent": needs.max_charge_current_a, "evMaxVoltage": needs.max_voltage_v,
                  "evMaxPower": needs.max_charge_power_w,
                  "energyAmount": None if needs.target_energy_wh is None else max(needs.target_energy_wh, 0.0),
                  "evEnergyCapacity": needs.capacity_wh,
                  "stateOfCharge": None if needs.present_soc is None else needs.present_soc * 100}
            out["dcChargingParameters"] = {k: int(round(v)) for k, v in dc.items() if v is not None}
        return out

    async def notify_ev_charging_needs(self, needs: EVNeeds | None = None) -> dict:
        """K15/K18 (2.0.1), Q (2.1): the EV's needs; without `needs` (control-port op, no EV session)
        the configured `ev` table stands in for an EV."""
        if needs is not None:
            payload = self.ev_charging_needs(needs)
            self.ev_needs_sent.append(payload)
            r = await self._call("NotifyEVChargingNeeds", evse_id=self.cfg.evse_id, charging_needs=payload)
            return {"status": r.status, "charging_needs": payload}
        ev = self.cfg.ev
        departure = iso(utcnow() + dt.timedelta(seconds=ev["departure_s"]))
        s = self.plant.state()
        if self.version == "2.1":
            cn = {"requested_energy_transfer": "DC_BPT", "departure_time": departure,
                  "control_mode": "ScheduledControl",
                  "v2x_charging_parameters": {
                      "max_charge_power": ev["max_charge_w"], "max_discharge_power": ev["max_discharge_w"],
                      "min_charge_power": 0.0, "min_discharge_power": 0.0,
                      "ev_target_energy_request": ev["energy_request_wh"],
                      "ev_min_energy_request": -ev["capacity_wh"] * max(s.soc - ev["min_soc"], 0.0),
                      "ev_max_energy_request": ev["capacity_wh"] * max(1.0 - s.soc, 0.0)},
                  "dc_charging_parameters": {
                      "ev_max_current": ev["max_current_a"], "ev_max_voltage": ev["max_voltage_v"],
                      "energy_amount": ev["energy_request_wh"], "ev_max_power": ev["max_charge_w"],
                      "state_of_charge": int(round(s.soc * 100)), "ev_energy_capacity": ev["capacity_wh"]}}
        else:
            # 2.0.1's DCChargingParametersType has integers only (Draft 4: 30.0 is not an integer)
            cn = {"requested_energy_transfer": "DC", "departure_time": departure,
                  "dc_charging_parameters": {k: int(round(v)) for k, v in {
                      "ev_max_current": ev["max_current_a"], "ev_max_voltage": ev["max_voltage_v"],
                      "energy_amount": ev["energy_request_wh"], "ev_max_power": ev["max_charge_w"],
                      "state_of_charge": s.soc * 100, "ev_energy_capacity": ev["capacity_wh"]}.items()}}
        r = await self._call("NotifyEVChargingNeeds", evse_id=self.cfg.evse_id, charging_needs=cn)
        return {"status": r.status}


def _without_charging_only_limits(profile: dict) -> dict:
    """Defect charging_only_ignores_limit: the profile as a station that drops a ChargingOnly period's limit."""
    import copy
    p = copy.deepcopy(profile)
    for sched in p.get("chargingSchedule") or []:
        for per in sched.get("chargingSchedulePeriod") or []:
            if per.get("operationMode") == "ChargingOnly":
                per.pop("limit", None)
    return p
