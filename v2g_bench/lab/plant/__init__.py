"""The virtual lab's one physical model (the plant) and its one clock - see model.py for the physics.

clock (LabClock), config (PlantConfig and its parts), state (PlantState), faults (the fault catalogue),
measurement (seeded noise, quantisation), model (Plant: the coupled DC link, battery, power stage, grid).
"""
from v2g_bench.lab.plant.clock import LabClock  # noqa: F401
from v2g_bench.lab.plant.config import (  # noqa: F401
    _NESTED,
    BatteryConfig,
    BatteryEmulatorConfig,
    DirectionLimits,
    GridConfig,
    MeasurementConfig,
    PlantConfig,
    StageConfig,
    _as_bool,
)
from v2g_bench.lab.plant.faults import FAULTS, TRANSPORT_FAULTS, FaultError, fault_key  # noqa: F401
from v2g_bench.lab.plant.measurement import (  # noqa: F401
    _STREAMS,
    Measurement,
    _quantise,
    _splitmix64,
    seeded_gauss,
)
from v2g_bench.lab.plant.model import (  # noqa: F401
    Plant,
    __all__,
    _EmulatorSettings,
    energy_balance_error_wh,
)
from v2g_bench.lab.plant.state import PlantState  # noqa: F401
