"""Charging-profile stack of the simulated station (OCPP 2.0.1/2.1 block K), with discharge.

Profiles are kept in their JSON (camelCase) form. At a time t the station's power window is:

    TxProfile of the running transaction, else TxDefaultProfile   (highest stackLevel active at t)
    combined with ChargingStationMaxProfile (evse 0)              (tighter of both bounds)

Each period is read as a window [lo, hi] W with an optional setpoint (bench sign: + = charge):
  - no operationMode (2.0.1): limit >= 0 -> [0, limit]; limit < 0 -> discharge at |limit|
    (setpoint = limit): the de-facto 2.0.1 V2G encoding.
  - ChargingOnly: [0, limit]; Idle: [0, 0]; CentralSetpoint: setpoint within [dischargeLimit, limit];
    other modes: [dischargeLimit (or 0), limit].
Currents (chargingRateUnit A) become power with the DC link voltage the caller passes.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from v2g_bench.csms.ocpp_time import ocpp_time

INF = math.inf


def parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def iso(t: dt.datetime) -> str:
    return ocpp_time(t, "seconds")


@dataclass(frozen=True)
class PowerWindow:
    lo_w: float = -INF          # most negative power allowed (discharge bound), <= 0 when discharge allowed
    hi_w: float = INF           # charge bound
    setpoint_w: float | None = None
    sources: tuple[int, ...] = field(default=(), compare=False)   # profile ids that shaped it

    def clip(self, p: float) -> float:
        return min(max(p, self.lo_w), self.hi_w)

    def target(self, wanted_w: float) -> float:
        """Power the stage should run at: the setpoint if any, else what the EV wants, within the window."""
        return self.clip(self.setpoint_w if self.setpoint_w is not None else wanted_w)

    def combine(self, other: "PowerWindow") -> "PowerWindow":
        """Intersect with a cap `other`; if disjoint, the point of the cap nearest to this window
        (a 5 kW discharge order under a 3 kW cap becomes a 3 kW discharge)."""
        lo, hi = max(self.lo_w, other.lo_w), min(self.hi_w, other.hi_w)
        if lo > hi:
            lo = hi = other.lo_w if self.hi_w < other.lo_w else other.hi_w
        sp = self.setpoint_w if self.setpoint_w is not None else other.setpoint_w
        return PowerWindow(lo, hi, None if sp is None else min(max(sp, lo), hi), self.sources + other.sources)


def period_window(period: dict, unit: str, volts: float, *, cap: bool = False) -> PowerWindow:
    """The window of one period. `cap=True` for ChargingStationMaxProfile: it bounds the station's
    power in both directions (2.0.1: |P| <= limit; 2.1: dischargeLimit <= P <= limit), it never
    orders charging or forbids discharging by itself."""
    k = volts if unit == "A" else 1.0
    if cap:
        limit, dlim = period.get("limit"), period.get("dischargeLimit")
        hi = INF if limit is None else abs(limit) * k
        if period.get("operationMode") is None:
            return PowerWindow(-hi, hi)
        return PowerWindow(-INF if dlim is None else min(dlim * k, 0.0), hi)
    mode = period.get("operationMode")
    limit = period.get("limit")
    limit_w = None if limit is None else limit * k
    dlim = period.get("dischargeLimit")
    dlim_w = None if dlim is None else dlim * k
    if mode is None:
        if limit_w is None:
            return PowerWindow()
        if limit_w < 0:
            return PowerWindow(limit_w, limit_w, limit_w)
        return PowerWindow(0.0, limit_w)
    if mode == "Idle":
        return PowerWindow(0.0, 0.0, 0.0)
    if mode == "ChargingOnly":
        return PowerWindow(0.0, INF if limit_w is None else max(limit_w, 0.0))
    lo = -INF if dlim_w is None else min(dlim_w, 0.0)
    hi = INF if limit_w is None else limit_w
    if mode == "CentralSetpoint":
        sp = period.get("setpoint")
        return PowerWindow(lo, hi, None if sp is None else sp * k)
    return PowerWindow(lo if dlim_w is not None else 0.0, hi)


def _key(w: PowerWindow) -> tuple:
    return (w.lo_w, w.hi_w, w.setpoint_w)


class ProfileStack:
    """The profiles installed on one station (all EVSEs)."""

    def __init__(self):
        self.installed: list[tuple[int, dict]] = []        # (evseId, profile)

    # -- K01 SetChargingProfile / K10 Clear / K09 Get ---------------------------------------
    def add(self, evse_id: int, profile: dict, *, active_tx: str | None) -> tuple[str, str]:
        """Install; returns (status, reason). Replaces a profile with the same id, or the same
        purpose + stackLevel on the same EVSE."""
        purpose = profile["chargingProfilePurpose"]
        if purpose == "ChargingStationMaxProfile" and evse_id != 0:
            return "Rejected", "ChargingStationMaxProfile must be set on evseId 0"
        if purpose == "TxProfile":
            if evse_id == 0:
                return "Rejected", "TxProfile needs an evseId > 0"
            if active_tx is None or profile.get("transactionId") not in (None, active_tx):
                return "Rejected", "TxProfile for a transaction that is not running"
        self.installed = [(e, p) for e, p in self.installed
                          if p["id"] != profile["id"] and not (e == evse_id and p["chargingProfilePurpose"] == purpose
                                                               and p["stackLevel"] == profile["stackLevel"])]
        self.installed.append((evse_id, profile))
        return "Accepted", ""

    def clear(self, profile_id: int | None = None, evse_id: int | None = None, purpose: str | None = None,
              stack_level: int | None = None) -> int:
        def match(e, p):
            if profile_id is not None:
                return p["id"] == profile_id
            return ((evse_id is None or e == evse_id) and (purpose is None or p["chargingProfilePurpose"] == purpose)
                    and (stack_level is None or p["stackLevel"] == stack_level))
        before = len(self.installed)
        self.installed = [(e, p) for e, p in self.installed if not match(e, p)]
        return before - len(self.installed)

    def clear_tx_profiles(self) -> None:
        """When a transaction ends its TxProfiles go (K01: a TxProfile lives with its transaction)."""
        self.installed = [(e, p) for e, p in self.installed if p["chargingProfilePurpose"] != "TxProfile"]

    def query(self, evse_id: int | None = None, purpose: str | None = None, ids=None) -> list[tuple[int, dict]]:
        return [(e, p) for e, p in self.installed
                if (evse_id is None or e == evse_id) and (purpose is None or p["chargingProfilePurpose"] == purpose)
                and (not ids or p["id"] in ids)]

    # -- evaluation --------------------------------------------------------------------------
    @staticmethod
    def _schedule_start(profile: dict, sched: dict, tx_start: dt.datetime | None, t: dt.datetime) -> dt.datetime | None:
        kind = profile["chargingProfileKind"]
        if kind == "Relative":
            return tx_start
        start = parse_time(sched["startSchedule"]) if "startSchedule" in sched else tx_start
        if start is None:
            return None
        if kind == "Recurring":
            period = dt.timedelta(days=7 if profile.get("recurrencyKind") == "Weekly" else 1)
            if t >= start:
                start = start + ((t - start) // period) * period
        return start

    def _period_at(self, profile: dict, t: dt.datetime, tx_start, volts: float):
        cap = profile["chargingProfilePurpose"] == "ChargingStationMaxProfile"
        """(window, next change time) of `profile` at t, or (None, next change) if not active."""
        vf, vt = profile.get("validFrom"), profile.get("validTo")
        if vf and t < parse_time(vf):
            return None, parse_time(vf)
        if vt and t >= parse_time(vt):
            return None, None
        sched = profile["chargingSchedule"][0]
        start = self._schedule_start(profile, sched, tx_start, t)
        if start is None or t < start:
            return None, start
        offset = (t - start).total_seconds()
        dur = sched.get("duration")
        if dur is not None and offset >= dur:
            return None, None
        periods = sorted(sched["chargingSchedulePeriod"], key=lambda p: p["startPeriod"])
        current, nxt = None, None
        for p in periods:
            if p["startPeriod"] <= offset:
                current = p
            else:
                nxt = start + dt.timedelta(seconds=p["startPeriod"])
                break
        if dur is not None:
            end = start + dt.timedelta(seconds=dur)
            nxt = end if nxt is None else min(nxt, end)
        if current is None:
            return None, nxt
        w = period_window(current, sched["chargingRateUnit"], volts, cap=cap)
        return PowerWindow(w.lo_w, w.hi_w, w.setpoint_w, (profile["id"],)), nxt

    def _best(self, candidates, t, tx_start, volts):
        best, best_level, change = None, None, []
        for _, p in candidates:
            w, nxt = self._period_at(p, t, tx_start, volts)
            if nxt is not None:
                change.append(nxt)
            if w is not None and (best_level is None or p["stackLevel"] > best_level):
                best, best_level = w, p["stackLevel"]
        return best, change

    def window(self, evse_id: int, t: dt.datetime, *, tx_id: str | None = None, tx_start: dt.datetime | None = None,
               volts: float = 400.0) -> tuple[PowerWindow, dt.datetime | None]:
        """The combined power window at t and when it may next change."""
        changes: list[dt.datetime] = []
        tx, c1 = self._best([(e, p) for e, p in self.installed if e == evse_id and tx_id is not None
                             and p["chargingProfilePurpose"] == "TxProfile"
                             and p.get("transactionId") in (None, tx_id)], t, tx_start, volts)
        default, c2 = self._best([(e, p) for e, p in self.installed if e in (0, evse_id)
                                  and p["chargingProfilePurpose"] == "TxDefaultProfile"], t, tx_start, volts)
        smax, c3 = self._best([(e, p) for e, p in self.installed if e == 0
                               and p["chargingProfilePurpose"] == "ChargingStationMaxProfile"], t, tx_start, volts)
        changes = [c for c in c1 + c2 + c3 if c > t]
        w = tx or default or PowerWindow()
        if smax is not None:
            w = w.combine(PowerWindow(smax.lo_w, smax.hi_w, None, smax.sources))
        return w, (min(changes) if changes else None)

    def composite(self, evse_id: int, start: dt.datetime, duration_s: int, *, tx_id=None, tx_start=None,
                  volts: float = 400.0, station_max_w: float = INF, station_max_discharge_w: float = INF
                  ) -> list[tuple[int, PowerWindow]]:
        """[(offset_s, window)] over [start, start + duration], merged where nothing changes."""
        out: list[tuple[int, PowerWindow]] = []
        t, end = start, start + dt.timedelta(seconds=duration_s)
        hw = PowerWindow(-station_max_discharge_w, station_max_w)
        for _ in range(10_000):
            w, nxt = self.window(evse_id, t, tx_id=tx_id, tx_start=tx_start, volts=volts)
            w = w.combine(hw)
            off = int(round((t - start).total_seconds()))
            if out and out[-1][0] == off:
                # a change less than 0.5 s after the previous one (e.g. a profile starting just after
                # the floored scheduleStart): startPeriods must increase, the later window wins
                out.pop()
            if not out or _key(out[-1][1]) != _key(w):
                out.append((off, w))
            if nxt is None or nxt >= end:
                break
            t = nxt
        return out
