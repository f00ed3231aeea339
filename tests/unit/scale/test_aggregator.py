"""The aggregator scenario end to end: light stations (own process) under one CSMS, the plan's TxProfiles sent
to all, the aggregate of the energy registers they report judged against the plan."""
import pytest

from v2g_bench.errors import Nonconformance
from v2g_bench.scheduler.aggregator import run_aggregator


def test_a_fleet_that_follows_its_profiles_meets_the_plan():
    r = run_aggregator(30, intervals=4, interval_wall_s=1.5)
    r.judge()
    assert r.violations == 0
    assert r.max_deviation_kw < 0.05
    assert r.frames >= 30 * (3 + 5 + 1) * 2       # boot, start, 5 readings, end; each answered
    assert r.planned_kw.max() + r.base_kw.max() > 0.99 * r.limit_kw or r.planned_kw.min() < 0   # the limit shapes it


def test_stations_ignoring_their_profiles_fail_the_judgement_with_the_interval_and_the_stations():
    r = run_aggregator(30, intervals=4, interval_wall_s=1.5, defective=3)
    with pytest.raises(Nonconformance, match=r"interval \d+: the fleet drew .* worst: CS0000[0-2]"):
        r.judge()


@pytest.mark.scale
@pytest.mark.timeout(1800)   # minutes on a shared machine; the default 300 s is for unit tests
def test_one_thousand_stations_follow_the_fleet_plan():
    r = run_aggregator(1000, intervals=8, interval_wall_s=3.0)
    r.judge()
    assert r.violations == 0 and r.stations == 1000
