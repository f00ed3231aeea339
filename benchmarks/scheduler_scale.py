"""Aggregator-scale fleet plans: 10,000 coupled EVs under a site limit (and a feeder tree), exactness against
the monolithic LP where that one finishes, and scale-out on a Dask cluster (EVs vs time vs workers).

    python -m benchmarks.scheduler_scale coupled              # 10,000 EVs, site limit, 2 worker processes
    python -m benchmarks.scheduler_scale coupled --feeders 10 # ... and 10 feeders of 1,000 EVs below it
    python -m benchmarks.scheduler_scale exact --evs 1000 2000          # DW vs one LP, cost difference, gap
    python -m benchmarks.scheduler_scale exact --evs 1000 --feeders 10  # ... under a feeder tree (one tree LP)
    python -m benchmarks.scheduler_scale blocks --evs 2000 --blocks 1 4 20   # master block size trade-off
    python -m benchmarks.scheduler_scale dask --evs 10000 100000 --workers 1 2   # scaling curve
    python -m benchmarks.scheduler_scale engines              # Dask vs Ray actors on this workload
    python -m benchmarks.scheduler_scale pricing              # one pricing round: vectorised DP vs HiGHS per EV

Goal (issue 17): 10,000 coupled EVs <= 60 s on a 2-core machine. The load average is printed with every
figure: the machine is shared, and a loaded machine's figures are not the method's.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from benchmarks.scheduler_fleet import DT, T, fleet, tariff
from v2g_bench.scheduler import Site, plan_fleet_decomposed, plan_fleet_shared
from v2g_bench.scheduler.fleet import FeederLimit, plan_fleet_tree_lp


def site_for(n: int, limit_kw_per_ev: float = 3.6) -> Site:
    p, pe = tariff()
    load = 1.5 * n * (1 + 0.5 * np.sin(np.arange(T) / 96 * 2 * np.pi - 1.2))
    return Site(import_price=p, export_price=pe, dt_s=DT, load_kw=load, import_limit_kw=limit_kw_per_ev * n)


def feeders_for(evs, k: int, kw_per_ev: float = 2.2) -> list[FeederLimit]:
    """k feeders of equal size; each limits its EVs' own net import (no other load on it)."""
    parts = np.array_split(np.arange(len(evs)), k)
    return [FeederLimit(f"feeder{i}", tuple(evs[j].name for j in part), import_limit_kw=kw_per_ev * len(part))
            for i, part in enumerate(parts)]


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def describe(r, site, feeders=None, evs=None) -> str:
    s = (f"{r.solve_time_s:.1f} s, {r.iterations} it., gap {r.gap:.2e} ({r.gap / max(1.0, abs(r.total_cost)):.1e} rel), "
         f"master {r.master_s:.1f} s ({100 * r.master_s / r.solve_time_s:.0f} %), pricing {r.pricing_s:.1f} s, "
         f"site peak {r.site_kw(site).max():.0f}/{site.import_limit_kw:.0f} kW")
    if feeders:
        idx = {e.name: j for j, e in enumerate(evs)}
        worst = max(r.power_kw[[idx[m] for m in f.members]].sum(axis=0).max() - f.import_limit_kw for f in feeders)
        s += f", worst feeder margin {-worst:.2f} kW"
    return s


def bench_coupled(n, workers, feeders, block, engine="dp"):
    site, evs = site_for(n), fleet(n)
    fl = feeders_for(evs, feeders) if feeders else None
    l0 = load()
    r = plan_fleet_decomposed(site, evs, workers=workers, feeders=fl, block_size=block, pricing_engine=engine)
    print(f"{n} coupled EVs{f' + {feeders} feeders' if feeders else ''}, {workers} worker(s), {engine} pricing: "
          f"{describe(r, site, fl, evs)}; {'; '.join(r.notes)}  [{l0} -> {load()}]  (goal <= 60 s)", flush=True)


