"""Plant configuration (battery, power stage, grid, measurement, battery emulator) from the lab TOML."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

# ------------------------------------------------------------------------------------ config


@dataclass
class BatteryConfig:
    capacity_wh: float = 60_000.0
    soc0: float = 0.5                                   # 0..1
    soc_min: float = 0.05                               # BMS stops discharge below
    soc_max: float = 0.95                               # BMS stops charge above
    r_ohm: float = 0.05                                 # internal resistance
    # OCV(SOC) table, (soc 0..1, volts), linear interpolation; a 96s NMC-like curve.
    ocv_table: list[tuple[float, float]] = field(default_factory=lambda: [
        (0.0, 300.0), (0.1, 340.0), (0.2, 352.0), (0.5, 370.0), (0.8, 385.0), (0.9, 393.0),
        (1.0, 403.0)])
    max_charge_current_a: float = 200.0                  # BMS limits (sent on CAN 0x351)
    max_discharge_current_a: float = 200.0
    charge_voltage_limit_v: float = 403.0
    discharge_voltage_limit_v: float = 300.0
    temperature_c: float = 25.0
    soh_pct: float = 100.0


@dataclass
class DirectionLimits:
    p_max_w: float = 11_000.0
    i_max_a: float = 30.0
    v_min_v: float = 150.0
    v_max_v: float = 500.0
    loss: tuple[float, float, float] = (50.0, 0.02, 1.0e-6)    # a [W] + b*|P| + c*P^2 [W]


@dataclass
class StageConfig:
    """The DUT's bidirectional power stage (what the charger converts between AC and DC)."""
    ramp_w_per_s: float = 5_000.0
    standby_w: float = 10.0                              # loss with the contactor open
    charge: DirectionLimits = field(default_factory=DirectionLimits)
    discharge: DirectionLimits = field(default_factory=lambda: DirectionLimits(
        p_max_w=10_000.0, i_max_a=30.0, loss=(60.0, 0.025, 1.2e-6)))
    contactor_closed0: bool = False


@dataclass
class GridConfig:
    voltage_v: float = 230.0                             # line-to-neutral
    freq_hz: float = 50.0
    phases: int = 3


@dataclass
class MeasurementConfig:
    """Noise and resolution of the simulated instruments' measurement paths."""
    noise_rel: float = 0.0005                            # 1-sigma relative noise on U, I, P
    noise_abs: float = 0.0                               # 1-sigma absolute noise (same unit)
    resolution: float = 1.0e-4                           # relative display resolution (5 digits)
    sample_rate_hz: float = 20.0                         # update rate of the measurement path


@dataclass
class BatteryEmulatorConfig:
    emulation: str = "BATT"                              # RP7900 EMULation at power-up
    output_on0: bool = False                             # off at power-up, as a real RP7900: the bench switches it on
    voltage_set_v: float = 370.0
    current_limit_pos_a: float = 40.0                    # vendor +: the emulator SOURCES
    current_limit_neg_a: float = -40.0                   # vendor -: the emulator SINKS
    power_limit_w: float = 20_000.0
    ovp_v: float = 550.0
    model: str = "RP7952A"
    rating_v: float = 950.0                              # programming ranges of the model
    rating_a: float = 40.0
    rating_w: float = 20_000.0


