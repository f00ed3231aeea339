"""The CSMS emulator across processes: N `CsmsServer` processes listening on one port (SO_REUSEPORT).

The kernel hashes each new TCP connection to one of the listening processes and keeps it there, so a
station's frames are all handled, in order, by one process: per-station ordering holds without a front.
Each shard records its own JSONL (`<record>.shard<N>.jsonl`; frames carry `time.monotonic()`, one clock
for every process on the host). Limits: a station that reconnects may land on another shard (the
one-live-connection-per-station rule is per shard), and CALLs *to* a station must be sent by the shard
holding it — this is for load, not for a test's CSMS role.

    with ShardedCsms({"security_profile": 1, "password": ...}, shards=2, workdir=d) as csms:
        csms.port ...
    csms.stats   # per shard: frames, violations, pid
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from v2g_bench.errors import BenchError


def _serve(options_json: str, ready: str) -> None:
    from v2g_bench.csms.server import CsmsOptions, CsmsServer

    async def main():
        srv = CsmsServer(CsmsOptions.from_dict(json.loads(options_json)))
        await srv.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        Path(ready + ".tmp").write_text(json.dumps({"pid": os.getpid(), "port": srv.port}))
        os.replace(ready + ".tmp", ready)
        await stop.wait()
        stats = {"pid": os.getpid(), "frames": srv.recorder.count, "violations": len(srv.violations),
                 "flooding": sum(e.kind == "flooding" for e in srv.events)}
        Path(ready + ".stats").write_text(json.dumps(stats))
        await srv.stop()
    asyncio.run(main())


def _free_reuseport_port(host: str) -> tuple[socket.socket, int]:
    """Reserve a port for the group: a bound (not listening) SO_REUSEPORT socket receives no connections."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind((host, 0))
    return s, s.getsockname()[1]


class ShardedCsms:
    def __init__(self, options: dict, *, shards: int, workdir: str | Path, nice: int = 0):
        if shards < 1:
            raise BenchError(f"shards must be >= 1, got {shards}", where="ShardedCsms")
        if not hasattr(socket, "SO_REUSEPORT"):
            raise BenchError("this OS has no SO_REUSEPORT", where="ShardedCsms", fix="use shards=1")
        self.options, self.n, self.workdir, self.nice = dict(options), shards, Path(workdir), nice
        self.procs: list[subprocess.Popen] = []
        self.port: int | None = None
        self.pids: list[int] = []
        self.stats: list[dict] = []

    def start(self, timeout_s: float = 60.0) -> "ShardedCsms":
        self.workdir.mkdir(parents=True, exist_ok=True)
        host = self.options.get("host", "127.0.0.1")
        holder, self.port = _free_reuseport_port(host)
        record = self.options.get("record_path")
        try:
            for i in range(self.n):
                opts = dict(self.options, port=self.port, reuse_port=True, retain_frames=False)
                if record:
                    opts["record_path"] = f"{record}.shard{i}.jsonl"
                ready = str(self.workdir / f"shard{i}.ready")
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "v2g_bench.csms.shard", json.dumps(opts), ready],
                    stdin=subprocess.DEVNULL, preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None))
            deadline = time.monotonic() + timeout_s
            for i, p in enumerate(self.procs):
                ready = self.workdir / f"shard{i}.ready"
                while not ready.exists():
                    if p.poll() is not None or time.monotonic() > deadline:
                        raise BenchError(f"CSMS shard {i} did not start (exit code {p.poll()})", where="ShardedCsms")
                    time.sleep(0.05)
                self.pids.append(json.loads(ready.read_text())["pid"])
        except BaseException:
            self.stop()
            raise
        finally:
            holder.close()
        return self

    def stop(self) -> list[dict]:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for i, p in enumerate(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            st = self.workdir / f"shard{i}.ready.stats"
            if st.exists():
                self.stats.append(json.loads(st.read_text()))
        self.procs = []
        return self.stats

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2])