def bench_exact(sizes, workers, engine="dp", feeders=0):
    for n in sizes:
        site, evs = site_for(n), fleet(n)
        fl = feeders_for(evs, feeders) if feeders else None
        l0 = load()
        r = plan_fleet_decomposed(site, evs, workers=workers, pricing_engine=engine, feeders=fl)
        e = plan_fleet_tree_lp(site, evs, fl) if fl else plan_fleet_shared(site, evs)
        print(f"{n} EVs{f' + {feeders} feeders' if feeders else ''}: decomposition {describe(r, site, fl, evs)}; "
              f"monolithic LP {e.solve_time_s:.1f} s; cost difference "
              f"{(r.total_cost - e.total_cost) / abs(e.total_cost):.1e} rel  [{l0} -> {load()}]", flush=True)


def bench_blocks(n, blocks, workers):
    site, evs = site_for(n), fleet(n)
    for b in blocks:
        l0 = load()
        r = plan_fleet_decomposed(site, evs, workers=workers, block_size=b)
        print(f"{n} EVs, blocks of {b}: {describe(r, site)}  [{l0} -> {load()}]", flush=True)


def bench_pricing(n=10_000, sample=1000, reps=3):
    """One pricing round (every EV's LP at random coordination prices): the vectorised DP vs HiGHS per EV."""
    from v2g_bench.scheduler.fleet import FastEVSolver
    from v2g_bench.scheduler.vector import FleetArrays, solve_fleet
    site, evs = site_for(n), fleet(n)
    extra = np.random.default_rng(5).normal(0, 0.05, (n, T)) * site.h
    fa = FleetArrays(site, evs)
    t0 = time.perf_counter()
    solve_fleet(fa.subset(np.arange(10)), extra[:10])
    print(f"numba kernel ready in {time.perf_counter() - t0:.1f} s (compiled once, then loaded from its disk cache)")
    for threads in (1, 2):
        ts, cpu = [], []
        for _ in range(reps):
            l0, t0, c0 = load(), time.perf_counter(), time.process_time()
            C, D, tariff, ok = solve_fleet(fa, extra, threads=threads)
            ts.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print(f"DP, {n} EVs, {threads} thread(s): {min(ts):.2f} s wall (CPU {min(cpu):.2f} s) per round, "
              f"{1e6 * min(cpu) / n:.0f} us CPU per EV  [{l0} -> {load()}]", flush=True)
    solver = FastEVSolver(site)
    l0, t0, c0 = load(), time.perf_counter(), time.process_time()
    worst = 0.0
    for i in range(sample):
        c, d, tr = solver.solve(evs[i], extra_kw_cost=extra[i])
        ref = tr + extra[i] @ (c - d)
        worst = max(worst, abs(tariff[i] + extra[i] @ (C[i] - D[i]) - ref) / max(1.0, abs(ref)))
    cpu = time.process_time() - c0
    print(f"HiGHS, {sample} of them one by one: {time.perf_counter() - t0:.2f} s wall (CPU {cpu:.2f} s), "
          f"{1e6 * cpu / sample:.0f} us CPU per EV; DP vs HiGHS objective, worst {worst:.1e} rel  [{l0} -> {load()}]")


def bench_dask(sizes, workers_list, rel_gap, limit_kw_per_ev=3.6, engine="dp"):
    from v2g_bench.scheduler.distributed import local_cluster, plan_fleet_distributed
    for w in workers_list:
        t0 = time.perf_counter()
        with local_cluster(w, memory_limit="4GiB") as client:
            print(f"local Dask cluster, {w} worker(s): started in {time.perf_counter() - t0:.1f} s", flush=True)
            for n in sizes:
                site, evs = site_for(n, limit_kw_per_ev), fleet(n)
                l0 = load()
                r = plan_fleet_distributed(site, evs, client=client, rel_gap=rel_gap, pricing_engine=engine)
                print(f"  {n:>7} EVs, {w} worker(s): {describe(r, site)}  [{l0} -> {load()}]", flush=True)


