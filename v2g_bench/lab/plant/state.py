"""PlantState: one immutable snapshot of the plant (what a reading or a trace carries)."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

# ------------------------------------------------------------------------------------ state


@dataclass(frozen=True)
class PlantState:
    """A consistent snapshot (all fields at plant time `t`). SI units, + = into the EV battery."""
    t: float
    soc: float
    battery_ocv_v: float
    dc_voltage_v: float
    dc_current_a: float
    dc_power_w: float
    ac_power_w: float                  # + = import from grid
    ac_voltage_v: float                # line-to-neutral
    grid_freq_hz: float
    contactor_closed: bool
    setpoint_w: float                  # what was asked (before clipping)
    target_w: float                    # what the stage aims for after limits (before ramp)
    battery_output_on: bool
    dc_import_wh: float                # DC link energy into the battery
    dc_export_wh: float                # DC link energy out of the battery
    ac_import_wh: float                # AC energy from the grid
    ac_export_wh: float                # AC energy to the grid
    stage_loss_wh: float
    battery_loss_wh: float
    battery_energy_wh: float
    charge_limit_w: float              # effective limits right now (all caps combined), >= 0
    discharge_limit_w: float
    faults: frozenset[str]

    def as_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["faults"] = sorted(self.faults)
        return d


