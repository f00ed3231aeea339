"""Per-query overhead of the instrument driver over the raw transport, and the achievable rate of a
synchronous V/I/P read, against the virtual lab's RP7900-dialect battery emulator (real TCP socket).

    python -m benchmarks.instruments_overhead [--n 300]

Prints: raw socket, pyvisa-py, pymeasure driver property and full DCSource.read() timings.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import time


def _time(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _fmt(name: str, xs: list[float]) -> str:
    xs = sorted(xs)
    p50, p95 = xs[len(xs) // 2], xs[int(len(xs) * 0.95)]
    return f"{name:<34} p50 {p50 * 1e3:7.3f} ms   p95 {p95 * 1e3:7.3f} ms   mean {statistics.fmean(xs) * 1e3:7.3f} ms"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args(argv)
    n = args.n

    from v2g_bench.instruments.dc_source import DCLimits
    from v2g_bench.instruments.transport import open_visa
    from v2g_bench.instruments.vendors.scpi_dc_source import KeysightRP7900
    from v2g_bench.harness.labproc import running_lab

    with running_lab(timeout_s=60) as lab:
        port = lab.ports["battery_scpi"]
        resource = f"TCPIP0::127.0.0.1::{port}::SOCKET"
        print(f"virtual lab pid {lab.pid}, battery SCPI on 127.0.0.1:{port}, n = {n} per row")

        # 1. raw socket: one write + read of a line
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        f = s.makefile("rb")

        def raw():
            s.sendall(b"MEAS:VOLT?\n")
            f.readline()
        raw()
        t_raw = _time(raw, n)
        s.close()

        # 2. pyvisa-py, same query
        adapter = open_visa(resource, name="bench", timeout_s=2)
        res = adapter.connection
        res.query("MEAS:VOLT?")
        t_visa = _time(lambda: res.query("MEAS:VOLT?"), n)

        # 3. the driver: pymeasure property with strict parsing
        inst = KeysightRP7900.instrument_class()(adapter, name="battery")
        drv = KeysightRP7900.from_instrument(inst, limits=DCLimits(920, 200, 200, 60000))
        t_prop = _time(lambda: inst.measured_voltage, n)

        # 4. one synchronous V/I/P read (3 queries) -> achievable sampling rate
        t_read = _time(drv.read, n)
        drv.hard_stop()
        drv.close()

    print(_fmt("raw socket MEAS:VOLT?", t_raw))
    print(_fmt("pyvisa-py query MEAS:VOLT?", t_visa))
    print(_fmt("driver measured_voltage", t_prop))
    print(_fmt("driver read() V/I/P", t_read))
    over = statistics.median(t_prop) - statistics.median(t_raw)
    print(f"driver overhead over raw socket: {over * 1e3:.3f} ms/query "
          f"(over pyvisa: {(statistics.median(t_prop) - statistics.median(t_visa)) * 1e3:.3f} ms)")
    print(f"synchronous V/I/P read rate: {1 / statistics.fmean(t_read):.0f} Hz")


if __name__ == "__main__":
    main()
