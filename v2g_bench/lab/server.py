"""The virtual lab process: one plant, one clock, every front-end and service in one asyncio loop.

`python -m v2g_bench.lab` (and `v2g-bench lab`) call `run_lab()`. It loads the lab TOML (with
`--set key=value` overrides), builds the plant, binds every front-end to port 0 (the OS picks), starts
the services, and only then writes the ready file atomically (tmp + rename):

    {"pid": .., "host": "127.0.0.1", "ports": {"battery_scpi": .., "analyzer_scpi": .., "modbus": ..,
     "can": .., "control": .., <service ports>}, "resources": {...}, "started": <unix time>,
     "seed": .., "time_scale": .., <service extras, e.g. "iso15118": {...}>}

SIGTERM/SIGINT: outputs off (plant safe state), services stopped, sockets closed, ready file
removed, exit 0, all within 5 s (every stop step has its own timeout).

Owners: the harness names the processes the lab lives for in the environment variable
`V2G_BENCH_LAB_OWNERS` ("pid:start_time,..."; see labproc). When any of them dies -- even by
`kill -9`, which runs no clean-up in the harness -- the lab opens the contactor, zeroes every
setpoint and switches the emulator off at once, then stops. A pidfd makes this immediate; where
pidfds are missing a 0.2 s poll does it.
"""
from __future__ import annotations

import asyncio
import difflib
import importlib
import json
import logging
import math
import os
import signal
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Literal, Optional

from pydantic import BaseModel, StrictBool, StrictInt, StrictStr

from v2g_bench.errors import LabError, ProfileError
from v2g_bench.profiles.profile_schema import Closed, NonEmptyStr, Positive, did_you_mean, validate
from v2g_bench.lab.frontends.can import SocketcandServer
from v2g_bench.lab.control import ControlServer
from v2g_bench.lab.frontends.modbus import ModbusFrontEnd
from v2g_bench.lab.plant import LabClock, Plant, PlantConfig
from v2g_bench.lab.frontends.scpi_server import ScpiServer

DEFAULT_CONFIG = Path(__file__).with_name("default_lab.toml")
TOP_KEYS = {"lab", "plant", "frontends", "services"}
FRONTENDS = {"battery_scpi", "analyzer_scpi", "modbus", "can"}
DIALECTS = {
    "keysight_rp7900": "v2g_bench.lab.frontends.dialects.keysight_rp7900",
    "yokogawa_wt": "v2g_bench.lab.frontends.dialects.yokogawa_wt",
}
STOP_STEP_TIMEOUT = 1.5
OWNERS_ENV = "V2G_BENCH_LAB_OWNERS"
OWNER_POLL_S = 0.2

log = logging.getLogger("v2g_bench.lab")


# ------------------------------------------------------------------------------------ config

