"""EV emulator vs the SECC inside the lab process (python -m v2g_bench.lab, jar codec) over veth + the
EV's own netns, once per EV codec (jar = iso15118's EXIficient JVM, own = v2g_bench.exi):
session wall time, charge-loop cycle, bench-side req->res latency p50/p99, EXI encode/decode time.

    python -m benchmarks.ev_session            # needs root / CAP_NET_ADMIN (else prints the reason)
"""
from __future__ import annotations

import statistics
import tempfile
import time


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def ms(x: float) -> str:
    return f"{x * 1e3:7.2f} ms"


def run_codec(lab, codec: str, soc: float) -> dict:
    from v2g_bench.ev.emulator import EVEmulator
    from v2g_bench.ev.model import Phase
    from v2g_bench.roles import BenchContext, RoleConfig

    ev = EVEmulator.open(RoleConfig(role="ev", driver="iso15118_evcc", options={"codec": codec, "model": {"soc": soc}}),
                         BenchContext(lab=lab))
    try:
        # warm-up session (first-message costs: JIT/grammar build), then the measured one
        ev.run_session(plan=[Phase(3000, 0.5)], timeout=60, trace_path=tempfile.mktemp(suffix=".jsonl"))
        ev._codec.stats.encode_s.clear()
        ev._codec.stats.decode_s.clear()
        time.sleep(1.0)
        res = ev.run_session(plan=[Phase(8000, 3), Phase(-8000, 2)], timeout=60,
                             trace_path=tempfile.mktemp(suffix=".jsonl"))
        return {"res": res, "enc": list(ev._codec.stats.encode_s), "dec": list(ev._codec.stats.decode_s)}
    finally:
        ev.close()


def main() -> None:
    from v2g_bench.ev.labnet import lab_network
    from v2g_bench.harness.labproc import start_lab

    with lab_network({}) as net:
        if net.unavailable:
            print("skipped:", net.unavailable)
            return
        lab = start_lab(workdir=tempfile.mkdtemp(prefix="ev-bench-lab-"), overrides=net.overrides, timeout_s=90)
        try:
            with lab.dc_link():               # the emulator powers up off: limits, then output on (driver)
                soc = lab.control().call("state")["soc"]
                for codec in ("jar", "own"):
                    r = run_codec(lab, codec, soc)
                    res = r["res"]
                    print(f"--- EV codec {codec} (SECC in the lab process: jar) ---")
                    print(f"verdict                 {res.verdict}")
                    print(f"session wall time       {res.wall_s:.2f} s ({res.charge_loops} charge loops, 5 s plan)")
                    print(f"charge-loop cycle       p50 {ms(pct(res.loop_cycle_s, .5))}  p99 {ms(pct(res.loop_cycle_s, .99))}")
                    print(f"req->res (bench side)   p50 {ms(pct(res.turnaround_s, .5))}  p99 {ms(pct(res.turnaround_s, .99))}")
                    e, d = r["enc"], r["dec"]
                    print(f"EXI encode ({codec})      p50 {ms(statistics.median(e))}  p99 {ms(pct(e, .99))}  n={len(e)}")
                    print(f"EXI decode ({codec})      p50 {ms(statistics.median(d))}  p99 {ms(pct(d, .99))}  n={len(d)}")
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
