"""The simulated station's options (`[services.station]` of the lab config)."""
from __future__ import annotations

from dataclasses import dataclass, field

from v2g_bench.csms.validation import SUBPROTOCOLS
from v2g_bench.errors import BenchError
import datetime as _dt

from v2g_bench.csms.ocpp_time import ocpp_time as iso_ms, utc_now as _utc_now  # noqa: F401 - station API

# The station's wall clock against true UTC: the lab's `station.clock_step` fault moves it (a station whose RTC
# jumps, e.g. a bad NTP answer); `station.clear` puts it back. One per process, as the lab runs one station.
CLOCK = {"offset_s": 0.0}


def utcnow() -> _dt.datetime:
    """The station's idea of now (UTC)."""
    off = CLOCK["offset_s"]
    return _utc_now() + _dt.timedelta(seconds=off) if off else _utc_now()




@dataclass
class StationConfig:
    station_id: str = "LAB-CS-001"
    ocpp_version: str = "2.0.1"
    vendor: str = "v2g-bench"
    model: str = "LabBidiDC"
    evse_id: int = 1
    connector_id: int = 1
    meter_location: str = "ac"              # "ac": grid-side meter; "dc": DC-link meter
    meter_interval_s: float = 5.0           # TransactionEvent Updated (MeterValuePeriodic)
    control_interval_s: float = 0.2         # profile -> power stage
    max_charge_w: float = 11_000.0          # station rating
    max_discharge_w: float = 11_000.0
    default_power_w: float | None = None    # without a profile: charge at min(this, EV max); None = EV max
    nominal_dc_v: float = 400.0             # for chargingRateUnit A when the plant gives no voltage
    call_timeout_s: float = 10.0
    # OCPP-J reconnect back-off (OCPPCommCtrlr RetryBackOff*; 2.0.1 Part 4 section 5.3): wait
    # minimum * 2^attempt (attempt capped at repeat_times) plus a random 0..random_range
    retry_backoff_wait_minimum_s: int = 1
    retry_backoff_random_range_s: int = 1
    retry_backoff_repeat_times: int = 3
    defects: list = field(default_factory=list)     # v2g_bench.lab.charger.station_defects names
    ev: dict = field(default_factory=lambda: {
        "energy_request_wh": 20_000.0, "max_charge_w": 11_000.0, "max_discharge_w": 11_000.0,
        "min_soc": 0.2, "target_soc": 0.8, "departure_s": 4 * 3600, "capacity_wh": 60_000.0,
        "max_voltage_v": 450.0, "max_current_a": 30.0})

    @classmethod
    def from_dict(cls, d: dict | None) -> "StationConfig":
        d = dict(d or {})
        for lab_key in ("module", "enabled", "start_timeout_s"):    # the lab's keys, not ours
            d.pop(lab_key, None)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise BenchError(f"unknown station option(s) {unknown}", where="lab config [services.station]",
                             fix=f"use only {', '.join(sorted(known))}")
        ev = d.pop("ev", None)
        c = cls(**d)
        if ev:
            c.ev = {**c.ev, **ev}
        if c.ocpp_version not in SUBPROTOCOLS:
            raise BenchError(f"ocpp_version {c.ocpp_version!r} not supported", where="services.station.ocpp_version",
                             fix=f"one of {sorted(SUBPROTOCOLS)}")
        if c.meter_location not in ("ac", "dc"):
            raise BenchError("meter_location must be 'ac' or 'dc'", where="services.station.meter_location")
        for k in ("retry_backoff_wait_minimum_s", "retry_backoff_random_range_s", "retry_backoff_repeat_times"):
            v = getattr(c, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BenchError(f"{k} = {v!r}: must be an integer >= 0", where=f"services.station.{k}")
        return c
