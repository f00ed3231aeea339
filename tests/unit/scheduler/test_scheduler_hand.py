"""The scheduler on cases whose optimum is computed by hand (h = 1 h intervals unless said otherwise)."""
import numpy as np
import pytest

from v2g_bench.errors import BenchError
from v2g_bench.scheduler import EVRequest, InfeasibleSchedule, Scheduler, ScheduleInputError, Site
from v2g_bench.scheduler.reference import reference_cost
from v2g_bench.verification import judge_plan_guarantees


def ev(**kw):
    base = dict(name="car", capacity_kwh=60, soc_kwh=20, target_kwh=20, departure_s=2 * 3600, max_charge_kw=10,
                max_discharge_kw=10, eta_charge=1.0, eta_discharge=1.0)
    base.update(kw)
    return EVRequest(**base)


def test_charges_in_the_cheap_interval():
    site = Site(import_price=[0.30, 0.10], dt_s=3600)
    plan = Scheduler().plan(site, ev(soc_kwh=10, target_kwh=20, max_discharge_kw=0))
    np.testing.assert_allclose(plan.evs[0].power_kw, [0, 10], atol=1e-9)
    assert plan.cost.total == pytest.approx(1.0)          # 10 kWh x 0.10
    np.testing.assert_allclose(plan.evs[0].soc_kwh, [10, 10, 20])
    assert plan.method == "lp"


def test_arbitrage_with_losses():
    # charge 10 kW at 0.10 (+9 kWh in the cells), sell back what keeps the SOC: d = 9 * 0.9 = 8.1 kW at 0.50
    site = Site(import_price=[0.10, 0.50], dt_s=3600)
    plan = Scheduler().plan(site, ev(eta_charge=0.9, eta_discharge=0.9))
    np.testing.assert_allclose(plan.evs[0].power_kw, [10, -8.1], atol=1e-9)
    assert plan.cost.total == pytest.approx(1.0 - 4.05)
    assert plan.evs[0].soc_kwh[-1] == pytest.approx(20.0)


def test_no_cycling_when_the_spread_does_not_pay_the_losses():
    site = Site(import_price=[0.10, 0.11], dt_s=3600)   # 0.11 * 0.81 < 0.10
    plan = Scheduler().plan(site, ev(eta_charge=0.9, eta_discharge=0.9))
    np.testing.assert_allclose(plan.evs[0].power_kw, [0, 0], atol=1e-9)
    assert plan.cost.total == pytest.approx(0.0)


def test_degradation_cost_stops_a_marginal_cycle():
    # spread 0.10 per kWh at eta 1; throughput 2 kWh per kWh cycled costs 2 * 0.06 = 0.12 > 0.10
    site = Site(import_price=[0.10, 0.20], dt_s=3600)
    plan = Scheduler().plan(site, ev(degradation_per_kwh=0.06))
    np.testing.assert_allclose(plan.evs[0].power_kw, [0, 0], atol=1e-9)
    plan = Scheduler().plan(site, ev(degradation_per_kwh=0.04))   # 0.08 < 0.10: cycle 10 kWh, gain 0.2
    np.testing.assert_allclose(plan.evs[0].power_kw, [10, -10], atol=1e-9)
    assert plan.cost.degradation == pytest.approx(0.8)
    assert plan.cost.total == pytest.approx(1.0 - 2.0 + 0.8)


def test_peak_shaving_under_a_connection_limit():
    site = Site(import_price=[0.2, 0.2], dt_s=3600, load_kw=[5, 15], import_limit_kw=10)
    plan = Scheduler().plan(site, ev(soc_kwh=30, target_kwh=25))
    assert plan.grid_kw.max() <= 10 + 1e-9
    assert plan.evs[0].power_kw[1] <= -5 + 1e-9
    # the cheapest way: discharge exactly the 5 kWh over the limit, energy bill 0.2 * (5 + 10)
    assert plan.cost.total == pytest.approx(3.0)


