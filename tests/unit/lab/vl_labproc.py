"""Helpers for the lab tests: spawn a real lab process (python -m v2g_bench.lab) on loopback."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path


# A tiny service that the lab imports through [services.testsvc]: it opens its own TCP port,
# registers a control op and adds extra keys to the ready file.
TEST_SERVICE = textwrap.dedent('''
    import asyncio

    class _Svc:
        def __init__(self, server):
            self.server = server
            self.stopped = False
        async def stop(self):
            self.server.close()
            await self.server.wait_closed()

    async def start_service(plant, cfg, ctx):
        async def on_client(reader, writer):
            line = await reader.readline()
            writer.write(f"{plant.state().soc:.6f} {line.decode().strip()}\\n".encode())
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(on_client, ctx.host, 0)
        ctx.ports["testsvc"] = server.sockets[0].getsockname()[1]
        ctx.ready["testsvc"] = {"greeting": cfg.get("greeting", "none")}
        async def op_svc_setpoint(p_w):
            plant.set_contactor(True)
            plant.set_power_setpoint(float(p_w))
            return {"setpoint_w": plant.state().setpoint_w}
        ctx.register_op("svc_setpoint", op_svc_setpoint)
        async def op_svc_sleep(s):
            await asyncio.sleep(float(s))
            return {"slept": s}
        ctx.register_op("svc_sleep", op_svc_sleep)
        ctx.log.info("test service up")
        return _Svc(server)
''')


def wait_until(fn, timeout: float, what: str, interval: float = 0.02):
    """Poll `fn` until it returns a truthy value; fail with `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class LabProc:
    def __init__(self, tmp: Path, args: list[str], env_extra: dict | None = None):
        self.tmp = tmp
        self.ready_path = tmp / "ready.json"
        self.log_path = tmp / "lab.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(tmp) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(env_extra or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "v2g_bench.lab", "--ready-file", str(self.ready_path),
             "--log", str(self.log_path), *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.ready: dict = {}

    def wait_ready(self, timeout: float = 20.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.ready_path.exists():
                self.ready = json.loads(self.ready_path.read_text())
                return self.ready
            if self.proc.poll() is not None:
                out, err = self.proc.communicate(timeout=5)
                raise AssertionError(f"lab exited with {self.proc.returncode}: {err.decode()[-2000:]}")
            time.sleep(0.02)
        raise AssertionError(f"lab not ready within {timeout} s; log: {self.log_text()[-2000:]}")

    def port(self, name: str) -> int:
        return int(self.ready["ports"][name])

    def log_text(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, timeout: float = 5.0) -> tuple[int, float]:
        if self.proc.poll() is not None:
            return self.proc.returncode, 0.0
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("lab did not stop within 5 s of SIGTERM")
        finally:
            for s in (self.proc.stdout, self.proc.stderr):
                s.close()
        return rc, time.monotonic() - t0
