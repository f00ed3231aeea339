"""Scenario suite wall time and speed-up vs real time, and the scheduler's share of it (issue 15).

    python -m benchmarks.scenario_suite                       # every scenario once, on a fresh lab each
    python -m benchmarks.scenario_suite day-ahead-arbitrage   # one

Each scenario runs as in `make scenarios` (virtual lab site, time compressed, verdict judged) and prints: played
hours, time scale, wall seconds (incl. lab start and set-up), speed-up vs real time, scheduler seconds and share,
and the verdict.
"""
from __future__ import annotations

import sys
import tempfile
import time

from v2g_bench.profiles import DEFAULT_DUT, load_dut
from v2g_bench.scenarios.judges import judge_run
from v2g_bench.scenarios.runner import RunOptions, ScenarioNotApplicable, run_scenario
from v2g_bench.scheduler.scenario import list_scenarios, load_scenario


def main(names: list[str]) -> int:
    dut = load_dut(DEFAULT_DUT)
    ratings = {"charge": {"power_max_w": dut.charge.power_max_w, "current_max_a": dut.charge.current_max_a},
               "discharge": {"power_max_w": dut.discharge.power_max_w, "current_max_a": dut.discharge.current_max_a}}
    names = names or [p.stem for p in list_scenarios()]
    t_all = time.perf_counter()
    played = sched = 0.0
    print(f"{'scenario':28s} {'h':>6s} {'x':>5s} {'EVSE':>4s} {'wall s':>7s} {'speedup':>8s} {'sched s':>8s} "
          f"{'share':>6s}  verdict")
    for name in names:
        sc = load_scenario(name)
        version = "2.1" if sc.tariff_updates else "2.0.1"
        try:
            with tempfile.TemporaryDirectory(prefix="v2g-bench-scn-") as work:
                rec = run_scenario(sc, ratings=ratings, opts=RunOptions(ocpp_version=version, max_evses=12), workdir=work,
                                   pixit=dict(dut.pixit), log=lambda *_: None)
        except ScenarioNotApplicable as e:
            print(f"{name:28s} skipped: {e}")
            continue
        v = judge_run(rec, {"tolerances": dict(dut.tolerances)})
        h = (rec.window[1] - rec.window[0]) / 3600
        played += h
        sched += rec.scheduler_s
        print(f"{name:28s} {h:6.2f} {rec.time_scale:5.0f} {len(rec.evs):4d} {rec.wall_s:7.1f} {rec.speedup:8.0f} "
              f"{rec.scheduler_s:8.3f} {100 * rec.scheduler_s / rec.wall_s:5.2f}%  {v.verdict}")
    wall = time.perf_counter() - t_all
    print(f"{'suite':28s} {played:6.2f}                 {wall:7.1f} {played * 3600 / wall:8.0f} {sched:8.3f} "
          f"{100 * sched / wall:5.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
