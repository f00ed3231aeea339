"""Reference scheduler speed: one EV warm, 10,000 independent EVs, a shared limit over 1,000 EVs, and the
Dantzig-Wolfe decomposition path for coupled fleets.

    python -m benchmarks.scheduler_fleet                 # all four (about 20-30 s on 2 cores)
    python -m benchmarks.scheduler_fleet single indep    # a subset
    python -m benchmarks.scheduler_fleet dw --coupled 10000 --workers 2   # the long one

Goals (issue 7): single <= 1 ms warm, 10k independent <= 3 s, 1k shared <= 10 s.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from v2g_bench.scheduler import (EVRequest, Scheduler, Site, plan_fleet_decomposed, plan_fleet_independent,
                                 plan_fleet_shared)
from v2g_bench.scheduler.fleet import FastEVSolver

T = 96
DT = 900.0


def tariff(seed=0):
    rng = np.random.default_rng(seed)
    p = 0.25 + 0.10 * np.sin(np.arange(T) / 96 * 2 * np.pi - 1.0) + 0.03 * rng.random(T)
    return p, p - 0.02


def fleet(n, seed=1):
    rng = np.random.default_rng(seed)
    evs = []
    for i in range(n):
        a = int(rng.integers(0, 40))
        d = int(rng.integers(a + 24, T + 1))
        evs.append(EVRequest(f"ev{i}", float(rng.choice([40, 60, 77, 100])), 0.0, 0.0, d * DT, 11.0, 11.0,
                             arrival_s=a * DT, floor_kwh=5.0, degradation_per_kwh=0.03,
                             eta_charge=0.93, eta_discharge=0.93))
        e = evs[-1]
        e.soc_kwh = float(rng.uniform(0.15, 0.5)) * e.capacity_kwh
        reach = e.soc_kwh + 0.9 * e.eta_charge * e.max_charge_kw * (d - a) * DT / 3600  # keep it feasible
        e.target_kwh = min(float(rng.uniform(0.6, 0.85)) * e.capacity_kwh, reach)
    return evs


def bench_single(reps=500):
    p, pe = tariff()
    site = Site(import_price=p, export_price=pe, dt_s=DT)
    evs = fleet(reps, seed=2)
    sched = Scheduler()
    sched.plan(site, evs[0])
    ts = []
    for ev in evs:
        t0 = time.perf_counter()
        sched.plan(site, ev)
        ts.append(time.perf_counter() - t0)
    fast = FastEVSolver(site)
    tf = []
    for ev in evs:
        t0 = time.perf_counter()
        fast.solve(ev)
        tf.append(time.perf_counter() - t0)
    ts, tf = np.array(ts[10:]) * 1e3, np.array(tf[10:]) * 1e3
    print(f"single EV x {T} intervals, warm (different EV each solve): Scheduler.plan median {np.median(ts):.3f} ms, "
          f"p90 {np.percentile(ts, 90):.3f} ms; FastEVSolver median {np.median(tf):.3f} ms, "
          f"p90 {np.percentile(tf, 90):.3f} ms  (goal <= 1 ms)")


def bench_independent(n=10_000, workers=2):
    p, pe = tariff()
    site = Site(import_price=p, export_price=pe, dt_s=DT)
    evs = fleet(n)
    r = plan_fleet_independent(site, evs, workers=workers)
    print(f"{n} independent EVs x {T}: {r.solve_time_s:.2f} s with {workers} worker process(es) "
          f"({1e3 * r.solve_time_s / n * workers:.3f} ms per EV per core), total cost {r.total_cost:.1f}; "
          f"{'; '.join(r.notes) or 'no MILP repair needed'}  (goal <= 3 s)")


def _shared_site(n):
    p, pe = tariff()
    load = 1.5 * n * (1 + 0.5 * np.sin(np.arange(T) / 96 * 2 * np.pi - 1.2))
    return Site(import_price=p, export_price=pe, dt_s=DT, load_kw=load, import_limit_kw=3.6 * n)


def bench_shared(n=1_000):
    site = _shared_site(n)
    evs = fleet(n)
    free = plan_fleet_independent(site, evs, workers=1 if n < 2000 else 2)
    r = plan_fleet_shared(site, evs)
    print(f"{n} EVs under a shared {site.import_limit_kw:.0f} kW limit (one LP, dual simplex): "
          f"{r.solve_time_s:.2f} s, peak {r.site_kw(site).max():.1f} kW (uncoordinated peak "
          f"{free.site_kw(site).max():.1f} kW), cost {r.total_cost:.2f}  (goal <= 10 s)")
    return r


def bench_dw(n=300, workers=2, compare=True):
    site = _shared_site(n)
    evs = fleet(n)
    r = plan_fleet_decomposed(site, evs, workers=workers)
    line = (f"{n} coupled EVs, Dantzig-Wolfe with {workers} shard(s): {r.solve_time_s:.2f} s, {r.iterations} "
            f"iterations, gap {r.gap:.2e}, peak {r.site_kw(site).max():.1f} / {site.import_limit_kw:.0f} kW; "
            f"{'; '.join(r.notes)}")
    if compare:
        exact = plan_fleet_shared(site, evs)
        line += f"; monolithic LP {exact.solve_time_s:.2f} s, cost difference {r.total_cost - exact.total_cost:.2e}"
    print(line)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("parts", nargs="*", default=["single", "indep", "shared", "dw"],
                    choices=["single", "indep", "shared", "dw"])
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--independent", type=int, default=10_000)
    ap.add_argument("--shared", type=int, default=1_000)
    ap.add_argument("--coupled", type=int, default=300)
    a = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    if "single" in a.parts:
        bench_single()
    if "indep" in a.parts:
        bench_independent(a.independent, a.workers)
    if "shared" in a.parts:
        bench_shared(a.shared)
    if "dw" in a.parts:
        bench_dw(a.coupled, a.workers, compare=a.coupled <= 2000)


if __name__ == "__main__":
    main()