def parse_set(item: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (["a","b","c"], value); value parsed as TOML when it is valid TOML."""
    if "=" not in item:
        raise LabError(f"--set {item!r}: expected key=value", where="--set",
                       fix="e.g. --set services.secc.iface=vl-secc0")
    key, raw = item.split("=", 1)
    path = [k.strip() for k in key.strip().split(".")]
    if not all(path):
        raise LabError(f"--set {item!r}: empty key part", where="--set")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw                                   # bare word -> string
    return path, value


def load_config(path: str | Path | None = None, sets: list[str] | tuple[str, ...] = ()) -> dict:
    p = Path(path) if path else DEFAULT_CONFIG
    try:
        cfg = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise LabError(f"lab config {p} not found", where="--config", fix="pass an existing TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise LabError(f"lab config is not valid TOML: {e}", where=str(p), fix="fix the TOML syntax") from None
    for item in sets:
        keys, value = parse_set(item)
        d = cfg
        for k in keys[:-1]:
            d = d.setdefault(k, {})
            if not isinstance(d, dict):
                raise LabError(f"--set {item!r}: {k!r} is not a table", where="--set")
        d[keys[-1]] = value
    errors = [f"{k}: unknown top-level table{did_you_mean(k, TOP_KEYS)} (known: {', '.join(sorted(TOP_KEYS))})"
              for k in cfg if k not in TOP_KEYS]
    errors += check_settings(cfg)
    for k in cfg.get("frontends", {}) if isinstance(cfg.get("frontends"), dict) else ():
        if k not in FRONTENDS:
            errors.append(f"frontends.{k}: unknown front-end{did_you_mean(k, FRONTENDS)} "
                          f"(known: {', '.join(sorted(FRONTENDS))})")
    for name, svc in cfg.get("services", {}).items() if isinstance(cfg.get("services"), dict) else ():
        if not isinstance(svc, dict) or not isinstance(svc.get("module"), str):
            errors.append(f"services.{name}: needs module = \"package.module\"")
    for name in ("battery_scpi", "analyzer_scpi"):
        fe = cfg.get("frontends", {}).get(name, {}) if isinstance(cfg.get("frontends"), dict) else {}
        d = fe.get("dialect") if isinstance(fe, dict) else None
        if d is not None and d not in DIALECTS:
            errors.append(f"frontends.{name}.dialect: {d!r} unknown (known: {', '.join(DIALECTS)})")
    if errors:
        raise ProfileError(errors, where=str(p) + (f" with --set {', '.join(sets)}" if sets else ""))
    return cfg


class _LabSection(Closed):
    seed: StrictInt = 0
    time_scale: Positive = 1.0
    clock: Literal["real", "manual"] = "real"
    host: NonEmptyStr = "127.0.0.1"


class _Toggle(Closed):
    enabled: StrictBool = True
    port: Optional[StrictInt] = None


class _CanFrontEnd(_Toggle):
    channel: NonEmptyStr = "can0"
    period_s: Positive = 0.1


class _Settings(BaseModel):
    """The keys the lab itself reads; a dialect's and a service's own keys are theirs to check."""
    lab: _LabSection = _LabSection()
    frontends: Dict[StrictStr, Dict[StrictStr, Any]] = {}
    services: Dict[StrictStr, Dict[StrictStr, Any]] = {}


_OPEN_TABLE_KEYS = {"frontends": ("enabled", "port", "dialect"), "services": ("enabled", "module", "start_timeout_s")}


def _non_finite(node: Any, path: str = "") -> list[str]:
    """No lab setting is meaningful as NaN or infinity."""
    if isinstance(node, float) and not math.isfinite(node):
        return [f"{path}: must be a finite number, got {node!r}"]
    if isinstance(node, dict):
        return [e for k, v in node.items() for e in _non_finite(v, f"{path}.{k}" if path else str(k))]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in _non_finite(v, f"{path}[{i}]")]
    return []


def check_settings(cfg: dict) -> list[str]:
    """[lab], [frontends.modbus|can] closed and typed; a near-miss of a common key in an open table
    (a dialect's or a service's) is a typo; NaN/inf nowhere."""
    _, errors = validate(_Settings, cfg)
    fes = cfg.get("frontends") if isinstance(cfg.get("frontends"), dict) else {}
    for name, model in (("modbus", _Toggle), ("can", _CanFrontEnd)):
        if isinstance(fes.get(name), dict):
            errors += [f"frontends.{name}.{m}" for m in validate(model, fes[name])[1]]
    for table, common in _OPEN_TABLE_KEYS.items():
        node = cfg.get(table) if isinstance(cfg.get(table), dict) else {}
        for name, sub in node.items():
            if table == "frontends" and name in ("modbus", "can") or not isinstance(sub, dict):
                continue
            for k in sub:
                hint = did_you_mean(k, common)
                if k not in common and hint and difflib.SequenceMatcher(None, k, hint.split("'")[1]).ratio() >= 0.8:
                    errors.append(f"{table}.{name}.{k}: unknown key{hint}")
            for k in ("enabled",):
                if k in sub and not isinstance(sub[k], bool):
                    errors.append(f"{table}.{name}.{k}: must be true or false, got {sub[k]!r}")
    return errors + _non_finite(cfg)


# ------------------------------------------------------------------------------------ services

@dataclass
class ServiceContext:
    """What a service's `start_service(plant, cfg, ctx)` gets."""
    plant: Plant
    clock: LabClock
    log: logging.Logger
    host: str
    register_op: Callable[[str, Callable], None]
    ports: dict[str, int]
    ready: dict[str, Any] = field(default_factory=dict)    # extra top-level keys for the ready file
    config: dict[str, Any] = field(default_factory=dict)   # the whole lab config (read-only)


# ------------------------------------------------------------------------------------ the lab

class Lab:
    def __init__(self, cfg: dict, *, seed: int | None = None, time_scale: float | None = None,
                 host: str | None = None):
        self.cfg = cfg
        labcfg = cfg.get("lab", {})
        self.seed = int(seed if seed is not None else labcfg.get("seed", 0))
        self.host = host or labcfg.get("host", "127.0.0.1")
        if self.host not in ("127.0.0.1", "::1", "localhost"):
            raise LabError(f"lab host {self.host!r} is not loopback", where="--host",
                           fix="the virtual lab binds to 127.0.0.1 or ::1 only")
        clock_kind = labcfg.get("clock", "real")
        if clock_kind not in ("real", "manual"):
            raise LabError(f"lab.clock = {clock_kind!r}", where="[lab] clock", fix="use 'real' or 'manual'")
        # manual: plant time moves only with the control op `advance` (bit-exact reproducible runs)
        self.clock = LabClock(float(time_scale if time_scale is not None else labcfg.get("time_scale", 1.0)),
                              manual=clock_kind == "manual")
        self.plant = Plant(PlantConfig.from_dict(cfg.get("plant", {})), self.clock, seed=self.seed)
        self.ports: dict[str, int] = {}
        self.resources: dict[str, str] = {}
        self.frontends: dict[str, Any] = {}
        self.services: dict[str, Any] = {}
        self.control = ControlServer(self.plant, self.ports)
        self.ready_extra: dict[str, Any] = {}

    async def start(self) -> dict:
        fe = self.cfg.get("frontends", {})
        host = self.host
        for name, default_dialect in (("battery_scpi", "keysight_rp7900"), ("analyzer_scpi", "yokogawa_wt")):
            opts = dict(fe.get(name, {}))
            if not opts.pop("enabled", True):
                continue
            mod = importlib.import_module(DIALECTS[opts.pop("dialect", default_dialect)])
            inst = mod.create(self.plant, opts)
            srv = ScpiServer(name, inst, self.plant)
            port = await srv.start(host, int(opts.get("port", 0)) if "port" in opts else 0)
            self.frontends[name] = srv
            self.ports[name] = port
            self.resources[name] = f"TCPIP0::{host}::{port}::SOCKET"
        if fe.get("modbus", {}).get("enabled", True):
            mb = ModbusFrontEnd(self.plant)
            self.ports["modbus"] = await mb.start(host, 0)
            self.frontends["modbus"] = mb
            self.resources["modbus"] = f"modbus-tcp://{host}:{self.ports['modbus']} (unit 1 charger, unit 2 meter)"
        cancfg = fe.get("can", {})
        if cancfg.get("enabled", True):
            ch = cancfg.get("channel", "can0")
            can = SocketcandServer(self.plant, channels=(ch,), period_s=float(cancfg.get("period_s", 0.1)))
            self.ports["can"] = await can.start(host, 0)
            self.frontends["can"] = can
            self.resources["can"] = f"socketcand://{host}:{self.ports['can']}/{ch}"
        self.ports["control"] = await self.control.start(host, 0)
        self.plant.add_listener(self._on_plant_event)
        for name, svc in self.cfg.get("services", {}).items():
            scfg = dict(svc)
            if not scfg.pop("enabled", True):
                continue
            modname = scfg.pop("module")
            try:
                mod = importlib.import_module(modname)
            except ImportError as e:
                raise LabError(f"service {name!r}: cannot import {modname}: {e}", where=f"services.{name}.module",
                               fix="check the module path or disable the service") from None
            if not hasattr(mod, "start_service"):
                raise LabError(f"service {name!r}: {modname} has no start_service(plant, cfg, ctx)",
                               where=f"services.{name}.module")
            ctx = ServiceContext(plant=self.plant, clock=self.clock, log=logging.getLogger(f"v2g_bench.lab.svc.{name}"),
                                 host=host, register_op=self.control.register_op, ports=self.ports,
                                 ready=self.ready_extra, config=self.cfg)
            timeout = float(scfg.get("start_timeout_s", 30.0))
            try:
                self.services[name] = await asyncio.wait_for(mod.start_service(self.plant, scfg, ctx), timeout)
            except asyncio.TimeoutError:
                raise LabError(f"service {name!r} did not start within {timeout:g} s", where=f"services.{name}") from None
            log.info("service %s started (%s)", name, modname)
        return self.ready_info()

    def _on_plant_event(self, event: str, info: dict) -> None:
        if event == "fault" and str(info.get("key", "")).startswith("disconnect:"):
            fe = self.frontends.get(info["key"].split(":", 1)[1])
            if fe is not None and hasattr(fe, "drop_connections"):
                fe.drop_connections()
        log.info("plant event %s %s", event, info)

    def ready_info(self) -> dict:
        info = {"pid": os.getpid(), "host": self.host, "ports": dict(self.ports),
                "resources": dict(self.resources), "started": time.time(), "seed": self.seed,
                "time_scale": self.clock.time_scale}
        for k, v in self.ready_extra.items():
            info.setdefault(k, v)
        return info

    async def stop(self) -> None:
        """Outputs off first (safety), then services, then transports; each step time-boxed."""
        try:
            self.plant.outputs_off()
        except Exception:
            log.exception("outputs_off failed")
        for name, svc in reversed(list(self.services.items())):
            try:
                await asyncio.wait_for(svc.stop(), STOP_STEP_TIMEOUT)
            except Exception as e:
                log.warning("service %s did not stop cleanly: %r", name, e)
        self.services.clear()
        steps = [fe.stop() for fe in self.frontends.values()] + [self.control.stop()]
        try:
            await asyncio.wait_for(asyncio.gather(*steps, return_exceptions=True), STOP_STEP_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("front-ends did not close within %s s", STOP_STEP_TIMEOUT)
        self.frontends.clear()


def parse_owners(text: str | None) -> list[tuple[int, float | None]]:
    """`"123:1700000000.5,456"` -> [(123, 1700000000.5), (456, None)]; junk entries are ignored."""
    owners = []
    for item in (text or "").split(","):
        pid_s, _, start_s = item.strip().partition(":")
        try:
            owners.append((int(pid_s), float(start_s) if start_s else None))
        except ValueError:
            continue
    return owners


def owner_alive(pid: int, start_time: float | None) -> bool:
    """Is the process alive and the same one (not a reused pid)?"""
    import psutil
    try:
        proc = psutil.Process(pid)
        return start_time is None or abs(proc.create_time() - start_time) < 1.0
    except psutil.Error:
        return False


class OwnerWatch:
    """Calls `on_gone(pid)` once when any owner process ends (pidfd readable, or a poll)."""

    def __init__(self, owners: list[tuple[int, float | None]], on_gone: Callable[[int], None]):
        self.owners, self.on_gone = owners, on_gone
        self._fds: list[int] = []
        self._poll: asyncio.Task | None = None
        self._fired = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        polled = []
        for pid, start in self.owners:
            if not owner_alive(pid, start):
                loop.call_soon(self._gone, pid)
                continue
            try:
                fd = os.pidfd_open(pid)
            except (AttributeError, OSError):
                polled.append((pid, start))
                continue
            self._fds.append(fd)
            loop.add_reader(fd, self._gone, pid)
        if polled:
            self._poll = loop.create_task(self._poll_loop(polled))

    async def _poll_loop(self, owners) -> None:
        while True:
            await asyncio.sleep(OWNER_POLL_S)
            for pid, start in owners:
                if not owner_alive(pid, start):
                    self._gone(pid)
                    return

    def _gone(self, pid: int) -> None:
        if not self._fired:
            self._fired = True
            self.on_gone(pid)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        for fd in self._fds:
            loop.remove_reader(fd)
            os.close(fd)
        self._fds.clear()
        if self._poll is not None:
            self._poll.cancel()


def write_ready_file(path: str | Path, info: dict) -> None:
    p = Path(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, p)


async def serve(cfg: dict, *, seed: int | None = None, time_scale: float | None = None,
                host: str | None = None, ready_file: str | None = None,
                on_ready: Callable[[dict], None] | None = None,
                stop_event: asyncio.Event | None = None) -> None:
    lab = Lab(cfg, seed=seed, time_scale=time_scale, host=host)
    stop = stop_event or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):   # not the main thread
            pass

    def owner_gone(pid: int) -> None:
        # Safe state first, synchronously: nobody is left to judge or to unwind the roles.
        try:
            lab.plant.outputs_off()
            st = lab.plant.state()
            log.warning("owner process %d is gone: outputs off (contactor closed=%s, setpoint %g W, "
                        "emulator output on=%s); lab stopping", pid, st.contactor_closed,
                        st.setpoint_w, st.battery_output_on)
        except Exception:
            log.exception("owner process %d is gone; outputs_off failed", pid)
        stop.set()

    watch = OwnerWatch(parse_owners(os.environ.get(OWNERS_ENV)), owner_gone)
    watch.start(loop)
    try:
        info = await lab.start()
        if ready_file:
            write_ready_file(ready_file, info)
        log.info("lab ready: %s", json.dumps(info))
        if on_ready:
            on_ready(info)
        await stop.wait()
        log.info("lab stopping")
    finally:
        watch.stop(loop)
        await lab.stop()
        if ready_file:
            try:
                Path(ready_file).unlink()
            except FileNotFoundError:
                pass
        log.info("lab stopped")


def setup_logging(log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._v2g_lab = True                       # type: ignore[attr-defined]
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_v2g_lab", False)]:
        root.removeHandler(h)                     # run twice in one process (tests): no duplicates
        h.close()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("pymodbus").setLevel(logging.WARNING)


def run_lab(*, config: str | None = None, ready_file: str | None = None, seed: int | None = None,
            time_scale: float | None = None, host: str | None = None, log_file: str | None = None,
            sets: list[str] | tuple[str, ...] = (), on_ready: Callable[[dict], None] | None = None) -> int:
    """Run the lab in the foreground until SIGTERM/SIGINT. Returns the process exit code."""
    setup_logging(log_file)
    try:
        cfg = load_config(config, sets)
        asyncio.run(serve(cfg, seed=seed, time_scale=time_scale, host=host, ready_file=ready_file,
                          on_ready=on_ready))
    except (LabError, ProfileError) as e:
        log.error("%s", e)
        print(f"v2g-bench lab: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        log.error("cannot start the lab: %s", e)
        print(f"v2g-bench lab: cannot start: {e}", file=sys.stderr)
        return 2
    return 0
