"""Charge-loop cycle time of a real EVCC<->SECC session (veth + netns) with each EXI codec.

    python -m benchmarks.exi_charge_loop [jar|own ...]

Uses the EV emulator (v2g_bench.ev) against the lab SECC in one process; the stack's EXI() singleton
is process-wide, so EV and SECC both run on the selected codec. Needs root (netns/veth).
"""
from __future__ import annotations

import statistics
import sys


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def run(codec: str) -> None:
    from v2g_bench.harness.asyncrt import LoopThread
    from v2g_bench.ev import netns
    from v2g_bench.lab.charger import secc as lab_secc
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
        svc = loop.run(lab_secc.start_service(plant, {"iface": pair.secc_iface, "codec": codec}, None), 30)
        ev = EVEmulator(pair.ev_iface, netns=ns.name, codec=codec, model=EVModel(soc=plant.state().soc))
        try:
            st = ev._codec.stats
            st.encode_s.clear()
            st.decode_s.clear()
            res = ev.run_session(plan=[Phase(8000, 3), Phase(-8000, 2)], timeout=60)
            e, d = st.encode_s, st.decode_s
            print(f"[{codec}] verdict {res.verdict}; {res.charge_loops} charge loops; "
                  f"cycle p50 {pct(res.loop_cycle_s, .5) * 1e3:.1f} ms p99 {pct(res.loop_cycle_s, .99) * 1e3:.1f} ms; "
                  f"EXI enc p50 {statistics.median(e) * 1e3:.2f} ms, dec p50 {statistics.median(d) * 1e3:.2f} ms")
        finally:
            ev.close()
            loop.run(svc.stop(), 10)
            loop.stop()


if __name__ == "__main__":
    for c in sys.argv[1:] or ["jar", "own"]:
        run(c)
