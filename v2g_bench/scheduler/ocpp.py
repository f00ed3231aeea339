"""A scheduler plan as an OCPP-style charging schedule (what the CSMS emulator sends).

Periods: `startPeriod` in whole seconds from the schedule start, `limit` in W, signed with the bench
convention (+ = into the EV, - = discharge). OCPP 2.0.1's schema accepts a negative limit; a 2.1 adapter that
wants `dischargeLimit`/`setpoint` converts at its edge. Consecutive equal limits are merged.
"""
from __future__ import annotations

import numpy as np

from v2g_bench.scheduler.model import Plan, ScheduleInputError


def to_charging_schedule(plan: Plan, ev: str | None = None, *, schedule_id: int = 1,
                         resolution_w: float = 1.0) -> dict:
    """Return {"id", "chargingRateUnit": "W", "duration", "chargingSchedulePeriod": [...]} for one EV."""
    if ev is None:
        if len(plan.evs) != 1:
            raise ScheduleInputError(f"the plan has {len(plan.evs)} EVs", where="to_charging_schedule(ev=None)",
                                     fix="name the EV whose schedule to convert")
        e = plan.evs[0]
    else:
        e = plan.ev(ev)
    if abs(plan.dt_s - round(plan.dt_s)) > 1e-9:
        raise ScheduleInputError(f"dt_s = {plan.dt_s} is not a whole number of seconds", where="plan.dt_s",
                                 fix="OCPP startPeriod is an integer number of seconds")
    watts = np.round(e.power_kw * 1000.0 / resolution_w) * resolution_w
    periods: list[dict] = []
    for k, w in enumerate(watts):
        w = float(w) + 0.0  # no "-0.0"
        if periods and periods[-1]["limit"] == w:
            continue
        periods.append({"startPeriod": int(round(k * plan.dt_s)), "limit": w})
    return {"id": schedule_id, "chargingRateUnit": "W", "duration": int(round(plan.n * plan.dt_s)),
            "chargingSchedulePeriod": periods}


def periods_to_steps(schedule: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """(start offsets s, power W, duration s) from an OCPP-style schedule (validated)."""
    try:
        periods = schedule["chargingSchedulePeriod"]
        duration = float(schedule["duration"])
    except (KeyError, TypeError) as e:
        raise ScheduleInputError(f"charging schedule lacks {e}", where="chargingSchedule") from None
    if schedule.get("chargingRateUnit", "W") != "W":
        raise ScheduleInputError(f"chargingRateUnit = {schedule.get('chargingRateUnit')!r}",
                                 where="chargingSchedule.chargingRateUnit", fix="convert to W first")
    starts = np.array([float(p["startPeriod"]) for p in periods])
    limits = np.array([float(p["limit"]) for p in periods])
    if starts.size == 0 or starts[0] != 0 or np.any(np.diff(starts) <= 0):
        raise ScheduleInputError("startPeriod must start at 0 and increase", where="chargingSchedulePeriod")
    return starts, limits, duration


def plan_periods(plan: Plan, ev: str | None = None) -> list[tuple[int, float]]:
    """[(start offset s, limit W signed), ...]: the shape `CSMSEmulator.charging_profile(...)` takes."""
    sched = to_charging_schedule(plan, ev)
    return [(p["startPeriod"], p["limit"]) for p in sched["chargingSchedulePeriod"]]