def test_demand_charge_flattens_the_peak():
    # load 10 then 20 kW; EV may shift 5 kWh: peak 15 kW is optimal (demand 10/kW -> 150, energy 0.1 * 30 = 3)
    site = Site(import_price=[0.1, 0.1], dt_s=3600, load_kw=[10, 20], demand_charge_per_kw=10.0)
    plan = Scheduler().plan(site, ev())
    np.testing.assert_allclose(plan.grid_kw, [15, 15], atol=1e-6)
    assert plan.cost.demand_charge == pytest.approx(150.0)
    assert plan.cost.total == pytest.approx(153.0)


def test_backup_reserve_is_never_used():
    # evening price 1.0: the EV would sell everything down to the floor, the reserve keeps 25 kWh
    site = Site(import_price=[1.0, 1.0], export_price=[1.0, 1.0], dt_s=3600)
    car = ev(soc_kwh=30, target_kwh=0, floor_kwh=0, reserve_kwh=25, max_discharge_kw=20)
    plan = Scheduler().plan(site, car)
    assert plan.evs[0].soc_kwh.min() == pytest.approx(25.0)
    assert plan.cost.total == pytest.approx(-5.0)
    assert judge_plan_guarantees(plan, car).verdict == "pass"


def test_pv_surplus_charges_the_ev_for_free():
    # 8 kWh needed, 10 kW of PV: charge 8 from PV, export the other 2 kW at 0.05
    site = Site(import_price=[0.3, 0.3], export_price=[0.05, 0.05], dt_s=3600, pv_kw=[10, 0])
    plan = Scheduler().plan(site, ev(soc_kwh=12, target_kwh=20, max_discharge_kw=0))
    np.testing.assert_allclose(plan.evs[0].power_kw, [8, 0], atol=1e-9)
    np.testing.assert_allclose(plan.grid_kw, [-2, 0], atol=1e-9)
    assert plan.cost.total == pytest.approx(-0.1)


def test_negative_prices_never_charge_and_discharge_at_once():
    # full battery, price -1: the LP optimum burns energy (charge 10, discharge 8.1 -> cost -1.9);
    # a single converter cannot, so the exact MILP answer is to do nothing (cost 0)
    site = Site(import_price=[-1.0], dt_s=3600)
    car = ev(soc_kwh=50, capacity_kwh=50, target_kwh=50, departure_s=3600, eta_charge=0.9, eta_discharge=0.9)
    assert reference_cost(site, car) == pytest.approx(-1.9)            # the LP relaxation
    plan = Scheduler().plan(site, car)
    e = plan.evs[0]
    assert not np.any((e.charge_kw > 0) & (e.discharge_kw > 0))
    assert plan.method.startswith("milp")
    assert plan.cost.total == pytest.approx(0.0, abs=1e-9)
    assert reference_cost(site, car, exclusive=True) == pytest.approx(0.0, abs=1e-12)
    assert any("charged and discharged at once" in n for n in plan.notes)


def test_negative_price_with_room_charges_only():
    site = Site(import_price=[-0.5, 0.2], dt_s=3600)
    plan = Scheduler().plan(site, ev(soc_kwh=20, target_kwh=20))
    np.testing.assert_allclose(plan.evs[0].power_kw, [10, -10], atol=1e-9)   # paid to charge, sells back
    assert plan.cost.total == pytest.approx(-5.0 - 2.0)


def test_unreachable_target_names_the_shortfall():
    site = Site(import_price=[0.2, 0.2], dt_s=3600)
    with pytest.raises(InfeasibleSchedule) as ex:
        Scheduler().plan(site, ev(soc_kwh=10, target_kwh=50))
    assert ex.value.shortfall_kwh == {"car": pytest.approx(20.0)}
    assert "short by 20.000 kWh" in str(ex.value)
    assert isinstance(ex.value, BenchError)


def test_floor_above_target_is_explained():
    site = Site(import_price=[0.2, 0.2], dt_s=3600)
    with pytest.raises(InfeasibleSchedule, match="floor 30 kWh is above the departure target 20 kWh"):
        Scheduler().plan(site, ev(soc_kwh=35, floor_kwh=30, target_kwh=20))


