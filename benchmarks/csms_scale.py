"""CSMS at aggregator scale: 10,000+ stations, 1 TransactionEvent per station every 10 s, every frame parsed,
schema-validated (jsonschema-rs), answered and recorded, with the load generator in processes of its own.

The CSMS runs as `--shards` processes on one port (SO_REUSEPORT, v2g_bench/csms/shard.py); the stations
are spread over `--loaders` load-generator processes, niced (`--nice`, default 10) so they cannot starve
the CSMS, each from its own loopback source address (a source address has only ~28k ephemeral ports).
Two latencies per CALL: end to end at the station (send -> CALLRESULT received, includes the load
generator's own scheduling) and inside the CSMS (its record: frame in -> answer out, one monotonic clock).

    python -m benchmarks.csms_scale                         # 10,000 stations, 1 shard, 30 s
    python -m benchmarks.csms_scale --stations 10000 20000 50000 --shards 1 2 4   # the knee
    python -m benchmarks.csms_scale --stations 2000 --duration 10                 # quick
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.csms_load import cpu_seconds, rss_mb, tx_event
from v2g_bench.csms.shard import ShardedCsms

PASSWORD = "bench-scale-password-0123"


def _raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ------------------------------------------------------------------------------ one load-generator process
async def _load(port: int, first: int, count: int, total: int, period: float, duration: float, source: str,
                go_file: str, connected_file: str) -> dict:
    from websockets.asyncio.client import connect
    sem = asyncio.Semaphore(100)
    errors: list[str] = []

    async def open_one(i):
        sid = f"S{i:06d}"
        hdr = {"Authorization": "Basic " + base64.b64encode(f"{sid}:{PASSWORD}".encode()).decode()}
        async with sem:
            return await connect(f"ws://127.0.0.1:{port}/ocpp/{sid}", subprotocols=["ocpp2.0.1"],
                                 additional_headers=hdr, ping_interval=None, open_timeout=120, compression=None,
                                 local_addr=(source, 0))
    t0 = time.monotonic()
    opened = await asyncio.gather(*(open_one(first + k) for k in range(count)), return_exceptions=True)
    conns = []
    for k, r in enumerate(opened):
        if isinstance(r, BaseException):
            errors.append(f"connect: {r!r}")
        else:
            conns.append((first + k, r))
    connect_s = time.monotonic() - t0
    Path(connected_file).write_text(str(len(conns)))
    deadline = time.monotonic() + 600
    while not os.path.exists(go_file):      # every loader connected: start together
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        await asyncio.sleep(0.05)
    start = float(Path(go_file).read_text())
    end = start + duration
    rtts: list[float] = []

    async def station(i, ws):
        seq, tx = 0, f"tx-{i}"
        t_next = start + period * (i / total) + random.uniform(0, 0.001)
        while True:
            await asyncio.sleep(max(0.0, t_next - time.monotonic()))
            if time.monotonic() >= end:
                return
            uid = f"{i}-{seq}"
            frame = json.dumps([2, uid, "TransactionEvent", tx_event(seq, tx)])
            t = time.monotonic()
            try:
                await ws.send(frame)
                reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
                if reply[0] != 3 or reply[1] != uid:
                    errors.append(f"unexpected reply {reply!r:.100}")
                else:
                    rtts.append(time.monotonic() - t)
            except Exception as e:
                errors.append(f"call: {e!r}")
                return
            seq += 1
            t_next += period
    await asyncio.gather(*(station(i, ws) for i, ws in conns))
    await asyncio.gather(*(ws.close() for _, ws in conns), return_exceptions=True)
    return {"connected": len(conns), "connect_s": connect_s, "rtts": rtts, "errors": errors[:5],
            "n_errors": len(errors)}


def load_main(argv) -> None:
    port, first, count, total, period, duration, source, go, connected, out = argv
    _raise_fd_limit()
    r = asyncio.run(_load(int(port), int(first), int(count), int(total), float(period), float(duration), source,
                          go, connected))
    Path(out).write_text(json.dumps(r))


# ------------------------------------------------------------------------------ orchestration
def csms_side_latency(records: list[Path]) -> np.ndarray:
    """Frame in -> answer out, per CALL, from the CSMS's own JSONL record."""
    lat = []
    for path in records:
        t_in: dict[tuple, float] = {}
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                key = (r["station"], r["id"])
                if r["dir"] == "in" and r["type"] == "CALL":
                    t_in[key] = r["t"]
                elif r["dir"] == "out" and key in t_in:
                    lat.append(r["t"] - t_in.pop(key))
    return np.array(lat)


