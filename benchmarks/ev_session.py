"""EV emulator vs the lab SECC (in-process, real Plant) over veth + netns: session wall time,
charge-loop cycle, bench-side turnaround per message p50/p99, EXI encode/decode time (jar)."""
from __future__ import annotations

import statistics


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    from v2g_bench.asyncrt import LoopThread
    from v2g_bench.ev import lab_secc, netns
    from v2g_bench.ev.emulator import EVEmulator
    from v2g_bench.ev.model import EVModel, Phase
    from v2g_bench.lab.plant import Plant

    why = netns.veth_unavailable_reason() or netns.netns_unavailable_reason()
    if why:
        print("skipped:", why)
        return
    plant = Plant()
    with netns.EvNetns() as ns, netns.VethPair.create(ev_netns=ns) as pair:
        loop = LoopThread("secc")
        svc = loop.run(lab_secc.start_service(plant, {"iface": pair.secc_iface}, None), 30)
        ev = EVEmulator(pair.ev_iface, netns=ns.name, model=EVModel(soc=plant.state().soc))
        try:
            codec = ev._codec
            codec.stats.encode_s.clear(); codec.stats.decode_s.clear()
            res = ev.run_session(plan=[Phase(8000, 3), Phase(-8000, 2)], timeout=60, trace_path="/tmp/ev-bench-trace.jsonl")
            print(f"verdict                 {res.verdict}")
            print(f"session wall time       {res.wall_s:.2f} s ({res.charge_loops} charge loops)")
            print(f"charge-loop cycle       p50 {pct(res.loop_cycle_s, .5)*1e3:.1f} ms  p99 {pct(res.loop_cycle_s, .99)*1e3:.1f} ms")
            print(f"req->res turnaround     p50 {pct(res.turnaround_s, .5)*1e3:.1f} ms  p99 {pct(res.turnaround_s, .99)*1e3:.1f} ms"
                  "  (SECC incl. its EXI, same process)")
            e, d = codec.stats.encode_s, codec.stats.decode_s
            print(f"EXI encode (jar)        p50 {statistics.median(e)*1e3:.1f} ms  p99 {pct(e, .99)*1e3:.1f} ms  n={len(e)}")
            print(f"EXI decode (jar)        p50 {statistics.median(d)*1e3:.1f} ms  p99 {pct(d, .99)*1e3:.1f} ms  n={len(d)}")
        finally:
            ev.close()
            loop.run(svc.stop(), 10)
            loop.stop()


if __name__ == "__main__":
    main()