def bench_engines(n=2000, rounds=3):
    """The same pricing shard as an actor on each engine: start-up, one round trip, pricing rounds, memory."""
    import psutil

    from v2g_bench.scheduler.fleet import LocalShard
    site, evs = site_for(n), fleet(n)
    y = np.zeros((1, T))
    sigma = np.zeros(n)
    halves = np.array_split(np.arange(n), 2)

    def rss_children():
        me = psutil.Process()
        return sum(c.memory_info().rss for c in me.children(recursive=True)) / 2**20

    from v2g_bench.scheduler.distributed import local_cluster
    t0 = time.perf_counter()
    with local_cluster(2) as client:
        t_start = time.perf_counter() - t0
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        t0 = time.perf_counter()
        actors = [client.submit(LocalShard, site, [evs[i] for i in h], list(h), list(h), None, actor=True,
                                workers=[workers[k]], pure=False).result() for k, h in enumerate(halves)]
        t_create = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(rounds):
            [f.result() for f in [a.price(k, y, sigma) for a in actors]]
        t_rounds = (time.perf_counter() - t0) / rounds
        t0 = time.perf_counter()
        for _ in range(20):
            actors[0].recover({}).result()
        t_rt = (time.perf_counter() - t0) / 20 * 1e3
        mem = rss_children()
    print(f"dask/distributed: cluster start {t_start:.1f} s, 2 shard actors of {n // 2} EVs created in {t_create:.1f} s, "
          f"pricing round {t_rounds:.2f} s, empty call {t_rt:.1f} ms, processes {mem:.0f} MB  [{load()}]", flush=True)
    try:
        import ray
    except ImportError:
        print("ray: not installed in this environment (pip install ray to compare)")
        return
    t0 = time.perf_counter()
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    except Exception as e:   # measured: its raylet/GCS start-up times out on a loaded 2-core machine
        print(f"ray {ray.__version__}: the local node did not start after {time.perf_counter() - t0:.0f} s: "
              f"{str(e).splitlines()[0]}  [{load()}]")
        return
    try:
        t_start = time.perf_counter() - t0
        Shard = ray.remote(num_cpus=1)(LocalShard)
        t0 = time.perf_counter()
        actors = [Shard.remote(site, [evs[i] for i in h], list(h), list(h), None) for h in halves]
        ray.get([a.recover.remote({}) for a in actors])
        t_create = time.perf_counter() - t0
        t0 = time.perf_counter()
        for k in range(rounds):
            ray.get([a.price.remote(k, y, sigma) for a in actors])
        t_rounds = (time.perf_counter() - t0) / rounds
        t0 = time.perf_counter()
        for _ in range(20):
            ray.get(actors[0].recover.remote({}))
        t_rt = (time.perf_counter() - t0) / 20 * 1e3
        mem = rss_children()
        print(f"ray {ray.__version__}: cluster start {t_start:.1f} s, 2 shard actors created in {t_create:.1f} s, "
              f"pricing round {t_rounds:.2f} s, empty call {t_rt:.1f} ms, processes {mem:.0f} MB  [{load()}]")
    finally:
        ray.shutdown()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("part", choices=["coupled", "exact", "blocks", "dask", "engines", "pricing"], nargs="?",
                    default="coupled")
    ap.add_argument("--evs", type=int, nargs="*")
    ap.add_argument("--workers", type=int, nargs="*", default=[2])
    ap.add_argument("--feeders", type=int, default=0)
    ap.add_argument("--blocks", type=int, nargs="*", default=[1, 4, 20])
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--rel-gap", type=float, default=1e-7)
    ap.add_argument("--engine", choices=["dp", "highs"], default="dp",
                    help="pricing: vectorised exact DP (default) or one HiGHS LP per EV (the reference)")
    ap.add_argument("--limit-kw-per-ev", type=float, default=3.6, help="site import limit per EV (dask part)")
    a = ap.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, {load()}")
    if a.part == "coupled":
        bench_coupled((a.evs or [10_000])[0], a.workers[0], a.feeders, a.block, a.engine)
    elif a.part == "exact":
        bench_exact(a.evs or [1000, 2000], a.workers[0], a.engine, a.feeders)
    elif a.part == "blocks":
        bench_blocks((a.evs or [2000])[0], a.blocks, a.workers[0])
    elif a.part == "pricing":
        bench_pricing((a.evs or [10_000])[0])
    elif a.part == "dask":
        bench_dask(a.evs or [10_000, 100_000], a.workers, a.rel_gap, a.limit_kw_per_ev, a.engine)
    else:
        bench_engines((a.evs or [2000])[0])


if __name__ == "__main__":
    main()
