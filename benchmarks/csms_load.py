"""CSMS emulator under load: round trips/s and latency with 100, 1,000 and 5,000 stations.

One CSMS process (the real emulator core: handshake with Basic auth, every incoming frame parsed,
checked against the OCPP 2.0.1 JSON schema by our compiled validator, answered, and recorded as
JSONL) and one load-generator process that opens N raw WebSocket connections and sends, from each
station, a TransactionEvent(Updated) with meter values every `period` seconds (staggered), timing
each CALL -> CALLRESULT round trip.

    python -m benchmarks.csms_load            # quick: 100 @ 1 s and 1,000 @ 10 s, 6 s each
    python -m benchmarks.csms_load --full     # 100, 1,000, 5,000 stations @ 10 s, 40 s each
    python -m benchmarks.csms_load --stations 5000 --period 10 --duration 30
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSWORD = "bench-load-password"


# ------------------------------------------------------------------------------ CSMS process
def serve_csms(port_file: str, record: str) -> None:
    from v2g_bench.csms.server import CsmsOptions, CsmsServer

    async def main():
        opts = CsmsOptions.from_dict({"security_profile": 1, "password": PASSWORD, "ocpp_versions": ["2.0.1"],
                                      "record_path": record, "retain_frames": False})
        srv = CsmsServer(opts)
        await srv.start()
        Path(port_file + ".tmp").write_text(str(srv.port))
        os.replace(port_file + ".tmp", port_file)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        import signal
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        Path(port_file + ".stats").write_text(json.dumps({"frames": srv.recorder.count,
                                                          "violations": len(srv.violations)}))
        await srv.stop()
    asyncio.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------ load generator
def tx_event(seq: int, tx: str) -> dict:
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {"eventType": "Updated", "timestamp": now, "triggerReason": "MeterValuePeriodic", "seqNo": seq,
            "transactionInfo": {"transactionId": tx, "chargingState": "Charging"},
            "meterValue": [{"timestamp": now, "sampledValue": [
                {"value": 1234.5 + seq, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": 12.5, "measurand": "Energy.Active.Export.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": 7200.0, "measurand": "Power.Active.Import"}]}]}


async def run_load(port: int, n: int, period: float, duration: float) -> dict:
    from websockets.asyncio.client import connect

    latencies: list[float] = []
    errors: list[str] = []
    conns = []
    t_conn = time.perf_counter()
    sem = asyncio.Semaphore(200)          # bounded handshake concurrency

    async def open_one(i):
        sid = f"LOAD{i:05d}"
        hdr = {"Authorization": "Basic " + base64.b64encode(f"{sid}:{PASSWORD}".encode()).decode()}
        async with sem:
            ws = await connect(f"ws://127.0.0.1:{port}/ocpp/{sid}", subprotocols=["ocpp2.0.1"],
                               additional_headers=hdr, ping_interval=None, open_timeout=60, compression=None)
        return ws
    results = await asyncio.gather(*(open_one(i) for i in range(n)), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            errors.append(f"connect: {r!r}")
        else:
            conns.append(r)
    connect_s = time.perf_counter() - t_conn
    start = time.monotonic() + 0.5
    end = start + duration

    async def station(i, ws):
        tx = f"tx-{i}"
        seq = 0
        t_next = start + period * (i / max(len(conns), 1)) + random.uniform(0, 0.001)
        while True:
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
            if time.monotonic() >= end:
                return
            uid = f"{i}-{seq}"
            frame = json.dumps([2, uid, "TransactionEvent", tx_event(seq, tx)])
            t0 = time.perf_counter()
            try:
                await ws.send(frame)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if reply[0] != 3 or reply[1] != uid:
                    errors.append(f"unexpected reply {reply!r:.100}")
                else:
                    latencies.append(time.perf_counter() - t0)
            except Exception as e:
                errors.append(f"call: {e!r}")
                return
            seq += 1
            t_next += period
    t0 = time.perf_counter()
    await asyncio.gather(*(station(i, ws) for i, ws in enumerate(conns)))
    wall = time.perf_counter() - t0
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    lat = sorted(latencies)

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    return {"stations": n, "connected": len(conns), "period_s": period, "connect_s": round(connect_s, 2),
            "round_trips": len(lat), "rt_per_s": round(len(lat) / duration, 1),
            "offered_per_s": round(len(conns) / period, 1), "p50_ms": round(pct(0.50), 2),
            "p99_ms": round(pct(0.99), 2), "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None, "errors": len(errors),
            "first_errors": errors[:3], "wall_s": round(wall, 1)}


def load_main(port: int, n: int, period: float, duration: float, out: str) -> None:
    Path(out).write_text(json.dumps(asyncio.run(run_load(port, n, period, duration))))


# ------------------------------------------------------------------------------ orchestration
def one_run(n: int, period: float, duration: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="cs-load-"))
    port_file = str(work / "port")
    record = str(work / "frames.jsonl")
    csms = subprocess.Popen([sys.executable, "-m", "benchmarks.csms_load", "--serve", port_file, record],
                            stdin=subprocess.DEVNULL)
    load = None
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(port_file):
            if time.monotonic() > deadline or csms.poll() is not None:
                raise RuntimeError("CSMS process did not start")
            time.sleep(0.05)
        port = int(Path(port_file).read_text())
        cpu0 = cpu_seconds(csms.pid)
        out = str(work / "load.json")
        load = subprocess.Popen([sys.executable, "-m", "benchmarks.csms_load", "--load", str(port), str(n),
                                 str(period), str(duration), out], stdin=subprocess.DEVNULL)
        load.wait(timeout=duration + 180)
        cpu1 = cpu_seconds(csms.pid)
        mem = rss_mb(csms.pid)
        res = json.loads(Path(out).read_text())
        busy = res["wall_s"] + res["connect_s"]
        res["csms_cpu_pct"] = round(100 * (cpu1 - cpu0) / busy, 1) if busy else None
        res["csms_rss_mb"] = round(mem, 1)
    finally:
        for p in (load, csms):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
    stats = Path(port_file + ".stats")
    if stats.exists():
        s = json.loads(stats.read_text())
        res["frames_recorded"], res["violations"] = s["frames"], s["violations"]
    res["record_bytes"] = os.path.getsize(record) if os.path.exists(record) else 0
    return res


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="100, 1,000, 5,000 stations @ 10 s, 40 s each")
    ap.add_argument("--stations", type=int, nargs="*")
    ap.add_argument("--period", type=float, default=None)
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--serve", nargs=2, metavar=("PORT_FILE", "RECORD"), help=argparse.SUPPRESS)
    ap.add_argument("--load", nargs=5, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.serve:
        return serve_csms(*a.serve)
    if a.load:
        port, n, period, duration, out = a.load
        return load_main(int(port), int(n), float(period), float(duration), out)
    if a.stations:
        plan = [(n, a.period or 10.0, a.duration or 30.0) for n in a.stations]
    elif a.full:
        plan = [(100, 10.0, 40.0), (1000, 10.0, 40.0), (5000, 10.0, 40.0)]
    else:
        plan = [(100, 1.0, 6.0), (1000, 10.0, 6.0)]
    print(f"CSMS load (each incoming frame schema-validated and recorded); {os.cpu_count()} CPUs shared")
    hdr = f"{'stations':>8} {'period':>6} {'offered/s':>9} {'rt/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} " \
          f"{'CSMS cpu%':>9} {'rss MB':>7} {'errors':>6} {'violations':>10}"
    print(hdr)
    for n, period, duration in plan:
        r = one_run(n, period, duration)
        print(f"{r['stations']:>8} {r['period_s']:>6g} {r['offered_per_s']:>9} {r['rt_per_s']:>7} {r['p50_ms']:>7} "
              f"{r['p99_ms']:>7} {r['max_ms']!s:>7} {r['csms_cpu_pct']!s:>9} {r['csms_rss_mb']:>7} "
              f"{r['errors']:>6} {r.get('violations', '?')!s:>10}", flush=True)
        if r["first_errors"]:
            print("   errors:", r["first_errors"])


if __name__ == "__main__":
    main()
