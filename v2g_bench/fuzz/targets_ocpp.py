"""OCPP-J into the CSMS emulator (as a station would send it) and into the simulated station (as a
CSMS would send it), schema-aware: payloads are drawn from the OCPP JSON schemas the `ocpp` package
ships, then mutated at the JSON level (missing/extra keys, wrong types, huge values) and at the byte
level (broken JSON, wrong frame shapes, duplicate ids).

Why not hypothesis-jsonschema: 0.23.1 (the latest) calls conjecture's removed `many.more()` and
fails with AttributeError on Hypothesis 6.170; the OCPP schemas use a small subset of JSON Schema
(type, enum, required, $ref to definitions, min/max length/items/value), drawn by `schema_strategy`.
"""
from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path

from v2g_bench.fuzz.campaign import CRASH, HANG, OK, TYPED, ExamplePool, Target, TargetBroken, mutate


def schema_strategy(schema: dict, root: dict | None = None, depth: int = 0):
    """A Hypothesis strategy for the JSON Schema subset of the OCPP schemas."""
    from hypothesis import strategies as st
    root = root or schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return schema_strategy(root.get("definitions", {}).get(name, {}), root, depth + 1)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    t = schema.get("type")
    if depth > 12:
        return st.none()
    if t == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        req = {k: schema_strategy(v, root, depth + 1) for k, v in props.items() if k in required}
        opt = {k: schema_strategy(v, root, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(req, optional=opt)
    if t == "array":
        lo = int(schema.get("minItems", 0))
        hi = int(schema.get("maxItems", lo + 3))
        return st.lists(schema_strategy(schema.get("items", {}), root, depth + 1), min_size=lo,
                        max_size=min(hi, lo + 3))
    if t == "string":
        hi = int(schema.get("maxLength", 40))
        if schema.get("format") == "date-time":
            return st.datetimes().map(lambda d: d.isoformat() + "Z")
        return st.text(max_size=min(hi, 60))
    if t == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if t == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False)
    if t == "boolean":
        return st.booleans()
    return st.one_of(st.none(), st.integers(), st.text(max_size=5))


HOSTILE = (None, "", "x" * 3000, -1, 2 ** 64, -2 ** 63, 1e308, 0.5, True, [], {}, [None], {"a": {"b": {"c": 1}}},
           "2026-13-45T99:99:99Z", "\u0000", "\ud7ff\ue000")


def corrupt_json(node, rng: random.Random):
    """JSON-level mutation: drop/rename keys, swap values for hostile ones, deep nesting."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            r = rng.random()
            if r < 0.1:
                out[k] = rng.choice(HOSTILE)
            elif r < 0.13:
                out[k + "_"] = v
            elif r < 0.16:
                continue
            else:
                out[k] = corrupt_json(v, rng)
        if rng.random() < 0.05:
            out["unknownKey"] = rng.choice(HOSTILE)
        return out
    if isinstance(node, list):
        return [corrupt_json(x, rng) for x in node]
    return rng.choice(HOSTILE) if rng.random() < 0.15 else node


_POOL = ExamplePool()


def frames_from(actions: list[str], strategies: dict, rng: random.Random, n_gen: int, n_mut: int) -> list[str]:
    """OCPP-J CALL frames: generated payloads, JSON-level and byte-level mutants, odd frame shapes."""
    out = []
    for _ in range(n_gen):
        action = rng.choice(actions)
        payload = _POOL.draw(action, strategies[action], rng)
        uid = str(uuid.UUID(int=rng.getrandbits(128)))
        good = json.dumps([2, uid, action, payload])
        out.append(good)
        for _ in range(n_mut):
            r = rng.random()
            if r < 0.45:
                bad = corrupt_json(payload, rng)
                out.append(json.dumps([2, str(uuid.UUID(int=rng.getrandbits(128))), action, bad]))
            elif r < 0.8:
                out.append(mutate(good.encode(), rng).decode("utf-8", "replace"))
            else:
                out.append(rng.choice([
                    json.dumps([2, uid, action, payload]),                       # duplicate id
                    json.dumps([2, "x" * 40, action, payload]),                  # id too long
                    json.dumps([2, 7, action, payload]), json.dumps([5, uid, action]),
                    json.dumps([3, uid, payload]), json.dumps([4, uid, "GenericError", "", {}]),
                    json.dumps({"a": 1}), "[]", "[2]", "null", "[" * 2000 + "]" * 2000, "\"\"",
                    json.dumps([2, uid, "NoSuchAction", {}]), json.dumps([2, uid, action, payload, 1]),
                ]))
    return out


def _strategies(version: str, actions) -> dict:
    from v2g_bench.csms.validation import schemas_for
    s = schemas_for(version)
    out = {}
    for a in sorted(actions):
        if a in s.actions:
            try:
                out[a] = schema_strategy(s.schema(a, "Request"))
            except Exception:          # a schema this subset cannot draw: leave the action out
                pass
    return out


class CsmsTarget(Target):
    """Frames into the CSMS emulator over a real WebSocket, as a station sends them; after each
    batch a Heartbeat CALL must be answered (the CSMS keeps serving). Typed = CALLERROR answers or
    the connection closed by the CSMS (oversized frame, flood guard)."""

    name = "csms"
    hang_s = 10.0
    grace_s = 50.0
    late_batches = 0
    version = "2.0.1"

    def setup(self, workdir: Path) -> None:
        from v2g_bench.csms.directions import station_sends
        from v2g_bench.csms.server import CsmsOptions, CsmsServer
        from v2g_bench.harness.asyncrt import LoopThread

        opts = {"security_profile": 0, "retain_frames": False, "record_path": "/dev/null",   # millions of frames
                "ocpp_versions": [self.version]}
        if "flood_limit_per_s" in CsmsOptions.KNOWN:
            opts["flood_limit_per_s"] = 0          # the fuzzer floods on purpose: measure parsing, not the guard
        self.loop = LoopThread("fuzz-csms")
        self.srv = CsmsServer(CsmsOptions.from_dict(opts))
        self.loop.run(self.srv.start(), 10)
        self.strategies = _strategies(self.version, station_sends(self.version))
        self.actions = sorted(self.strategies)
        self.ws = None

    def _connect(self):
        from websockets.sync.client import connect
        self.ws = connect(self.srv.url("FUZZ-CS"), subprotocols=["ocpp" + self.version], open_timeout=self.hang_s,
                          max_size=2 ** 22, close_timeout=1)

    def batches(self, rng: random.Random):
        while True:
            yield frames_from(self.actions, self.strategies, rng, 8, 30)

    def run_batch(self, inputs):
        from websockets.exceptions import ConnectionClosed
        out = []
        errors = 0
        closed = 0
        for raw in inputs:
            if self.ws is None:
                try:
                    self._connect()
                except Exception as e:
                    raise TargetBroken(f"CSMS refuses connections: {e!r}") from None
            try:
                self.ws.send(raw)
            except ConnectionClosed:
                self.ws = None
                closed += 1
        # sync: a Heartbeat CALL; count CALLERRORs up to its answer
        if self.ws is None:
            self._connect()
        sync_id = f"sync-{time.monotonic_ns()}"
        try:
            self.ws.send(json.dumps([2, sync_id, "Heartbeat", {}]))
            t0 = time.monotonic()
            # late (a niced fuzzer on a loaded machine) is not hung: wait the grace period out
            deadline = t0 + self.hang_s + self.grace_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                msg = self.ws.recv(timeout=left)
                if sync_id in msg:
                    break
                if msg.startswith("[4"):
                    errors += 1
            if time.monotonic() - t0 > self.hang_s:
                self.late_batches += 1
        except TimeoutError:
            return [(OK, None)] * (len(inputs) - 1) + [
                (HANG, f"Heartbeat after the batch unanswered for {self.hang_s + self.grace_s:g} s; batch:\n"
                       + "\n".join(inputs))]
        except ConnectionClosed:
            self.ws = None
            closed += 1
            return self._probe(inputs, errors + closed)
        self.srv.violations.clear()      # a test reads them; the campaign only counts the answers
        typed = min(len(inputs), errors + closed)
        out = [(TYPED, None)] * typed + [(OK, None)] * (len(inputs) - typed)
        if self.srv.handlers_failed:
            out[-1] = (CRASH, "CSMS handler failed: " + "; ".join(self.srv.handlers_failed[:3]))
            self.srv.handlers_failed.clear()
        return out

    def _probe(self, inputs, typed):
        try:
            self._connect()
            self.ws.send(json.dumps([2, "probe", "Heartbeat", {}]))
            if "probe" not in self.ws.recv(timeout=self.hang_s):
                return [(CRASH, "bad probe answer")] * 1 + [(OK, None)] * (len(inputs) - 1)
        except Exception as e:
            return [(CRASH, f"CSMS unreachable after the batch: {e!r}")] + [(OK, None)] * (len(inputs) - 1)
        typed = min(len(inputs), typed)
        return [(TYPED, None)] * typed + [(OK, None)] * (len(inputs) - typed)

    def teardown(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.loop.run(self.srv.stop(), 10)
        self.loop.stop()


class StationTarget(Target):
    """Frames into the simulated charging station (lab process) from a CSMS it is connected to:
    CSMS-to-station CALLs drawn from the schemas and their mutants. After each batch the station
    must answer a GetVariables CALL. Typed = CALLERROR answers."""

    name = "station"
    hang_s = 10.0
    version = "2.0.1"

    def setup(self, workdir: Path) -> None:
        import psutil

        from v2g_bench.csms.directions import csms_sends
        from v2g_bench.csms.server import CsmsOptions, CsmsServer
        from v2g_bench.csms.validation import schemas_for
        from v2g_bench.fuzz.targets_lab import shared_lab
        from v2g_bench.harness.asyncrt import LoopThread

        self.lab = shared_lab(workdir)
        self.process = psutil.Process(self.lab.pid)
        opts = {"security_profile": 0, "retain_frames": False, "record_path": "/dev/null",
                "ocpp_versions": [self.version], "response_timeout_s": self.hang_s}
        if "flood_limit_per_s" in CsmsOptions.KNOWN:
            opts["flood_limit_per_s"] = 0
        self.loop = LoopThread("fuzz-station-csms")
        self.srv = CsmsServer(CsmsOptions.from_dict(opts))
        self.loop.run(self.srv.start(), 10)
        self.callerrors = 0

        def count(frame):
            if frame.direction == "in" and frame.msg_type == 4:
                self.callerrors += 1
        self.srv.recorder.listeners.append(count)
        self.ctl = self.lab.control(timeout=30)
        self._station_connect()
        # Reset reboots the station on purpose (closes 1000 'reset', reconnects after its OCPP retry
        # back-off, tens of seconds): not an input whose effect the per-batch probe can judge
        actions = csms_sends(self.version, schemas_for(self.version).actions) - {"Reset"}
        self.strategies = _strategies(self.version, actions)
        self.actions = sorted(self.strategies)

    def _station_connect(self) -> None:
        r = self.ctl.call("station.connect", url=self.srv.url(), security_profile=0, ocpp_version=self.version)
        if not r.get("connected"):
            raise TargetBroken(f"the lab station did not connect: {r}")
        self.sid = next(iter(self.srv.sessions))

    def batches(self, rng: random.Random):
        while True:
            yield frames_from(self.actions, self.strategies, rng, 4, 20)

    def _session(self):
        s = self.srv.sessions.get(self.sid)
        if s is None or s.closed.is_set():
            try:
                self.loop.run(self.srv.wait_until(lambda: (x := self.srv.sessions.get(self.sid)) is not None
                                                  and not x.closed.is_set(), self.hang_s * 3), self.hang_s * 3 + 5)
            except Exception:
                self._station_connect()
            s = self.srv.sessions.get(self.sid)
        return s

    def run_batch(self, inputs):
        if not self.lab.alive():
            raise TargetBroken(f"the lab process died:\n{self.lab.log_tail(15)}")
        session = self._session()
        self.callerrors = 0
        for raw in inputs:
            try:
                msg = json.loads(raw)
                if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str):
                    session.raw_ids.add(msg[1])       # answers to our raw frames are expected
            except (ValueError, RecursionError):
                pass
            try:
                self.loop.run(session.send(raw), self.hang_s)
            except Exception:        # the station stopped reading or went away: the probe judges it
                break
        probe = {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}
        try:
            self.loop.run(session.call("GetVariables", probe, timeout=self.hang_s), self.hang_s + 5)
        except Exception as e:
            if not self.lab.alive():
                raise TargetBroken(f"the lab process died:\n{self.lab.log_tail(15)}") from None
            try:   # the station may have rebooted (a fuzzed Reset) or closed on garbage: it must come back
                session = self._session()
                self.loop.run(session.call("GetVariables", probe, timeout=self.hang_s), self.hang_s + 5)
            except Exception as e2:
                return [(OK, None)] * (len(inputs) - 1) + [(HANG, f"station silent after the batch: {e!r} / {e2!r}")]
        self.srv.violations.clear()
        typed = min(self.callerrors, len(inputs))
        return [(TYPED, None)] * typed + [(OK, None)] * (len(inputs) - typed)

    def teardown(self) -> None:
        try:
            self.ctl.call("station.disconnect")
        except Exception:
            pass
        self.loop.run(self.srv.stop(), 10)
        self.loop.stop()