def one_run(n: int, shards: int, loaders: int, period: float, duration: float, nice: int, probes: int = 0) -> dict:
    work = Path(tempfile.mkdtemp(prefix="csms-scale-"))
    record = str(work / "frames")
    load0 = os.getloadavg()[0]
    csms = ShardedCsms({"security_profile": 1, "password": PASSWORD, "ocpp_versions": ["2.0.1"],
                        "record_path": record}, shards=shards, workdir=work)
    csms.start()
    procs = []
    try:
        cpu0 = sum(cpu_seconds(p) for p in csms.pids)
        # the last `probes` stations run in a process of their own at normal priority: a few stations cannot
        # load it, so their end-to-end latency is the CSMS's and the kernel's, not a starved generator's
        bounds = np.linspace(0, n - probes, loaders + 1).astype(int)
        if probes:
            bounds = np.append(bounds, n)
        go = str(work / "go")
        for k in range(len(bounds) - 1):
            args = [str(csms.port), str(bounds[k]), str(bounds[k + 1] - bounds[k]), str(n), str(period),
                    str(duration), f"127.0.0.{10 + k}", go, str(work / f"connected{k}"), str(work / f"load{k}.json")]
            niceness = 0 if k == loaders else nice
            procs.append(subprocess.Popen([sys.executable, "-m", "benchmarks.csms_scale", "--load", *args],
                                          stdin=subprocess.DEVNULL, preexec_fn=lambda x=niceness: os.nice(x)))
        deadline = time.monotonic() + 300
        while not all((work / f"connected{k}").exists() for k in range(len(procs))):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("load generators did not connect")
            time.sleep(0.2)
        connected_rss = sum(rss_mb(p) for p in csms.pids)
        cpu1 = sum(cpu_seconds(p) for p in csms.pids)
        t_go = time.monotonic() + 1.0
        Path(go + ".tmp").write_text(repr(t_go))
        os.replace(go + ".tmp", go)
        for p in procs:
            p.wait(timeout=duration + 300)
        cpu2 = sum(cpu_seconds(p) for p in csms.pids)
        rss = sum(rss_mb(p) for p in csms.pids)
        load1 = os.getloadavg()[0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)
        stats = csms.stop()
    parts = [json.loads((work / f"load{k}.json").read_text()) for k in range(len(procs))
             if (work / f"load{k}.json").exists()]
    rtt = np.array([x for p in parts for x in p["rtts"]])
    probe = (np.array(json.loads((work / f"load{loaders}.json").read_text())["rtts"])
             if probes and (work / f"load{loaders}.json").exists() else np.zeros(0))
    inside = csms_side_latency(sorted(work.glob("frames.shard*.jsonl")))

    def ms(a, q):
        return round(float(np.quantile(a, q)) * 1000, 1) if a.size else float("nan")
    send_s = duration
    return {"stations": n, "shards": shards, "connected": sum(p["connected"] for p in parts),
            "offered_per_s": round(n / period, 1), "rt_per_s": round(rtt.size / send_s, 1),
            "p50_ms": ms(rtt, 0.5), "p99_ms": ms(rtt, 0.99), "max_ms": ms(rtt, 1.0),
            "probe_n": int(probe.size), "probe_p50_ms": ms(probe, 0.5), "probe_p99_ms": ms(probe, 0.99),
            "csms_p50_ms": ms(inside, 0.5), "csms_p99_ms": ms(inside, 0.99),
            "csms_cpu_pct": round(100 * (cpu2 - cpu1) / send_s, 1),
            "connect_cpu_s": round(cpu1 - cpu0, 1),
            "rss_mb": round(rss, 1), "rss_connected_mb": round(connected_rss, 1),
            "errors": sum(p["n_errors"] for p in parts), "first_errors": [e for p in parts for e in p["errors"]][:3],
            "violations": sum(s["violations"] for s in stats), "frames": sum(s["frames"] for s in stats),
            "load_before": round(load0, 2), "load_after": round(load1, 2)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stations", type=int, nargs="*", default=[10_000])
    ap.add_argument("--shards", type=int, nargs="*", default=[1], help="one run per (stations, shards)")
    ap.add_argument("--loaders", type=int, default=2)
    ap.add_argument("--period", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--nice", type=int, default=10, help="niceness of the load generators")
    ap.add_argument("--probes", type=int, default=20,
                    help="stations in a process of their own at normal priority (their latency is the CSMS's)")
    ap.add_argument("--load", nargs=10, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.load:
        return load_main(a.load)
    hard = _raise_fd_limit()
    print(f"CSMS scale: every frame parsed, schema-validated, answered, recorded; load generators in "
          f"{a.loaders} process(es) at nice {a.nice}; {os.cpu_count()} CPUs shared; fd limit {hard}")
    print(f"{'stations':>8} {'shards':>6} {'offered/s':>9} {'rt/s':>7} {'p50':>6} {'p99':>7} {'max':>7} "
          f"{'csms p50':>8} {'csms p99':>8} {'cpu%':>6} {'cpu%/1k':>7} {'MB':>6} {'MB/1k':>6} {'err':>5} "
          f"{'viol':>4} {'load':>5}   (ms)")
    for n in a.stations:
        for s in a.shards:
            if n / s > hard - 100:
                print(f"{n:>8} {s:>6}   skipped: {n / s:.0f} connections per process > fd limit {hard}")
                continue
            r = one_run(n, s, a.loaders, a.period, a.duration, a.nice, a.probes)
            print(f"{n:>8} {s:>6} {r['offered_per_s']:>9} {r['rt_per_s']:>7} {r['p50_ms']:>6} {r['p99_ms']:>7} "
                  f"{r['max_ms']:>7} {r['csms_p50_ms']:>8} {r['csms_p99_ms']:>8} {r['csms_cpu_pct']:>6} "
                  f"{round(r['csms_cpu_pct'] * 1000 / n, 2):>7} {r['rss_mb']:>6} {round(r['rss_mb'] * 1000 / n, 1):>6} "
                  f"{r['errors']:>5} {r['violations']:>4} {r['load_after']:>5}", flush=True)
            print(f"   probe stations (nice 0): {r['probe_n']} CALLs, e2e p50 {r['probe_p50_ms']} ms, "
                  f"p99 {r['probe_p99_ms']} ms", flush=True)
            if r["first_errors"] or r["connected"] < n:
                print(f"   connected {r['connected']}/{n}; errors: {r['first_errors']}")


if __name__ == "__main__":
    main()
