"""Fleet plans on a Dask distributed cluster: the Dantzig-Wolfe pricing shards run as actors on its workers.

Why Dask and not Ray: measured on this workload (`python -m benchmarks.distributed_engines`, docs/scheduler.md):
a shard is a long-lived object holding its EVs' HiGHS model and plans, called once per round with ~1 kB of
prices; both engines have actors for that. Dask's local cluster started faster, used less memory per
worker, is pure Python (one wheel set, no daemon), and reaches a multi-node cluster by an address
(`dask scheduler` / `dask worker tcp://host:8786`).

    from v2g_bench.scheduler.distributed import plan_fleet_distributed
    r = plan_fleet_distributed(site, evs, workers=2)                  # a local cluster for this call
    r = plan_fleet_distributed(site, evs, address="tcp://10.0.0.2:8786")   # an existing cluster

A worker that dies mid-plan loses its shard's state: the whole plan is recomputed on the workers left
(`retries` times), else `PlanWorkerLost` is raised. Never a partial plan.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time

import numpy as np

from v2g_bench.scheduler.fleet import FleetResult, LocalShard, PlanWorkerLost, plan_fleet_decomposed
from v2g_bench.scheduler.model import EVRequest, Site
from v2g_bench.scheduler.vector import VectorShard


class DaskShardSet:
    """One `LocalShard` actor per shard, placed round-robin on the cluster's workers."""

    def __init__(self, client, site: Site, evs: list[EVRequest], groups: np.ndarray, leaf_of_group: np.ndarray,
                 n_shards: int, timeout_s: float, shard_cls=LocalShard):
        self.client, self.timeout_s = client, timeout_s
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        if not workers:
            raise PlanWorkerLost("the Dask cluster has no workers", where=str(client.scheduler.address),
                                 fix="start workers: dask worker <scheduler address>")
        G = int(groups.max()) + 1
        blocks = np.array_split(np.arange(G), max(1, min(n_shards, G)))
        futures = []
        for s, b in enumerate(blocks):
            idx = np.flatnonzero((groups >= b[0]) & (groups <= b[-1]))
            futures.append(client.submit(shard_cls, site, [evs[i] for i in idx], list(idx), groups[idx],
                                         leaf_of_group, actor=True, workers=[workers[s % len(workers)]],
                                         pure=False))
        self._futures = futures
        self.actors = [self._result(f) for f in futures]
        self.label = f"dask, {len(self.actors)} shard(s) on {len(workers)} worker(s)"

    def _result(self, future):
        try:
            return future.result(timeout=self.timeout_s)
        except PlanWorkerLost:
            raise
        except Exception as e:   # the worker died, the connection dropped, or the call timed out
            raise PlanWorkerLost(f"a Dask pricing worker was lost mid-plan: {type(e).__name__}: {e}",
                                 where="plan_fleet_distributed",
                                 fix="check the cluster's workers (memory, network); the plan was not used") from e

    def price(self, k, leaf_prices, sigma):
        calls = [a.price(k, leaf_prices, sigma) for a in self.actors]
        return [self._result(c) for c in calls]

    def recover(self, weights):
        calls = [a.recover(weights) for a in self.actors]
        return [self._result(c) for c in calls]

    def close(self):
        for f in self._futures:
            with contextlib.suppress(Exception):
                f.release()
        self.actors = []


@contextlib.contextmanager
def local_cluster(workers: int = 2, memory_limit: str = "2GiB"):
    """A throw-away local cluster: one single-threaded worker process per core (HiGHS models are not shared)."""
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           memory_limit=memory_limit, silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        yield client
    finally:
        # a loaded machine can be slow to say goodbye: never let closing hide the plan's own outcome
        with contextlib.suppress(Exception):
            client.close(timeout=30)
        with contextlib.suppress(Exception):
            cluster.close(timeout=30)


def _wait_for_a_worker(client, timeout_s: float) -> None:
    """Before a recompute: a nanny restarts a dead worker within seconds, so wait (bounded) for one to register
    rather than fail at once because the scheduler, for a moment, lists none."""
    try:
        client.wait_for_workers(1, timeout=min(timeout_s, 60.0))
    except Exception as e:   # TimeoutError, or the scheduler itself is gone
        raise PlanWorkerLost(f"no Dask worker came back to recompute the plan: {type(e).__name__}: {e}",
                             where=str(client.scheduler.address),
                             fix="start workers: dask worker <scheduler address>") from e


def plan_fleet_distributed(site: Site, evs: list[EVRequest], *, client=None, address: str | None = None,
                           workers: int = 2, shards: int | None = None, retries: int = 1,
                           timeout_s: float = 600.0, shard_cls=None, **kw) -> FleetResult:
    """`plan_fleet_decomposed` with its pricing shards as actors on a Dask cluster.

    `client` (a `distributed.Client`) or `address` ("tcp://host:8786") picks an existing cluster; neither
    starts a local one with `workers` processes. `shards` defaults to one per worker. Other keywords go to
    `plan_fleet_decomposed` (block_size, feeders, rel_gap, seed_sample...). `shard_cls`: a `LocalShard`
    subclass (fault-injection tests); default: `VectorShard` (all of a shard's EVs priced in one vectorised DP
    call), or `LocalShard` (one HiGHS LP per EV) with `pricing_engine="highs"`."""
    if shard_cls is None:
        shard_cls = LocalShard if kw.get("pricing_engine") == "highs" else VectorShard
    if client is None:
        if address is None:
            with local_cluster(workers) as c:
                return plan_fleet_distributed(site, evs, client=c, shards=shards, retries=retries,
                                              timeout_s=timeout_s, shard_cls=shard_cls, **kw)
        from distributed import Client
        try:
            c = Client(address, timeout=30)
        except OSError as e:
            raise PlanWorkerLost(f"cannot reach the Dask scheduler at {address}: {e}", where="plan_fleet_distributed",
                                 fix="start it with `dask scheduler` and check the address/firewall") from e
        with c:
            return plan_fleet_distributed(site, evs, client=c, shards=shards, retries=retries,
                                          timeout_s=timeout_s, shard_cls=shard_cls, **kw)
    notes = []
    for attempt in range(retries + 1):
        if attempt:
            _wait_for_a_worker(client, timeout_s)
        n = shards or len(client.scheduler_info(n_workers=-1)["workers"]) or 1
        t0 = time.perf_counter()
        try:
            r = plan_fleet_decomposed(site, evs, pricing=functools.partial(
                DaskShardSet, client, n_shards=n, timeout_s=timeout_s, shard_cls=shard_cls), **kw)
        except PlanWorkerLost as e:
            if attempt == retries:
                raise
            notes.append(f"attempt {attempt + 1} lost a worker after {time.perf_counter() - t0:.1f} s ({e.what}); "
                         "recomputed the whole plan on the workers left")
            continue
        r.notes[:0] = notes
        return r
    raise AssertionError("unreachable")
