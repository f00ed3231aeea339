"""The random fleet the scheduler tests plan: EVs arriving in the first half of the day, leaving 6+ h later,
60 kWh packs, 11 kW both ways; prices a sine plus noise. One generator, so the tests compare like with like."""
from __future__ import annotations

import numpy as np

from v2g_bench.scheduler import EVRequest


def random_fleet(n: int, seed: int, T: int = 24, *, efficiencies: bool = False):
    """-> (hourly import price per interval, [EVRequest]); `efficiencies` gives the packs 93 %/95 % charge/discharge."""
    rng = np.random.default_rng(seed)
    price = 0.2 + 0.1 * np.sin(np.arange(T) / 3) + 0.02 * rng.random(T)
    eta = {"eta_charge": 0.93, "eta_discharge": 0.95} if efficiencies else {}
    evs = []
    for i in range(n):
        a = int(rng.integers(0, T // 2))
        d = int(rng.integers(a + 6, T + 1))
        evs.append(EVRequest(f"ev{i}", 60, float(rng.uniform(10, 30)), float(rng.uniform(30, 45)), d * 3600.0,
                             max_charge_kw=11, max_discharge_kw=11, floor_kwh=5, arrival_s=a * 3600.0,
                             degradation_per_kwh=0.02, **eta))
    return price, evs
