"""Physical-layer figures: SLAC association time (our EV vs pyslac over a veth), CP state -> charger reaction
time as the bench measures it (board clock and host wall clock, over a real pty), CHAdeMO CAN cycle jitter (the
lab charger's 0x109 on socketcand, bus timestamps). `python -m benchmarks physical`."""
from __future__ import annotations

import statistics
import time


def _q(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _fmt(name, xs, unit="ms", k=1000.0):
    xs = [x * k for x in xs]
    print(f"{name:<46} n={len(xs):<3} median {statistics.median(xs):8.2f} {unit}  p90 {_q(xs, 0.9):8.2f}  "
          f"max {max(xs):8.2f}")


def slac(n: int = 10) -> None:
    from v2g_bench.ev import netns
    from v2g_bench.ev.slac import SlacTimers, run_slac
    from v2g_bench.harness.asyncrt import LoopThread
    from v2g_bench.lab.charger import slac_evse
    from v2g_bench.lab.plant import LabClock, Plant
    why = netns.veth_unavailable_reason()
    if why:
        print(f"SLAC: skipped ({why})")
        return
    pair = netns.VethPair.create()
    loop = LoopThread("bench-slac")
    try:
        svc = loop.run(slac_evse.start_service(Plant(clock=LabClock()), {"iface": pair.secc_iface,
                                                                         "start": "always"}, None), timeout=10)
        durations, steps = [], {}
        for _ in range(n):
            r = run_slac(pair.ev_iface, timers=SlacTimers(scale=3.0), timeout_s=30)
            durations.append(r.duration_s)
            for s in r.steps:
                steps.setdefault(s.name, []).append(s.latency_s)
            deadline = time.monotonic() + 5     # pyslac restarts matching on the next CP event only:
            loop.run(svc._cp("A"), timeout=5)   # leave and re-enter B, as a replug would
            loop.run(svc._cp("B"), timeout=5)
            while not svc.session.matching_process_task and time.monotonic() < deadline:
                time.sleep(0.01)
        _fmt("SLAC association (PARM.REQ -> SET_KEY.CNF)", durations)
        for name, xs in steps.items():
            _fmt(f"  {name} latency", xs)
        loop.run(svc.stop(), timeout=5)
    finally:
        loop.stop()
        pair.remove()


def cp_reaction(n: int = 30) -> None:
    from v2g_bench.harness.asyncrt import LoopThread
    from v2g_bench.instruments.ev_io import EvIoSerialBoard
    from v2g_bench.lab.frontends import serial_board
    from v2g_bench.lab.plant import LabClock, Plant
    from v2g_bench.roles import RoleConfig

    class Ctx:
        ready: dict = {}

        def register_op(self, *_):
            pass
    loop = LoopThread("bench-cp")
    plant = Plant(clock=LabClock())
    ctx = Ctx()
    svc = loop.run(serial_board.start_service(plant, {}, ctx), timeout=5)
    io = EvIoSerialBoard.open(RoleConfig("ev_io", "evio_serial", resource=ctx.ready["serial_board"]["path"],
                                         timeout_s=1.0, options={"watchdog_s": 0}), None)

    async def close():
        plant.set_contactor(True)
    board, host, rtt = [], [], []
    try:
        io.plug_in(state="B")
        for _ in range(n):
            io.set_cp("C")
            loop.run(close(), timeout=5)
            io.events()
            t0 = time.monotonic()
            io.set_cp("B")
            io.wait_for(lambda m: m.hv_v < 60, timeout_s=2, what="off", poll_s=0.0)
            host.append(time.monotonic() - t0)
            ev = io.events()
            t_b = next(e.t_ms for e in ev if e.what == "CP" and e.value == "B")
            t_off = next(e.t_ms for e in ev if e.what == "HV" and e.value == "0")
            board.append((t_off - t_b) / 1000.0)
        for _ in range(n):
            t0 = time.monotonic()
            io.measure()
            rtt.append(time.monotonic() - t0)
        _fmt("CP C->B -> inlet off, board clock", board)
        _fmt("CP C->B -> inlet off seen by the host (pty)", host)
        _fmt("EV-IO MEAS? round trip over the pty", rtt)
    finally:
        io.safe_state()
        io.close()
        loop.run(svc.stop(), timeout=5)
        loop.stop()


def can_jitter(seconds: float = 10.0) -> None:
    from v2g_bench.chademo.ev import ChademoEV
    from v2g_bench.harness.asyncrt import LoopThread
    from v2g_bench.lab.charger import chademo_charger
    from v2g_bench.lab.frontends.can import SocketcandServer
    from v2g_bench.lab.plant import LabClock, Plant
    from v2g_bench.roles import RoleConfig
    loop = LoopThread("bench-can")
    plant = Plant(clock=LabClock())
    hub = SocketcandServer(plant)
    port = loop.run(hub.start("127.0.0.1", 0), timeout=5)
    svc = loop.run(chademo_charger.start_service(plant, {}, None), timeout=5)
    ev = ChademoEV.open(RoleConfig("chademo", "chademo_ev", options={"interface": "socketcand", "channel": "can0",
                                                                      "host": "127.0.0.1", "port": port}), None)
    try:
        time.sleep(seconds)
        for fid in (0x109, 0x208):
            st = ev.cycle_stats(fid)
            print(f"CHAdeMO 0x{fid:03X} cycle (bus timestamps)             n={st['n']:<4} mean {st['mean_ms']:7.2f} ms"
                  f"  stdev {st['stdev_ms']:6.2f}  min {st['min_ms']:7.2f}  max {st['max_ms']:7.2f}")
    finally:
        ev.close()
        loop.run(svc.stop(), timeout=5)
        loop.run(hub.stop(), timeout=5)
        loop.stop()


if __name__ == "__main__":
    cp_reaction()
    can_jitter()
    slac()
