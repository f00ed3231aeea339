"""The lab's control port: newline-delimited JSON request/response, and its Python client.

Request:  {"op": "<name>", ...args}            one JSON object per line (UTF-8), at most 64 KiB
Response: {"ok": true, ...result}  or  {"ok": false, "error": "<what>", "type": "<class>"}

Built-in ops (services add more with ctx.register_op): ping, ops, ports, state, measure, faults,
fault_list, fault (inject), clear_faults, set_grid, grid_profile, set_time_scale, battery,
setpoint, contactor, power_limits, outputs_off, emulator, measurement,
advance (manual clock only). See docs/virtual-lab.md for arguments.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import socket
import threading
from dataclasses import asdict
from typing import Any, Awaitable, Callable

from v2g_bench.errors import BenchError, LabError
from v2g_bench.lab.plant import FAULTS, Plant
from v2g_bench.harness.asyncrt import close_server

log = logging.getLogger("v2g_bench.lab.control")
MAX_REQUEST = 64 * 1024

Handler = Callable[..., Awaitable[dict] | dict]


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in x]
    return x


class ControlServer:
    def __init__(self, plant: Plant, ports: dict[str, int]):
        self.plant = plant
        self.ports = ports
        self.ops: dict[str, Handler] = {}
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self._builtin()

    def register_op(self, name: str, handler: Handler) -> None:
        if not name or not isinstance(name, str):
            raise LabError(f"bad control op name {name!r}", where="ControlServer.register_op")
        if name in self.ops:
            raise LabError(f"control op {name!r} is already registered", where="ControlServer.register_op",
                           fix="pick another name for the service's op")
        self.ops[name] = handler

    def _builtin(self) -> None:
        p = self.plant

        def fault(name: str, **params):
            return {"key": p.inject_fault(name, **params)}

        def clear_faults(key: str | None = None):
            return {"cleared": p.clear_faults(key)}

        def set_grid(freq_hz: float | None = None, voltage_v: float | None = None):
            p.set_grid(freq_hz=freq_hz, voltage_v=voltage_v)
            s = p.state()
            return {"grid_freq_hz": s.grid_freq_hz, "ac_voltage_v": s.ac_voltage_v}

        def grid_profile(points: list, mode: str = "step"):
            p.set_grid_profile(points, mode)
            return {"points": len(points)}

        def set_time_scale(time_scale: float):
            p.clock.set_time_scale(float(time_scale))
            return {"time_scale": p.clock.time_scale, "t": p.clock.now()}

        def battery(soc: float | None = None, **params):
            if params:
                p.configure_battery(**params)
            if soc is not None:
                p.set_battery_soc(float(soc))
            return {"soc": p.state().soc, "battery": asdict(p.cfg.battery)}

        def setpoint(p_w: float):
            p.set_power_setpoint(float(p_w))
            return {}

        def contactor(closed: bool):
            if not isinstance(closed, bool):
                raise LabError("contactor: 'closed' must be true or false", where="control op contactor")
            p.set_contactor(closed)
            return {}

        def power_limits(charge_w: float, discharge_w: float):
            p.set_power_limits(float(charge_w), float(discharge_w))
            return {}

        def emulator(output_on: bool | None = None, clear_protection: bool = False, **settings):
            if clear_protection:
                p.clear_protection()
            if settings:
                p.set_emulator(**settings)
            if output_on is not None:
                p.set_battery_output(bool(output_on))
            return {"emulator": asdict(p.emulator), "protection": sorted(p.protection)}

        def measurement(**params):
            if params:
                p.configure_measurement(**params)
            return {"measurement": asdict(p.cfg.measurement)}

        def advance(dt: float):
            if not p.clock.manual:
                raise LabError("advance needs the manual clock", where="control op advance",
                               fix="start the lab with --set lab.clock=manual")
            p.step(float(dt))
            return {"t": p.clock.now()}

        def measure(source: str = "analyzer"):
            return asdict(p.measure(source))

        self.ops.update({
            "ping": lambda: {"t": p.clock.now(), "time_scale": p.clock.time_scale},
            "ops": lambda: {"ops": sorted(self.ops)},
            "ports": lambda: {"ports": dict(self.ports)},
            "state": lambda: p.state().as_dict(),
            "measure": measure,
            "faults": lambda: {"faults": p.faults()},
            "fault_list": lambda: {"faults": {k: {"description": d, "params": prm} for k, (d, prm) in FAULTS.items()}},
            "fault": fault, "inject_fault": fault,
            "clear_faults": clear_faults,
            "set_grid": set_grid,
            "grid_profile": grid_profile,
            "set_time_scale": set_time_scale,
            "battery": battery,
            "setpoint": setpoint,
            "contactor": contactor,
            "power_limits": power_limits,
            "outputs_off": lambda: (p.outputs_off(), {})[1],
            "emulator": emulator,
            "measurement": measurement,
            "advance": advance,
        })

    async def handle(self, req: Any) -> dict:
        if not isinstance(req, dict):
            return {"ok": False, "error": "request must be a JSON object", "type": "BadRequest"}
        op = req.get("op")
        if not isinstance(op, str):
            return {"ok": False, "error": "missing 'op' (string)", "type": "BadRequest"}
        fn = self.ops.get(op)
        if fn is None:
            return {"ok": False, "error": f"unknown op {op!r} (known: {', '.join(sorted(self.ops))})",
                    "type": "UnknownOp"}
        args = {k: v for k, v in req.items() if k != "op"}
        try:
            sig = inspect.signature(fn)
            sig.bind(**args)
        except TypeError as e:
            return {"ok": False, "error": f"op {op!r}: {e}", "type": "BadArguments"}
        except ValueError:
            pass
        try:
            res = fn(**args)
            if inspect.isawaitable(res):
                res = await res
        except BenchError as e:
            return {"ok": False, "error": str(e), "type": type(e).__name__}
        except (TypeError, ValueError, KeyError) as e:
            return {"ok": False, "error": f"op {op!r}: {e}", "type": type(e).__name__}
        except Exception as e:       # a bug in an op must not take the control port down
            log.exception("control op %s failed", op)
            return {"ok": False, "error": f"op {op!r} failed: {type(e).__name__}: {e}", "type": "InternalError"}
        out = {"ok": True}
        out.update(res or {})
        return _jsonable(out)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.LimitOverrunError:
                    # oversized request: answer, then skip to the next newline
                    writer.write(json.dumps({"ok": False, "error": f"request longer than {MAX_REQUEST} bytes",
                                             "type": "BadRequest"}).encode() + b"\n")
                    await writer.drain()
                    while True:
                        try:
                            await reader.readuntil(b"\n")
                            break
                        except asyncio.LimitOverrunError as e:
                            await reader.readexactly(e.consumed)
                    continue
                except asyncio.IncompleteReadError:
                    return
                text = line.strip()
                if not text:
                    continue
                try:
                    req = json.loads(text.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    resp = {"ok": False, "error": f"bad JSON: {e}", "type": "BadRequest"}
                else:
                    resp = await self.handle(req)
                writer.write(json.dumps(resp).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def start(self, host: str, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._client, host, port, limit=MAX_REQUEST)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        await close_server(self.server, 2.0)


class LabControl:
    """Client of the control port. Thread-safe; one persistent connection, reconnects on error."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, timeout: float = 2.0):
        self.host, self.port, self.timeout = host, int(port), float(timeout)
        self._sock: socket.socket | None = None
        self._rbuf = b""
        self._lock = threading.Lock()

    @classmethod
    def from_ready_file(cls, path, timeout: float = 2.0) -> "LabControl":
        with open(path) as f:
            ready = json.load(f)
        return cls(ready.get("host", "127.0.0.1"), ready["ports"]["control"], timeout)

    def _connect(self) -> socket.socket:
        if self._sock is None:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except OSError as e:
                raise LabError(f"cannot reach the lab control port: {e}", where=f"{self.host}:{self.port}",
                               fix="is the lab running? check its ready file and log") from None
            self._rbuf = b""
        return self._sock

    def call(self, op: str, /, *, timeout: float | None = None, **args: Any) -> dict:
        """Run one control op. `timeout` (s) bounds the wait for this op's answer (default: the
        client's `timeout`); ops that wait for something slow (a station's CSMS connect) pass more."""
        if timeout is None:
            wait = self.timeout
        else:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                    or not math.isfinite(timeout) or timeout <= 0:
                raise LabError(f"control op {op!r}: timeout must be a positive number of seconds, got {timeout!r}",
                               where="LabControl.call")
            wait = float(timeout)
        req = json.dumps({"op": op, **args}).encode() + b"\n"
        with self._lock:
            for attempt in (1, 2):
                sock = self._connect()
                try:
                    sock.settimeout(wait)
                    sock.sendall(req)
                    while b"\n" not in self._rbuf:
                        chunk = sock.recv(65536)
                        if not chunk:
                            raise ConnectionError("lab closed the control connection")
                        self._rbuf += chunk
                    line, self._rbuf = self._rbuf.split(b"\n", 1)
                    break
                except socket.timeout:
                    self.close()
                    raise LabError(f"control op {op!r} got no answer within {wait:g} s",
                                   where=f"{self.host}:{self.port}", fix="check the lab log") from None
                except OSError:
                    self.close()
                    if attempt == 2:
                        raise LabError(f"control connection lost during op {op!r}",
                                       where=f"{self.host}:{self.port}", fix="is the lab still running?") from None
        resp = json.loads(line)
        if not resp.get("ok"):
            raise LabError(f"control op {op!r} failed: {resp.get('error')}", where=f"lab control {self.host}:{self.port}",
                           fix="see docs/virtual-lab.md for the ops and their arguments")
        return resp

    # convenience -----------------------------------------------------------------------------

    def ping(self) -> dict:
        return self.call("ping")

    def state(self) -> dict:
        return self.call("state")

    def measure(self, source: str = "analyzer") -> dict:
        return self.call("measure", source=source)

    def inject_fault(self, name: str, **params: Any) -> str:
        return self.call("fault", name=name, **params)["key"]

    def clear_faults(self, key: str | None = None) -> list[str]:
        return self.call("clear_faults", **({"key": key} if key else {}))["cleared"]

    def faults(self) -> dict:
        return self.call("faults")["faults"]

    def set_grid(self, freq_hz: float | None = None, voltage_v: float | None = None) -> dict:
        return self.call("set_grid", freq_hz=freq_hz, voltage_v=voltage_v)

    def grid_profile(self, points: list, mode: str = "step") -> dict:
        return self.call("grid_profile", points=points, mode=mode)

    def set_time_scale(self, time_scale: float) -> dict:
        return self.call("set_time_scale", time_scale=time_scale)

    def battery(self, soc: float | None = None, **params: Any) -> dict:
        return self.call("battery", **({"soc": soc} if soc is not None else {}), **params)

    def setpoint(self, p_w: float) -> None:
        self.call("setpoint", p_w=p_w)

    def contactor(self, closed: bool) -> None:
        self.call("contactor", closed=closed)

    def power_limits(self, charge_w: float, discharge_w: float) -> None:
        self.call("power_limits", charge_w=charge_w, discharge_w=discharge_w)

    def outputs_off(self) -> None:
        self.call("outputs_off")

    def advance(self, dt: float) -> float:
        """Manual-clock labs only (`--set lab.clock=manual`): move plant time by dt seconds."""
        return self.call("advance", dt=dt)["t"]

    def measurement(self, **params: Any) -> dict:
        """Set/read noise_rel, noise_abs, resolution, sample_rate_hz of the measurement paths."""
        return self.call("measurement", **params)["measurement"]

    def emulator(self, output_on: bool | None = None, clear_protection: bool = False, **settings: Any) -> dict:
        """Battery-emulator state behind the SCPI front-end (vendor signs), e.g. to restore it."""
        args = dict(settings, clear_protection=clear_protection)
        if output_on is not None:
            args["output_on"] = output_on
        return self.call("emulator", **args)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self) -> "LabControl":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
