"""Dantzig-Wolfe with blocks of EVs and a feeder limit tree, checked against LPs written here independently
(scipy's linprog on our own constraint matrix: shares no model-building code with the scheduler)."""
import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.sparse import lil_matrix

from v2g_bench.scheduler import ScheduleInputError, Site, interval_window, plan_fleet_decomposed
from v2g_bench.scheduler.fleet import FeederLimit, plan_fleet_tree_lp
from scheduler_fleets import random_fleet


def _fleet(n, seed, T=24):
    return random_fleet(n, seed, T, efficiencies=True)


def reference_lp(site, evs, groups_limits):
    """min sum tariff + degradation s.t. each EV's dynamics, and for each (members, limit): sum net + base <= limit."""
    T, h, N = site.n, site.h, len(evs)
    nv = 3 * T * N
    cost = np.zeros(nv)
    bounds = []
    A_eq, b_eq = lil_matrix((T * N, nv)), np.zeros(T * N)
    for i, ev in enumerate(evs):
        c0, d0, e0 = 3 * T * i, 3 * T * i + T, 3 * T * i + 2 * T
        a, b = interval_window(site, ev)
        k = ev.degradation_per_kwh
        cost[c0:c0 + T] = h * (site.import_price + k * ev.eta_charge)
        cost[d0:d0 + T] = h * (-site.export_price + k / ev.eta_discharge)
        for t in range(T):
            on = a <= t < b
            bounds.append((0, ev.max_charge_kw if on else 0))
        for t in range(T):
            on = a <= t < b
            bounds.append((0, ev.max_discharge_kw if on else 0))
        for t in range(T):
            bounds.append((max(ev.min_kwh, ev.target_kwh) if t >= b - 1 else ev.min_kwh, ev.capacity_kwh))
        for t in range(T):
            r = i * T + t
            A_eq[r, e0 + t] = 1
            if t:
                A_eq[r, e0 + t - 1] = -1
            A_eq[r, c0 + t] = -ev.eta_charge * h
            A_eq[r, d0 + t] = h / ev.eta_discharge
            b_eq[r] = ev.soc_kwh if t == 0 else 0
    rows = []
    for members, limit, base in groups_limits:
        for t in range(T):
            row = np.zeros(nv)
            for i in members:
                row[3 * T * i + t] = 1
                row[3 * T * i + T + t] = -1
            rows.append((row, limit - base[t]))
    A_ub = np.array([r for r, _ in rows])
    b_ub = np.array([b for _, b in rows])
    res = linprog(cost, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq.tocsr(), b_eq=b_eq, bounds=bounds, method="highs")
    assert res.status == 0, res.message
    return res.fun


@pytest.mark.parametrize("block", [1, 3, 8])
def test_blocks_of_evs_reach_the_monolithic_optimum(block):
    p, evs = _fleet(16, 21)
    site = Site(import_price=p, export_price=p - 0.02, dt_s=3600, load_kw=np.full(p.size, 20.0), import_limit_kw=55.0)
    ref = reference_lp(site, evs, [(range(16), 55.0, site.base_kw())])
    r = plan_fleet_decomposed(site, evs, block_size=block, seed_sample=0)
    assert r.total_cost == pytest.approx(ref, rel=1e-6, abs=1e-6)
    assert r.gap <= 1e-6 * abs(ref)
    assert r.site_kw(site).max() <= 55.0 + 1e-6


def test_smoothed_duals_reach_the_same_optimum():
    p, evs = _fleet(14, 8)
    site = Site(import_price=p, export_price=p - 0.02, dt_s=3600, load_kw=np.full(p.size, 20.0), import_limit_kw=50.0)
    ref = reference_lp(site, evs, [(range(14), 50.0, site.base_kw())])
    r = plan_fleet_decomposed(site, evs, block_size=2, smoothing=0.5, seed_sample=0)
    assert r.total_cost == pytest.approx(ref, rel=1e-6, abs=1e-6)
    assert r.gap <= 1e-6 * abs(ref)


