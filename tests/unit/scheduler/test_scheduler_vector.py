"""The vectorised exact pricing DP (scheduler/vector.py) against HiGHS (FastEVSolver, the reference) on random
instances with random coordination prices, and the Dantzig-Wolfe plan priced by it against the HiGHS-priced one
and the monolithic LP."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2g_bench.scheduler import EVRequest, ScheduleInputError, Site, plan_fleet_decomposed, plan_fleet_shared
from v2g_bench.scheduler.fleet import FastEVSolver, FeederLimit, LocalShard
from v2g_bench.scheduler.model import interval_window
from v2g_bench.scheduler.vector import FleetArrays, VectorShard, solve_fleet
from scheduler_fleets import random_fleet


@st.composite
def fleets(draw, max_t=24, max_n=6):
    T = draw(st.integers(2, max_t))
    p = np.array(draw(st.lists(st.floats(-0.3, 0.6), min_size=T, max_size=T)))
    spread = np.array(draw(st.lists(st.floats(0, 0.1), min_size=T, max_size=T)))
    dt = draw(st.sampled_from([900.0, 1800.0, 3600.0]))
    evs = []
    for i in range(draw(st.integers(1, max_n))):
        cap = draw(st.floats(20, 100))
        floor = draw(st.floats(0, 0.3)) * cap
        arr = draw(st.integers(0, T - 1))
        dep = draw(st.integers(arr + 1, T))
        evs.append(EVRequest(f"ev{i}", cap, draw(st.floats(floor, cap)), draw(st.floats(floor, cap)), dep * dt,
                             max_charge_kw=draw(st.floats(1, 22)),
                             max_discharge_kw=draw(st.sampled_from([0.0, 3.7, 11.0])), floor_kwh=floor,
                             arrival_s=arr * dt, eta_charge=draw(st.floats(0.8, 1.0)),
                             eta_discharge=draw(st.floats(0.8, 1.0)),
                             degradation_per_kwh=draw(st.sampled_from([0.0, 0.01, 0.05]))))
    # coordination prices per kW and interval, as the master's duals give them (some deep: wasting pays)
    scale = draw(st.sampled_from([0.0, 0.05, 1.0]))
    extra = np.array(draw(st.lists(st.floats(-1, 1), min_size=T * len(evs), max_size=T * len(evs))))
    return Site(import_price=p, export_price=p - spread, dt_s=dt), evs, scale * extra.reshape(len(evs), T)


def _check_plan(site, ev, c, d):
    """The DP's plan obeys the EV's own limits (what HiGHS's constraints say)."""
    a, b = interval_window(site, ev)
    T, h = site.n, site.h
    on = (np.arange(T) >= a) & (np.arange(T) < b)
    assert np.all(c >= -1e-12) and np.all(d >= -1e-12)
    assert np.all(c <= np.where(on, ev.max_charge_kw, 0) + 1e-9)
    assert np.all(d <= np.where(on, ev.max_discharge_kw, 0) + 1e-9)
    e = ev.soc_kwh + np.cumsum(ev.eta_charge * h * c - h * d / ev.eta_discharge)
    assert np.all(e >= ev.min_kwh - 1e-6) and np.all(e <= ev.capacity_kwh + 1e-6)
    if b >= 1:
        assert np.all(e[b - 1:] >= max(ev.min_kwh, ev.target_kwh) - 1e-6)


_SOLVERS: dict = {}


def _highs(site):
    """One kept HiGHS model per (intervals, dt): its layout depends only on them (prices are read per solve)."""
    solver = _SOLVERS.get((site.n, site.dt_s))
    if solver is None:
        solver = _SOLVERS[(site.n, site.dt_s)] = FastEVSolver(site)
    solver.site = site
    return solver


def _dp_matches_highs(engine, case):
    site, evs, extra = case
    C, D, tariff, ok = solve_fleet(FleetArrays(site, evs), extra, engine=engine)
    solver = _highs(site)
    for i, ev in enumerate(evs):
        r = solver.solve(ev, extra_kw_cost=extra[i])
        if r is None:
            assert not ok[i], f"HiGHS finds {ev.name} infeasible, the DP gives a plan"
            continue
        assert ok[i], f"the DP finds {ev.name} infeasible, HiGHS gives a plan"
        c, d, tr = r
        ref = tr + float(extra[i] @ (c - d))
        got = tariff[i] + float(extra[i] @ (C[i] - D[i]))
        assert got == pytest.approx(ref, abs=2e-5, rel=1e-7)     # HiGHS tolerances are 1e-7
        _check_plan(site, ev, C[i], D[i])
        assert tariff[i] == pytest.approx(float(site.h * (site.import_price @ C[i] - site.export_price @ D[i])
                                                + site.h * ev.degradation_per_kwh
                                                * np.sum(ev.eta_charge * C[i] + D[i] / ev.eta_discharge)))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=fleets())
