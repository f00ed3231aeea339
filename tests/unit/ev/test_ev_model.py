import pytest

from v2g_bench.errors import BenchError
from v2g_bench.ev.model import EVModel, Phase, PlanCursor


def test_soc_follows_measured_energy_not_requests():
    counters = {"imp": 100.0, "exp": 50.0}
    m = EVModel(capacity_wh=10_000, soc=0.5, energy_source=lambda: (counters["imp"], counters["exp"]))
    m.start()
    counters["imp"] += 1000.0     # the analyzer saw 1 kWh in ...
    counters["exp"] += 250.0      # ... and 0.25 kWh out
    assert m.update_soc() == pytest.approx(0.5 + 750 / 10_000)


def test_requests_respect_limits_and_soc_window():
    m = EVModel(soc=0.5, target_soc=0.8, min_soc=0.2, max_charge_power_w=7000, max_discharge_power_w=5000)
    assert m.allowed_power(20_000) == 7000
    assert m.allowed_power(-20_000) == -5000
    m.soc = 0.85
    assert m.allowed_power(5000) == 0.0
    m.soc = 0.1
    assert m.allowed_power(-5000) == 0.0
    assert m.ocv(0.0) < m.ocv(0.5) < m.ocv(1.0)


def test_plan_cursor_walks_phases_by_time():
    m = EVModel(soc=0.5)
    c = PlanCursor([Phase(5000, 1.0), Phase(-5000, 1.0)])
    assert c.advance(m, now=0.0).power_w == 5000
    assert c.advance(m, now=1.5).power_w == -5000
    assert c.advance(m, now=3.0) is None and c.done


def test_bad_model_and_plan_rejected():
    with pytest.raises(BenchError, match="soc"):
        EVModel(soc=1.5)
    with pytest.raises(BenchError, match="duration_s or until_soc"):
        Phase(1000)
