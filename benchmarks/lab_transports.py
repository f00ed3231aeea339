"""Virtual-lab transports: SCPI via pyvisa-py vs a raw socket, Modbus and CAN round trips, lab CPU.

    python -m benchmarks.lab_transports [--quick]

Starts its own lab process (python -m v2g_bench.lab, port 0 everywhere), measures, stops it.
Goal from the lab issue: pyvisa-py (driver path) <= 1.5x the raw-socket round trip to the same
server. Takes ~20 s (about 8 s with --quick).
"""
from __future__ import annotations

import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


def start_lab(tmp: Path) -> tuple[subprocess.Popen, dict]:
    ready = tmp / "ready.json"
    p = subprocess.Popen([sys.executable, "-m", "v2g_bench.lab", "--ready-file", str(ready),
                          "--log", str(tmp / "lab.log")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + 20
    while not ready.exists():
        if p.poll() is not None or time.monotonic() > end:
            p.kill()
            raise SystemExit(f"lab did not start: {p.stderr.read().decode()[-1000:]}")
        time.sleep(0.02)
    return p, json.loads(ready.read_text())


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def fmt(xs: list[float]) -> str:
    xs = sorted(xs)
    return (f"median {statistics.median(xs) * 1e3:.3f} ms, p95 {xs[int(len(xs) * 0.95)] * 1e3:.3f} ms, "
            f"{len(xs) / sum(xs):.0f}/s")


def main(argv: list[str]) -> int:
    import can
    import psutil
    import pyvisa
    from pymodbus.client import ModbusTcpClient

    quick = "--quick" in argv
    n = 300 if quick else 1000
    with tempfile.TemporaryDirectory(prefix="vl-bench-") as td:
        proc, ready = start_lab(Path(td))
        ports = ready["ports"]
        lab_ps = psutil.Process(proc.pid)
        try:
            print(f"lab pid {proc.pid}, ports {ports}")
            # --- SCPI: raw socket vs pyvisa-py, same server, same query
            s = socket.create_connection(("127.0.0.1", ports["battery_scpi"]))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = s.makefile("rb")

            def raw_q():
                s.sendall(b"MEAS:VOLT?\n")
                f.readline()
            timed(raw_q, 50)
            raw = timed(raw_q, n)
            rm = pyvisa.ResourceManager("@py")
            inst = rm.open_resource(f"TCPIP0::127.0.0.1::{ports['battery_scpi']}::SOCKET",
                                    read_termination="\n", write_termination="\n", timeout=2000)
            timed(lambda: inst.query("MEAS:VOLT?"), 50)
            visa = timed(lambda: inst.query("MEAS:VOLT?"), n)
            wt = rm.open_resource(f"TCPIP0::127.0.0.1::{ports['analyzer_scpi']}::SOCKET",
                                  read_termination="\n", write_termination="\n", timeout=2000)
            wt.write(":COMM:HEAD OFF;:NUM:NORM:NUM 15")
            wt_t = timed(lambda: wt.query(":NUM:NORM:VAL?"), n // 2)
            ratio = statistics.median(visa) / statistics.median(raw)
            print(f"SCPI raw socket  MEAS:VOLT?        {fmt(raw)}")
            print(f"SCPI pyvisa-py   MEAS:VOLT?        {fmt(visa)}")
            print(f"SCPI pyvisa-py   :NUM:NORM:VAL? x15 {fmt(wt_t)}")
            print(f"pyvisa-py / raw = {ratio:.2f}x (goal <= 1.5x) -> {'OK' if ratio <= 1.5 else 'ABOVE GOAL'}")

            # --- Modbus round trips (sync pymodbus client)
            mb = ModbusTcpClient("127.0.0.1", port=ports["modbus"], timeout=1.0)
            mb.connect()
            timed(lambda: mb.read_input_registers(0x34, count=2, device_id=2), 20)
            mbt = timed(lambda: mb.read_input_registers(0x34, count=2, device_id=2), n // 2)
            mbh = timed(lambda: mb.read_holding_registers(0x219, count=2, device_id=1), n // 2)
            print(f"Modbus FC04 meter power (unit 2)  {fmt(mbt)}")
            print(f"Modbus FC03 charger state (unit 1) {fmt(mbh)}")

            # --- CAN: python-can socketcand bus A -> lab hub -> bus B
            a = can.Bus(interface="socketcand", host="127.0.0.1", port=ports["can"], channel="can0")
            b = can.Bus(interface="socketcand", host="127.0.0.1", port=ports["can"], channel="can0")
            b.set_filters([{"can_id": 0x123, "can_mask": 0x7FF, "extended": False}])

            def can_rt():
                a.send(can.Message(arbitration_id=0x123, data=b"\x01\x02\x03\x04", is_extended_id=False))
                while True:
                    m = b.recv(1.0)
                    if m is None:
                        raise RuntimeError("CAN frame lost")
                    if m.arbitration_id == 0x123:
                        return
            timed(can_rt, 20)
            cant = timed(can_rt, n // 4)
            print(f"CAN socketcand A->lab->B          {fmt(cant)}")
            a.shutdown()
            b.shutdown()

            # --- lab CPU: idle (clients connected, nothing sent), then sampled at 50 Hz
            lab_ps.cpu_percent(None)
            time.sleep(2.0 if quick else 4.0)
            idle = lab_ps.cpu_percent(None)
            stop = threading.Event()
            count = [0]

            def sampler():
                nxt = time.monotonic()
                while not stop.is_set():
                    wt.query(":NUM:NORM:VAL?")
                    inst.query("MEAS:VOLT?")
                    mb.read_input_registers(0x34, count=2, device_id=2)
                    count[0] += 1
                    nxt += 0.02
                    time.sleep(max(0.0, nxt - time.monotonic()))
            th = threading.Thread(target=sampler, daemon=True)
            lab_ps.cpu_percent(None)
            th.start()
            dur = 2.0 if quick else 4.0
            time.sleep(dur)
            busy = lab_ps.cpu_percent(None)
            stop.set()
            th.join(2)
            print(f"lab CPU idle: {idle:.1f} % of one core (goal < 5 %)")
            print(f"lab CPU at 50 Hz sampling (analyzer 15 items + battery MEAS + meter FC04, "
                  f"{count[0] / dur:.0f} Hz achieved): {busy:.1f} % of one core")
            inst.close()
            wt.close()
            rm.close()
            mb.close()
            s.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
