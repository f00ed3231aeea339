"""Start and stop the virtual lab process (`python -m v2g_bench.lab`) for the harness.

The lab binds its front-ends on ports the OS picks and writes a ready file (JSON) once all are
listening; we wait for that file and then check every port accepts a TCP connection. The lab's
log is kept as test evidence. Stopping is by PID: SIGTERM, then SIGKILL after a grace period.

The lab is told who it lives for (`V2G_BENCH_LAB_OWNERS`: this process and, under xdist, the
controller): if the harness is killed outright the lab falls to its safe state and exits on its own
(see lab.server.OwnerWatch). Labs of runs killed before that existed are removed by
`harness.leftovers` at the next start and by `v2g-bench doctor`.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from v2g_bench.errors import LabError


def _lab_priority() -> None:
    """In the lab's child before exec: a higher scheduling priority where allowed (root), so the simulated
    charger answers in its own time on a shared, loaded machine — the charger's timing is judged at the
    standard's limits and the bench must not make it late. Without the privilege it keeps the default."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        pass


@dataclass
class LabHandle:
    pid: int
    info: dict                      # the ready file: {"pid", "ports": {...}, ...}
    log_path: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)
    host: str = "127.0.0.1"
    killed: bool = False            # stop() had to SIGKILL it

    @property
    def ports(self) -> dict[str, int]:
        return self.info.get("ports", {})

    def control(self, timeout: float = 2.0):
        """A client for the lab's control port (fault injection, plant inspection)."""
        from v2g_bench.lab.control import LabControl
        return LabControl(self.host, self.ports["control"], timeout=timeout)

    @contextmanager
    def dc_link(self, voltage_v: float = 370.0, *, watchdog_s: float = 5.0) -> Iterator[object]:
        """The lab's battery emulator holding the DC link, driven as a bench drives it: it powers up off, so
        its limits are programmed and read back, then the output is switched on through the RP7900 driver;
        the watchdog is fed while the block runs, and the output is ramped down and verified off after it.
        For tools and tests that drive the lab without the harness (the harness has the `dc_link` fixture);
        limits are those of profiles/virtual-lab.bench.toml."""
        from v2g_bench.instruments.vendors.scpi_dc_source import KeysightRP7900
        from v2g_bench.roles import RoleConfig

        battery = KeysightRP7900.open(RoleConfig(
            role="battery", driver="keysight_rp7900", resource=f"TCPIP0::{self.host}::{self.ports['battery_scpi']}::SOCKET",
            limits={"voltage_max_v": 500.0, "current_charge_max_a": 40.0, "current_discharge_max_a": 40.0,
                    "power_max_w": 20000.0, "ovp_v": 550.0},
            options={"model": "RP7952A", "watchdog_s": watchdog_s}))
        try:
            battery.apply_limits()
            battery.set_voltage(voltage_v)
            battery.output_on()
            with battery.keep_alive():
                yield battery
            battery.safe_state()
        finally:
            battery.close()

    def alive(self) -> bool:
        return self.proc is None or self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM, wait up to grace_s, then SIGKILL (`killed` says so). Returns the exit code.

        The grace is generous: at the end of a parallel test session both workers stop their labs on a
        loaded 2-core machine, and a lab that needed SIGKILL reads as a shutdown defect."""
        if self.proc is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def owner_processes() -> list[int]:
    """The processes a lab we start must not outlive: this one, and the xdist controller if any."""
    pids = [os.getpid()]
    if os.environ.get("PYTEST_XDIST_WORKER") and os.getppid() > 1:
        pids.append(os.getppid())
    return pids


def owners_env() -> str:
    """`pid:start_time,...` -- the start time tells a live owner from a reused pid."""
    import psutil
    items = []
    for pid in owner_processes():
        try:
            items.append(f"{pid}:{psutil.Process(pid).create_time():.3f}")
        except psutil.Error:
            continue
    return ",".join(items)


def start_lab(*, workdir: str | Path | None = None, config: str | Path | None = None, seed: int = 1,
              time_scale: float = 1.0, overrides: dict[str, object] | None = None, host: str = "127.0.0.1",
              timeout_s: float = 30.0, python: str | None = None) -> LabHandle:
    """Start the lab and wait until it is ready; LabError (with its log tail) if it is not within timeout_s."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="v2g-lab-"))
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "lab-ready.json"
    log_path = workdir / "lab.log"
    ready.unlink(missing_ok=True)
    cmd = [python or sys.executable, "-m", "v2g_bench.lab", "--ready-file", str(ready), "--log", str(log_path),
           "--seed", str(seed), "--time-scale", repr(float(time_scale)), "--host", host]
    if config:
        cmd += ["--config", str(config)]
    for k, v in (overrides or {}).items():
        cmd += ["--set", f"{k}={v}"]
    from v2g_bench.harness import leftovers
    leftovers.remove_stale_labs()          # a killed earlier run's lab still holds the plant: stop it first
    env = {**os.environ, "V2G_BENCH_LAB_OWNERS": owners_env()}
    logf = open(log_path, "ab")
    try:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env,   # Ctrl-C in the terminal must not kill it before we stop it
                                preexec_fn=_lab_priority)
    finally:
        logf.close()
    handle = LabHandle(pid=proc.pid, info={}, log_path=log_path, proc=proc, host=host)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError(f"the virtual lab exited with code {proc.returncode} while starting:\n{handle.log_tail()}",
                               fix="run 'v2g-bench lab' to see the error; 'v2g-bench doctor' checks the set-up")
            if ready.exists():
                try:
                    handle.info = json.loads(ready.read_text())
                    break
                except json.JSONDecodeError:
                    pass   # written atomically by the lab, but be tolerant
            time.sleep(0.05)
        else:
            raise LabError(f"the virtual lab was not ready within {timeout_s:g} s:\n{handle.log_tail()}",
                           fix="the machine may be overloaded; raise lab.start_timeout_s in the bench profile")
        dead = [name for name, port in handle.ports.items()
                if isinstance(port, int) and not _port_open(host, port)]
        if dead:
            raise LabError(f"the virtual lab reported ports that do not accept connections: {dead}")
        return handle
    except BaseException:
        handle.stop()
        raise


@contextmanager
def running_lab(**kw) -> Iterator[LabHandle]:
    handle = start_lab(**kw)
    try:
        yield handle
    finally:
        handle.stop()
