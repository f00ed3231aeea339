"""Fleet plans on a Dask local cluster: the same exact plan as in-process, and a worker that dies mid-plan
makes the plan recompute (or fail clearly), never return partially."""
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest

from v2g_bench.scheduler import Site, plan_fleet_shared
from v2g_bench.scheduler.distributed import local_cluster, plan_fleet_distributed
from v2g_bench.scheduler.fleet import LocalShard, PlanWorkerLost
from scheduler_fleets import random_fleet

pytest.importorskip("distributed")


def _fleet(n, seed, T=24):
    p, evs = random_fleet(n, seed, T)
    site = Site(import_price=p, export_price=p - 0.02, dt_s=3600, load_kw=np.full(T, 20.0), import_limit_kw=60.0)
    return site, evs


class DiesOnSecondRound(LocalShard):
    """Kills its worker process at its second pricing round, once (a flag file remembers)."""
    flag = os.path.join(tempfile.gettempdir(), f"v2g-bench-test-dw-dies-{os.getuid()}")

    def price(self, k, *a):
        if k >= 1:
            try:     # O_EXCL: of two shards pricing at the same moment, exactly one dies
                os.close(os.open(self.flag, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os._exit(1)
        return super().price(k, *a)


@pytest.fixture(scope="module")
def cluster():
    with local_cluster(2, memory_limit="1GiB") as client:
        yield client


def test_distributed_plan_equals_the_monolithic_lp(cluster):
    site, evs = _fleet(20, 3)
    exact = plan_fleet_shared(site, evs, metering="ev")
    r = plan_fleet_distributed(site, evs, client=cluster, block_size=3)
    assert "dask, 2 shard(s)" in r.method
    assert r.total_cost == pytest.approx(exact.total_cost, rel=1e-6, abs=1e-6)
    assert r.site_kw(site).max() <= 60.0 + 1e-6


def test_a_worker_dying_mid_plan_recomputes_or_fails_clearly(cluster):
    site, evs = _fleet(12, 5)
    exact = plan_fleet_shared(site, evs, metering="ev")
    Path(DiesOnSecondRound.flag).unlink(missing_ok=True)
    try:
        r = plan_fleet_distributed(site, evs, client=cluster, retries=2, shard_cls=DiesOnSecondRound,
                                   seed_sample=0, timeout_s=60)
        assert os.path.exists(DiesOnSecondRound.flag)      # it did die
        assert any("recomputed the whole plan" in n for n in r.notes)
        assert r.total_cost == pytest.approx(exact.total_cost, rel=1e-6, abs=1e-6)
        os.remove(DiesOnSecondRound.flag)
        with pytest.raises(PlanWorkerLost, match="lost mid-plan"):
            plan_fleet_distributed(site, evs, client=cluster, retries=0, shard_cls=DiesOnSecondRound,
                                   seed_sample=0, timeout_s=60)
    finally:
        Path(DiesOnSecondRound.flag).unlink(missing_ok=True)