def test_present_soc_below_reserve_is_explained():
    site = Site(import_price=[0.2, 0.2], dt_s=3600)
    with pytest.raises(InfeasibleSchedule, match=r"below the reserve 25 kWh \(by 5.000 kWh\)"):
        Scheduler().plan(site, ev(soc_kwh=20, reserve_kwh=25, target_kwh=30))


def test_shared_limit_shortfall_is_split_by_the_elastic_explanation():
    # two EVs each need 10 kWh within 1 h, the site gives 15 kW: 5 kWh short in total
    site = Site(import_price=[0.2], dt_s=3600, import_limit_kw=15)
    a = ev(name="a", soc_kwh=0, target_kwh=10, departure_s=3600)
    b = ev(name="b", soc_kwh=0, target_kwh=10, departure_s=3600)
    with pytest.raises(InfeasibleSchedule) as ex:
        Scheduler().plan(site, [a, b])
    assert sum(ex.value.shortfall_kwh.values()) == pytest.approx(5.0, abs=1e-6)
    assert "short by" in str(ex.value)


def test_site_load_over_the_limit_even_with_full_discharge():
    site = Site(import_price=[0.2, 0.2], dt_s=3600, load_kw=[30, 5], import_limit_kw=10)
    with pytest.raises(InfeasibleSchedule, match="exceeds the import limit 10 kW by 10.000 kW"):
        Scheduler().plan(site, ev(soc_kwh=40))


@pytest.mark.parametrize("make, field", [
    (lambda: Site(import_price=[0.1, float("nan"), 0.2]), "import_price[1]"),
    (lambda: Site(import_price=[0.1, 0.2], export_price=[0.1]), "export_price has 1 intervals"),
    (lambda: Site(import_price=[]), "import_price is empty"),
    (lambda: Site(import_price=None), "import_price is missing"),
    (lambda: Site(import_price=[0.1, 0.2], export_price=[0.3, 0.1]), "export_price[0]"),
    (lambda: Site(import_price=[0.1], load_kw=[-1.0]), "load_kw[0]"),
    (lambda: ev(departure_s=-60), "departure_s = -60.0 is not after now"),
    (lambda: ev(capacity_kwh=-5), "capacity_kwh = -5.0 must be > 0"),
    (lambda: ev(soc_kwh=70), "soc_kwh = 70.0 exceeds capacity_kwh"),
    (lambda: ev(eta_charge=1.2), "eta_charge = 1.2 must be <= 1.0"),
    (lambda: ev(max_charge_kw=float("inf")), "max_charge_kw = inf is not finite"),
])
def test_bad_input_names_the_field(make, field):
    with pytest.raises(ScheduleInputError) as ex:
        make()
    assert field in str(ex.value)


def test_departure_after_the_horizon_is_refused():
    site = Site(import_price=[0.1, 0.2], dt_s=3600)
    with pytest.raises(ScheduleInputError, match="after the end of the price horizon"):
        Scheduler().plan(site, ev(departure_s=3 * 3600))


def test_warm_model_gives_the_same_answer_as_a_fresh_one():
    rng = np.random.default_rng(5)
    warm = Scheduler()
    for _ in range(20):
        p = rng.normal(0.2, 0.1, 96)
        site = Site(import_price=p, export_price=p - 0.01, dt_s=900)
        car = ev(soc_kwh=float(rng.uniform(10, 40)), target_kwh=45.0, departure_s=float(rng.integers(40, 96)) * 900,
                 eta_charge=float(rng.uniform(0.85, 0.97)), eta_discharge=float(rng.uniform(0.85, 0.97)))
        a = warm.plan(site, car)
        b = Scheduler().plan(site, car)
        assert a.cost.total == pytest.approx(b.cost.total, abs=1e-7)
    assert len(warm._cache) == 1   # one model reused (efficiency changes went through changeCoeff)
