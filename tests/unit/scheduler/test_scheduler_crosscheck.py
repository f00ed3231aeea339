"""HiGHS against an independent exact method (convex piecewise-linear DP, reference.py) on random instances,
and the fleet paths against each other."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2g_bench.scheduler import (EVRequest, InfeasibleSchedule, Scheduler, Site, plan_fleet_decomposed,
                                 plan_fleet_independent, plan_fleet_shared)
from v2g_bench.scheduler.reference import reference_cost
from v2g_bench.verification import judge_plan_guarantees
from scheduler_fleets import random_fleet

SCHED = Scheduler()   # one warm scheduler across examples: also exercises model reuse


@st.composite
def instances(draw, max_t=24, negative=True):
    T = draw(st.integers(2, max_t))
    lo = -0.3 if negative else 0.0
    p = np.array(draw(st.lists(st.floats(lo, 0.6), min_size=T, max_size=T)))
    spread = np.array(draw(st.lists(st.floats(0, 0.1), min_size=T, max_size=T)))
    dt = draw(st.sampled_from([900.0, 1800.0, 3600.0]))
    cap = draw(st.floats(20, 100))
    floor = draw(st.floats(0, 0.3)) * cap
    soc = draw(st.floats(floor, cap))
    target = draw(st.floats(floor, cap))
    arr = draw(st.integers(0, T - 1))
    dep = draw(st.integers(arr + 1, T))
    ev = EVRequest("ev", cap, soc, target, dep * dt, max_charge_kw=draw(st.floats(1, 22)),
                   max_discharge_kw=draw(st.sampled_from([0.0, 3.7, 11.0])), floor_kwh=floor, arrival_s=arr * dt,
                   eta_charge=draw(st.floats(0.8, 1.0)), eta_discharge=draw(st.floats(0.8, 1.0)),
                   degradation_per_kwh=draw(st.sampled_from([0.0, 0.01, 0.05])))
    return Site(import_price=p, export_price=p - spread, dt_s=dt), ev


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_lp_matches_the_exact_dp(case):
    site, ev = case
    ref = reference_cost(site, ev)
    try:
        plan = SCHED.plan(site, ev)
    except InfeasibleSchedule:
        assert ref is None, f"HiGHS says infeasible, the DP finds cost {ref}"
        return
    assert ref is not None
    if plan.method == "lp":
        assert plan.cost.total == pytest.approx(ref, abs=2e-5, rel=1e-7)   # HiGHS tolerances are 1e-7
    else:  # MILP repair: never better than the relaxation
        assert plan.cost.total >= ref - 1e-6
    e = plan.evs[0]
    assert not np.any((e.charge_kw > 1e-9) & (e.discharge_kw > 1e-9))
    assert judge_plan_guarantees(plan, ev, tolerance_kwh=1e-6).verdict == "pass"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(max_t=8))
def test_milp_repair_is_the_exact_exclusive_optimum(case):
    site, ev = case
    # make wasting energy attractive often: deep negative prices
    site = Site(import_price=site.import_price - 1.5, export_price=site.export_price - 1.5, dt_s=site.dt_s)
    ref = reference_cost(site, ev, exclusive=True)
    try:
        plan = SCHED.plan(site, ev)
    except InfeasibleSchedule:
        assert ref is None
        return
    assert plan.cost.total == pytest.approx(ref, abs=1e-6)


def _fleet(n, seed, T=24):
    return random_fleet(n, seed, T)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dantzig_wolfe_equals_the_monolithic_lp(seed):
    p, evs = _fleet(12, seed)
    base = np.full(p.size, 20.0)
    site = Site(import_price=p, export_price=p - 0.02, dt_s=3600, load_kw=base, import_limit_kw=45.0)
    exact = plan_fleet_shared(site, evs, metering="ev")
    dw = plan_fleet_decomposed(site, evs, workers=1)
    assert dw.total_cost == pytest.approx(exact.total_cost, rel=1e-6, abs=1e-6)
    assert dw.gap <= 1e-6 * max(1.0, abs(dw.total_cost))
    assert dw.site_kw(site).max() <= 45.0 + 1e-6
    assert exact.site_kw(site).max() <= 45.0 + 1e-6
    for j, ev in enumerate(evs):   # every EV still meets its own target
        b = int(ev.departure_s // 3600)
        assert dw.soc_kwh[j, b] >= ev.target_kwh - 1e-6


def test_dantzig_wolfe_seeded_from_a_sample_stays_exact():
    p, evs = _fleet(16, 11)
    site = Site(import_price=p, export_price=p - 0.02, dt_s=3600, load_kw=np.full(p.size, 20.0), import_limit_kw=50.0)
    exact = plan_fleet_shared(site, evs, metering="ev")
    seeded = plan_fleet_decomposed(site, evs, workers=1, seed_sample=5)
    plain = plan_fleet_decomposed(site, evs, workers=1, seed_sample=0)
    assert seeded.total_cost == pytest.approx(exact.total_cost, rel=1e-6, abs=1e-6)
    assert plain.total_cost == pytest.approx(exact.total_cost, rel=1e-6, abs=1e-6)
    assert seeded.site_kw(site).max() <= 50 + 1e-6


def test_dantzig_wolfe_with_process_shards():
    p, evs = _fleet(10, 7)
    site = Site(import_price=p, dt_s=3600, load_kw=np.full(p.size, 10.0), import_limit_kw=40.0)
    one = plan_fleet_decomposed(site, evs, workers=1)
    two = plan_fleet_decomposed(site, evs, workers=2)
    assert two.total_cost == pytest.approx(one.total_cost, rel=1e-7, abs=1e-7)


def test_independent_fleet_equals_single_plans():
    p, evs = _fleet(25, 4)
    site = Site(import_price=p, export_price=p - 0.01, dt_s=3600)
    fleet = plan_fleet_independent(site, evs, workers=1)
    for j in (0, 7, 24):
        single = Scheduler().plan(site, evs[j])
        assert fleet.cost[j] == pytest.approx(single.cost.total, abs=1e-7)
    assert fleet.total_cost == pytest.approx(sum(reference_cost(site, e) for e in evs), abs=1e-6)


def test_shared_limit_binds_where_independent_plans_exceed_it():
    p, evs = _fleet(12, 9)
    site = Site(import_price=p, dt_s=3600, import_limit_kw=40.0)
    free = plan_fleet_independent(site, evs, workers=1)
    assert free.site_kw(site).max() > 40   # the case is built so the limit matters
    shared = plan_fleet_shared(site, evs)
    assert shared.site_kw(site).max() <= 40 + 1e-6
    assert shared.total_cost >= free.total_cost - 1e-9   # a constraint never makes it cheaper


def test_independent_fleet_in_worker_processes_matches_in_process():
    p, evs = _fleet(240, 12)
    site = Site(import_price=p, export_price=p - 0.01, dt_s=3600)
    one = plan_fleet_independent(site, evs, workers=1)
    two = plan_fleet_independent(site, evs, workers=2)
    assert "2 worker" in two.method
    np.testing.assert_allclose(two.cost, one.cost, atol=1e-7)   # plans may differ between equal-cost optima
    for j, ev in enumerate(evs):
        assert two.soc_kwh[j, int(ev.departure_s // 3600)] >= ev.target_kwh - 1e-6