def test_dp_pricing_matches_highs(case):
    _dp_matches_highs("numba", case)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=fleets())
def test_numpy_fallback_matches_highs(case):
    """The same DP without numba (one numpy operation per interval for all EVs): slower, same answers."""
    _dp_matches_highs("numpy", case)


def _coupled(n, T=24, seed=3):
    p, evs = random_fleet(n, seed, T, efficiencies=True)
    site = Site(import_price=p, export_price=p - 0.02, dt_s=3600.0, load_kw=np.full(T, 20.0),
                import_limit_kw=20 + 3.5 * n)
    return site, evs


@pytest.mark.parametrize("block_size", [1, 4])
def test_dw_priced_by_the_dp_is_the_monolithic_optimum(block_size):
    site, evs = _coupled(60)
    exact = plan_fleet_shared(site, evs)
    dp = plan_fleet_decomposed(site, evs, block_size=block_size, pricing_engine="dp", rel_gap=1e-9)
    hi = plan_fleet_decomposed(site, evs, block_size=block_size, pricing_engine="highs", rel_gap=1e-9)
    assert dp.total_cost == pytest.approx(exact.total_cost, rel=1e-7)
    assert dp.total_cost == pytest.approx(hi.total_cost, rel=1e-7)
    assert dp.gap <= 1e-9 * max(1.0, abs(dp.total_cost)) + 1e-9
    assert dp.site_kw(site).max() <= site.import_limit_kw + 1e-6
    for i, ev in enumerate(evs):   # every EV's own plan is feasible on its own
        _check_plan(site, ev, np.clip(dp.power_kw[i], 0, None), np.clip(-dp.power_kw[i], 0, None))


def test_purging_master_columns_keeps_the_optimum():
    """A master that deletes its non-basic columns every round still ends at the monolithic optimum, and the
    plan read from it matches its column list (a stale solution after a purge would mix up the EVs' plans)."""
    site, evs = _coupled(60)
    exact = plan_fleet_shared(site, evs)
    r = plan_fleet_decomposed(site, evs, block_size=2, purge=0.5, rel_gap=1e-9)
    assert any("purged" in n for n in r.notes)
    assert r.total_cost == pytest.approx(exact.total_cost, rel=1e-7)
    assert r.site_kw(site).max() <= site.import_limit_kw + 1e-6
    for i, ev in enumerate(evs):
        _check_plan(site, ev, np.clip(r.power_kw[i], 0, None), np.clip(-r.power_kw[i], 0, None))


def test_dp_shard_answers_like_the_highs_shard():
    site, evs = _coupled(30)
    groups = np.arange(30) // 5
    rng = np.random.default_rng(1)
    y, sigma = rng.normal(0, 0.05, (1, site.n)), rng.normal(0, 1, 6)
    g1, cost1, net1, rc1 = VectorShard(site, evs, list(range(30)), groups).price(1, y, sigma)
    g2, cost2, net2, rc2 = LocalShard(site, evs, list(range(30)), groups).price(1, y, sigma)
    assert list(g1) == list(g2)
    assert rc1 == pytest.approx(rc2, abs=1e-6)     # reduced costs equal (plans may differ on ties)


def test_dp_with_a_feeder_tree():
    site, evs = _coupled(40)
    feeders = [FeederLimit("f0", tuple(e.name for e in evs[:20]), import_limit_kw=45.0)]
    dp = plan_fleet_decomposed(site, evs, feeders=feeders, block_size=2, pricing_engine="dp", rel_gap=1e-9)
    hi = plan_fleet_decomposed(site, evs, feeders=feeders, block_size=2, pricing_engine="highs", rel_gap=1e-9)
    assert dp.total_cost == pytest.approx(hi.total_cost, rel=1e-7)
    assert dp.power_kw[:20].sum(axis=0).max() <= 45.0 + 1e-6


def test_bad_engine_is_refused():
    site, evs = _coupled(3)
    with pytest.raises(ScheduleInputError, match="pricing_engine"):
        plan_fleet_decomposed(site, evs, pricing_engine="cplex")
    with pytest.raises(ValueError, match="engine"):
        solve_fleet(FleetArrays(site, evs), engine="cplex")