@dataclass
class PlantConfig:
    battery: BatteryConfig = field(default_factory=BatteryConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    emulator: BatteryEmulatorConfig = field(default_factory=BatteryEmulatorConfig)
    max_step_s: float = 1.0                              # steady-state sub-step
    fine_step_s: float = 0.02                            # sub-step while lagging

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, *, where: str = "lab config [plant]") -> "PlantConfig":
        """Build from a TOML table; unknown keys are errors (a typo must not be silently ignored)."""
        d = dict(d or {})
        errors: list[str] = []

        def build(kind, data, path):
            if not isinstance(data, Mapping):
                errors.append(f"{path}: expected a table, got {type(data).__name__}")
                return kind()
            known = {f.name: f for f in fields(kind)}
            kwargs = {}
            for k, v in data.items():
                if k not in known:
                    errors.append(f"{path}.{k}: unknown key (known: {', '.join(sorted(known))})")
                    continue
                sub = _NESTED.get((kind, k))
                if sub is not None:
                    kwargs[k] = build(sub, v, f"{path}.{k}")
                elif k in ("ocv_table",):
                    try:
                        kwargs[k] = [(float(s), float(u)) for s, u in v]
                    except (TypeError, ValueError):
                        errors.append(f"{path}.{k}: expected a list of [soc, volts] pairs")
                elif k == "loss":
                    try:
                        a, b, c = (float(x) for x in v)
                        kwargs[k] = (a, b, c)
                    except (TypeError, ValueError):
                        errors.append(f"{path}.{k}: expected [a, b, c] (loss = a + b|P| + cP^2)")
                else:
                    default = getattr(kind(), k)
                    try:
                        kwargs[k] = type(default)(v) if not isinstance(default, bool) else _as_bool(v)
                    except (TypeError, ValueError):
                        errors.append(f"{path}.{k}: expected {type(default).__name__}, got {v!r}")
            return kind(**kwargs)

        cfg = build(cls, d, "plant")
        errors += cfg.problems()
        if errors:
            from v2g_bench.errors import ProfileError
            raise ProfileError(errors, where=where)
        return cfg

    def problems(self) -> list[str]:
        p: list[str] = []
        b = self.battery
        if b.capacity_wh <= 0:
            p.append("plant.battery.capacity_wh must be > 0")
        if not (0 <= b.soc_min < b.soc_max <= 1):
            p.append("plant.battery: need 0 <= soc_min < soc_max <= 1")
        if not (0 <= b.soc0 <= 1):
            p.append("plant.battery.soc0 must be within 0..1")
        socs = [s for s, _ in b.ocv_table]
        if len(socs) < 2 or socs != sorted(socs) or socs[0] > 0 or socs[-1] < 1:
            p.append("plant.battery.ocv_table must be >= 2 points, sorted by soc, covering 0..1")
        if b.r_ohm < 0:
            p.append("plant.battery.r_ohm must be >= 0")
        if self.stage.ramp_w_per_s <= 0:
            p.append("plant.stage.ramp_w_per_s must be > 0")
        for name in ("charge", "discharge"):
            d: DirectionLimits = getattr(self.stage, name)
            if d.p_max_w < 0 or d.i_max_a < 0 or d.v_min_v < 0 or d.v_max_v <= d.v_min_v:
                p.append(f"plant.stage.{name}: limits must be >= 0 and v_max_v > v_min_v")
            if any(x < 0 for x in d.loss):
                p.append(f"plant.stage.{name}.loss: coefficients must be >= 0")
        if self.grid.phases not in (1, 3):
            p.append("plant.grid.phases must be 1 or 3")
        if self.measurement.sample_rate_hz <= 0:
            p.append("plant.measurement.sample_rate_hz must be > 0")
        if self.max_step_s <= 0 or self.fine_step_s <= 0:
            p.append("plant.max_step_s and fine_step_s must be > 0")
        return p


_NESTED = {
    (PlantConfig, "battery"): BatteryConfig,
    (PlantConfig, "stage"): StageConfig,
    (PlantConfig, "grid"): GridConfig,
    (PlantConfig, "measurement"): MeasurementConfig,
    (PlantConfig, "emulator"): BatteryEmulatorConfig,
    (StageConfig, "charge"): DirectionLimits,
    (StageConfig, "discharge"): DirectionLimits,
}


def _as_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "1", "on", "yes"):
        return True
    if isinstance(v, str) and v.lower() in ("false", "0", "off", "no"):
        return False
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    raise ValueError(v)


