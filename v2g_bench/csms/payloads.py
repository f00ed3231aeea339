"""Payload builders for the CSMS commands, with the bench's sign convention converted at the edge.

Bench convention: power > 0 flows INTO the EV battery (charging), < 0 is discharge.
- OCPP 2.0.1 has no discharge field: the de-facto V2G encoding is a NEGATIVE `limit` (the 2.0.1
  schema accepts it). A period with power p < 0 becomes `limit = p` ("discharge at |p|").
- OCPP 2.1 uses `operationMode`: discharging is `CentralSetpoint` with `setpoint = p` (negative =
  discharge, the same sign as ours) and `dischargeLimit` (schema: maximum 0, i.e. negative values);
  `limit` stays the non-negative charging limit.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

from v2g_bench.csms.recording import utc_now_iso
from v2g_bench.csms.validation import schemas_for

PURPOSES = {"TxProfile", "TxDefaultProfile", "ChargingStationMaxProfile", "ChargingStationExternalConstraints",
            "PriorityCharging", "LocalGeneration"}


def schedule_period(start_s: int, power_w: float, version: str, *, mode: str | None = None,
                    charge_limit_w: float | None = None) -> dict:
    """One chargingSchedulePeriod for a target power (bench sign) in the given OCPP version."""
    p = float(power_w)
    if version == "2.0.1":
        return {"startPeriod": int(start_s), "limit": round(p, 1)}
    period: dict[str, Any] = {"startPeriod": int(start_s)}
    if mode is None:
        mode = "CentralSetpoint" if p < 0 else "ChargingOnly"
    period["operationMode"] = mode
    if mode == "CentralSetpoint":
        period["setpoint"] = round(p, 1)
        period["limit"] = round(max(p, 0.0) if charge_limit_w is None else charge_limit_w, 1)
        period["dischargeLimit"] = round(min(p, 0.0), 1)
    elif mode == "ChargingOnly":
        if p < 0:
            raise ValueError("a ChargingOnly period cannot discharge; use CentralSetpoint")
        period["limit"] = round(p, 1)
    elif mode == "Idle":
        pass
    else:
        period["limit"] = round(abs(p), 1)
    return period


def charging_profile(profile_id: int, purpose: str, periods: Sequence[tuple[int, float]], *, version: str,
                     stack_level: int = 0, kind: str = "Absolute", unit: str = "W",
                     transaction_id: str | None = None, start_schedule: str | None = None,
                     duration_s: int | None = None, recurrency: str | None = None,
                     schedule_id: int | None = None) -> dict:
    """A ChargingProfile from (start_s, power_w) periods. Relative profiles carry no startSchedule."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown chargingProfilePurpose {purpose!r}; one of {sorted(PURPOSES)}")
    if not periods:
        raise ValueError("a charging schedule needs at least one period")
    schedule: dict[str, Any] = {"id": schedule_id if schedule_id is not None else profile_id,
                                "chargingRateUnit": unit,
                                "chargingSchedulePeriod": [schedule_period(s, p, version) for s, p in periods]}
    if kind in ("Absolute", "Recurring"):
        schedule["startSchedule"] = start_schedule or utc_now_iso()
    if duration_s is not None:
        schedule["duration"] = int(duration_s)
    profile: dict[str, Any] = {"id": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
                               "chargingProfileKind": kind, "chargingSchedule": [schedule]}
    if recurrency:
        profile["recurrencyKind"] = recurrency
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return profile


def check_request(version: str, action: str, payload: dict) -> list[str]:
    return [str(p) for p in schemas_for(version).check(action, "Request", payload)]


def minimal_payload(version: str, action: str, kind: str = "Response") -> dict:
    """The smallest schema-valid payload (required fields only; 'Accepted' where it is an option).

    Used as the CSMS's default answer to actions without a dedicated default, so any action the
    station sends gets a valid answer rather than a CALLERROR.
    """
    schema = schemas_for(version).schema(action, kind)
    defs = schema.get("definitions", {})

    def build(node: dict):
        if "$ref" in node:
            return build(defs[node["$ref"].split("/")[-1]])
        t = node.get("type")
        if "enum" in node:
            return "Accepted" if "Accepted" in node["enum"] else node["enum"][0]
        if t == "object":
            return {k: build(node["properties"][k]) for k in node.get("required", [])}
        if t == "array":
            return [build(node["items"]) for _ in range(node.get("minItems", 0))]
        if t == "string":
            return utc_now_iso() if node.get("format") == "date-time" else ""
        if t in ("integer", "number"):
            return node.get("minimum", 0)
        if t == "boolean":
            return False
        return None

    return build(schema)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def iter_periods(profile: dict) -> Iterable[dict]:
    for sched in profile.get("chargingSchedule", []):
        yield from sched.get("chargingSchedulePeriod", [])


def energy_registers(frame) -> tuple[float, float]:
    """(Energy.Active.Import.Register, Energy.Active.Export.Register) in Wh from a TransactionEvent.

    A V2X station must report both directions; a missing register is the station's non-conformance
    (TC_Q_100_CS), named as such."""
    from v2g_bench.errors import Nonconformance
    vals = {}
    for mv in frame["meterValue"]:
        for sv in mv["sampledValue"]:
            vals[sv.get("measurand", "Energy.Active.Import.Register")] = float(sv["value"])
    try:
        return vals["Energy.Active.Import.Register"], vals["Energy.Active.Export.Register"]
    except KeyError as e:
        raise Nonconformance(f"TransactionEvent lacks {e.args[0]} (a V2X station reports both directions)",
                             req="TC_Q_100_CS") from None
