"""OCPP 2.1 DER control (block R, use cases R01-R05) of the simulated station: SetDERControl /
GetDERControl / ClearDERControl, defaults and scheduled controls, priority and superseding, and
LimitMaxDischarge applied to the power stage.

The station supports the control types in SUPPORTED; any other type is NotSupported. A request
whose payload does not carry the field of its controlType is Rejected (R04: the type and the
settings must agree)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from v2g_bench.lab.charger.profile_stack import parse_time

# controlType -> the request field that carries its settings
FIELD = {"LimitMaxDischarge": "limitMaxDischarge", "FreqDroop": "freqDroop", "FixedPFAbsorb": "fixedPFAbsorb",
         "FixedPFInject": "fixedPFInject", "FixedVar": "fixedVar", "EnterService": "enterService",
         "Gradients": "gradient"}
SUPPORTED = ("LimitMaxDischarge", "FreqDroop", "FixedPFAbsorb", "FixedPFInject", "EnterService", "Gradients")


@dataclass
class DerControl:
    id: str
    type: str
    is_default: bool
    settings: dict            # camelCase, as sent
    superseded: bool = False

    @property
    def priority(self) -> int:
        return int(self.settings.get("priority", 0))

    def window(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        start = self.settings.get("startTime")
        t0 = parse_time(start) if start else None
        dur = self.settings.get("duration")
        t1 = t0 + dt.timedelta(seconds=float(dur)) if (t0 is not None and dur is not None) else None
        return t0, t1

    def active_at(self, t: dt.datetime) -> bool:
        t0, t1 = self.window()
        return (t0 is None or t0 <= t) and (t1 is None or t < t1)

    def report_item(self) -> dict:
        return {"id": self.id, "isDefault": self.is_default, "isSuperseded": self.superseded,
                FIELD[self.type]: self.settings}


class DerControls:
    def __init__(self, accept_unsupported=lambda: False):
        self.controls: dict[str, DerControl] = {}
        self._live: dict[str, bool] = {}          # scheduled controls seen active (for start/stop events)
        self._accept_unsupported = accept_unsupported      # the station defect hook

    def set(self, is_default: bool, control_id: str, control_type: str, payload: dict) -> str:
        return self.set_with_superseded(is_default, control_id, control_type, payload)[0]

    def set_with_superseded(self, is_default, control_id, control_type, payload) -> tuple[str, list[str]]:
        if control_type not in SUPPORTED and not self._accept_unsupported():
            return "NotSupported", []
        settings = payload.get(FIELD.get(control_type, ""))
        if settings is None:
            return "Rejected", []
        new = DerControl(control_id, control_type, bool(is_default), settings)
        superseded: list[str] = []
        for c in list(self.controls.values()):
            if c.id == control_id or c.type != control_type or c.is_default != new.is_default or c.superseded:
                continue
            # R04: an equal or higher priority (lower number) new control supersedes an overlapping one
            if new.is_default or new.priority <= c.priority:
                c.superseded = True
                superseded.append(c.id)
        self.controls[control_id] = new
        return "Accepted", superseded

    def query(self, is_default=None, control_type=None, control_id=None) -> list[DerControl]:
        return [c for c in self.controls.values()
                if (is_default is None or c.is_default == is_default) and (control_type in (None, c.type))
                and (control_id in (None, c.id))]

    def clear(self, is_default: bool, control_type=None, control_id=None) -> str:
        gone = [c.id for c in self.query(is_default, control_type, control_id)]
        for i in gone:
            del self.controls[i]
        return "Accepted" if gone else "NotFound"

    def report(self, found: list[DerControl]) -> dict:
        out: dict[str, list] = {}
        for c in found:
            out.setdefault(FIELD[c.type], []).append(c.report_item())
        return out

    def transitions(self, t: dt.datetime) -> list[tuple[str, bool]]:
        """Scheduled controls that started or stopped since the last call: [(control id, started)] (R05:
        NotifyDERStartStop)."""
        out = []
        for c in self.controls.values():
            if c.is_default or c.superseded:
                continue
            live = c.active_at(t)
            was = self._live.get(c.id, False)
            if live != was:
                out.append((c.id, live))
                self._live[c.id] = live
        return out

    def max_discharge_fraction(self, t: dt.datetime) -> float | None:
        """The LimitMaxDischarge in force at t as a fraction of the rated discharge power (scheduled
        controls before defaults; among those, the highest priority), or None."""
        for defaults in (False, True):
            live = [c for c in self.controls.values() if c.type == "LimitMaxDischarge" and c.is_default == defaults
                    and not c.superseded and c.active_at(t)]
            if live:
                best = min(live, key=lambda c: c.priority)
                pct = best.settings.get("pctMaxDischargePower")
                return None if pct is None else max(0.0, min(float(pct), 100.0)) / 100.0
        return None