def _nested_tree():
    """18 EVs, feeders A (A1 nested in it) and B (with its own load) under a site limit, and the independent
    LP's optimum for them."""
    p, evs = _fleet(18, 5)
    site = Site(import_price=p, export_price=p - 0.02, dt_s=3600, load_kw=np.full(p.size, 10.0), import_limit_kw=70.0)
    names = [e.name for e in evs]
    feeders = [FeederLimit("A", tuple(names[:10]), import_limit_kw=30.0),
               FeederLimit("A1", tuple(names[:4]), import_limit_kw=12.0, parent="A"),
               FeederLimit("B", tuple(names[10:]), import_limit_kw=28.0, load_kw=np.full(p.size, 2.0))]
    zero = np.zeros(p.size)
    ref = reference_lp(site, evs, [(range(18), 70.0, site.base_kw()), (range(10), 30.0, zero),
                                   (range(4), 12.0, zero), (range(10, 18), 28.0, np.full(p.size, 2.0))])
    return site, evs, feeders, ref


@pytest.mark.parametrize("seed_sample", [0, 4])   # 4 of 18 EVs: first columns priced at a sample LP's duals
def test_feeder_tree_limits_are_met_at_the_optimum(seed_sample):
    site, evs, feeders, ref = _nested_tree()
    free = plan_fleet_decomposed(site, evs, block_size=2)
    r = plan_fleet_decomposed(site, evs, block_size=2, feeders=feeders, seed_sample=seed_sample)
    assert r.total_cost == pytest.approx(ref, rel=1e-6, abs=1e-6)
    assert r.total_cost > free.total_cost + 1e-6          # the feeders do bind
    assert r.power_kw[:10].sum(axis=0).max() <= 30.0 + 1e-6
    assert r.power_kw[:4].sum(axis=0).max() <= 12.0 + 1e-6
    assert (r.power_kw[10:].sum(axis=0) + 2.0).max() <= 28.0 + 1e-6


def test_the_tree_lp_reference_equals_the_independent_lp_and_the_decomposition():
    site, evs, feeders, ref = _nested_tree()
    lp = plan_fleet_tree_lp(site, evs, feeders)
    assert lp.total_cost == pytest.approx(ref, rel=1e-7, abs=1e-7)
    assert lp.power_kw[:4].sum(axis=0).max() <= 12.0 + 1e-6
    # a larger tree, EVs directly under the site too: the decomposition (seeded, purging) equals the LP
    p, evs = _fleet(90, 11)
    site = Site(import_price=p, export_price=p - 0.02, dt_s=3600, load_kw=np.full(p.size, 30.0), import_limit_kw=190.0)
    names = [e.name for e in evs]
    feeders = [FeederLimit(f"F{i}", tuple(names[20 * i:20 * i + 20]), import_limit_kw=22.0) for i in range(4)]
    lp = plan_fleet_tree_lp(site, evs, feeders)
    dw = plan_fleet_decomposed(site, evs, feeders=feeders, block_size=2, seed_sample=20, purge=1.0, rel_gap=1e-9)
    assert dw.total_cost == pytest.approx(lp.total_cost, rel=1e-7)
    assert dw.total_cost > plan_fleet_decomposed(site, evs, block_size=2).total_cost + 1e-6   # the feeders bind


@pytest.mark.parametrize("feeders, match", [
    ([FeederLimit("A", ("ev0", "nobody"), 10.0)], "unknown EV"),
    ([FeederLimit("A", ("ev0", "ev1"), 10.0), FeederLimit("B", ("ev1", "ev2"), 10.0)], "overlaps"),
    ([FeederLimit("A", ("ev0",), 10.0), FeederLimit("A1", ("ev0", "ev1"), 5.0, parent="A")], "outside its parent"),
    ([FeederLimit("A1", ("ev0",), 5.0, parent="A")], "not defined before"),
    ([FeederLimit("A", ("ev0",), -1.0)], ">= 0"),
])
def test_bad_feeder_trees_are_refused_with_the_reason(feeders, match):
    p, evs = _fleet(4, 1)
    site = Site(import_price=p, dt_s=3600, import_limit_kw=100.0)
    with pytest.raises(ScheduleInputError, match=match):
        plan_fleet_decomposed(site, evs, feeders=feeders)


def test_a_process_shard_that_dies_fails_the_plan_clearly():
    import os

    from v2g_bench.scheduler.fleet import PlanWorkerLost, ProcessShard
    p, evs = _fleet(4, 2)
    site = Site(import_price=p, dt_s=3600)
    s = ProcessShard(site, evs, list(range(4)))
    try:
        os.kill(s.proc.pid, 9)
        s.proc.join(10)
        with pytest.raises(PlanWorkerLost, match="died mid-plan|is gone"):
            s.send("price", 0, np.zeros((1, p.size)), np.zeros(4))
            s.recv(timeout_s=10)
    finally:
        s.close()
