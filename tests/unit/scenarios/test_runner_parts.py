"""The runner's pure parts: profile periods, the time compression it picks, the window it plays, the DUT clip."""
import pytest

from v2g_bench.scenarios.runner import RunOptions, clip_to_dut, play_window, plan_scenario, schedule_periods
from v2g_bench.scheduler.scenario import load_scenario


def test_schedule_periods_merge_equal_slots_and_lead_with_zero():
    assert schedule_periods([1.0, 1.0, -2.5, 0.0004, 0.0], 3, 2) == [(0, 0.0), (2, 1000.0), (8, -2500.0), (11, 0.0)]
    assert schedule_periods([0.5], 1, 0) == [(0, 500.0)]


def test_time_scale_is_the_requested_one_except_for_big_sites():
    opts = RunOptions(time_scale=900.0)
    assert opts.factor_for(load_scenario("day-ahead-arbitrage")) == 900.0
    # events are timed on the plant clock by the lab's analyzer memory: no slow-down needed
    assert opts.factor_for(load_scenario("frequency-response-step")) == 300.0     # 0.1 s plant steps: lab CPU
    assert opts.finest_s(load_scenario("frequency-response-step")) == 2.0
    assert opts.factor_for(load_scenario("delivery-vans-50")) == 450.0
    assert RunOptions(time_scale=1.0).factor_for(load_scenario("v2h-backup")) == 1.0
    assert RunOptions(time_scale=500.0).factor_for(load_scenario("building-peak-shaving")) == 450.0   # 2 s slots


def test_events_narrow_the_window_to_their_slots():
    sc = load_scenario("v2h-backup")
    evs = clip_to_dut(sc, {"charge": {"power_max_w": 11000.0}, "discharge": {"power_max_w": 11000.0}}, None)
    a, b = play_window(sc, plan_scenario(sc, evs), evs)
    assert (a, b) == (19, 25)            # 20:45 .. 22:15 around the 21:00-22:00 grid loss


def test_clip_to_dut_uses_power_and_current_ratings():
    sc = load_scenario("building-peak-shaving")
    evs = clip_to_dut(sc, {"charge": {"power_max_w": 11000.0, "current_max_a": 30.0},
                           "discharge": {"power_max_w": 10000.0, "current_max_a": 40.0}}, None)
    assert evs[0].max_charge_kw == pytest.approx(10.5)       # 30 A x 350 V
    assert evs[0].max_discharge_kw == pytest.approx(10.0)
    assert [e.max_discharge_kw for e in clip_to_dut(sc, {"charge": {"power_max_w": 7400.0}}, 2)] == [0.0, 0.0]
