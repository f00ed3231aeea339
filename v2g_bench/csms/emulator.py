"""CSMS emulator role driver: the OCPP back-end a charger under test connects to.

Synchronous test API over the asyncio core (`server.CsmsServer`) running on a `LoopThread`;
every call takes a timeout. A frame from the station that breaks OCPP-J or the schemas is a
violation: the next API call raises `Nonconformance` showing the frame (unless the test took it
with `take_violations()`), and `assert_conformant()` checks at the end.
"""
from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Callable, Iterable

from v2g_bench.harness.asyncrt import LoopThread
from v2g_bench.errors import BenchError, CaseDefinitionError, Nonconformance
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver
from v2g_bench.csms import payloads as P
from v2g_bench.csms.recording import CALL, CALLERROR, CALLRESULT, Frame, FrameRecorder
from v2g_bench.csms.server import (NO_ANSWER, CallErrorReceived, CsmsOptions, CsmsServer, OcppCallError, Override,
                     StationSession, Violation)

__all__ = ["CSMSEmulator", "NO_ANSWER", "OcppCallError", "CallErrorReceived", "InvalidFrameOutcome"]

INVALID_FRAME_KINDS = ("malformed_json", "not_an_array", "unknown_message_type", "unknown_action", "wrong_type",
                       "missing_field", "duplicate_id", "oversized", "binary")


@dataclasses.dataclass
class BenchFault:
    """A cause on the bench's side for a station that cannot reach the CSMS (see CSMSEmulator.bench_fault)."""

    reason: str
    t0: float
    t1: float | None = None            # None: still active

    def end(self) -> None:
        if self.t1 is None:
            self.t1 = time.monotonic()

    def __enter__(self) -> "BenchFault":
        return self

    def __exit__(self, *exc) -> None:
        self.end()


@dataclasses.dataclass
class InvalidFrameOutcome:
    """What the station did with a deliberately invalid frame."""

    kind: str
    sent: str
    answers: list[Frame]
    connection_closed: bool
    close_detail: str = ""

    @property
    def error_codes(self) -> list[str | None]:
        return [f.error_code for f in self.answers if f.msg_type == CALLERROR]

    def report(self) -> str:
        ans = "; ".join(f"{f.kind} {f.error_code or ''} {f.raw[:120]}" for f in self.answers) or "no answer"
        closed = f"; connection closed ({self.close_detail})" if self.connection_closed else ""
        return f"{self.kind}: sent {self.sent[:120]!r} -> {ans}{closed}"


class CSMSEmulator(RoleDriver):
    roles = ("csms",)
    transport = "ocpp"
    description = "CSMS emulator: OCPP 2.0.1/2.1 back-end over ws/wss, security profiles 1-3"

    def __init__(self, options: dict | CsmsOptions | None = None, *, evidence=None, name: str = "csms",
                 pki_dir: str | None = None):
        self.name = name
        self.options = options if isinstance(options, CsmsOptions) else CsmsOptions.from_dict(options or {})
        self.evidence = evidence
        self.pki = None
        self._pki_dir = pki_dir
        self.bench_faults: list[BenchFault] = []
        self._clock0 = (time.time(), time.monotonic())      # the bench's wall and monotonic clocks at start
        self._consumed: set[int] = set()
        self._violations_seen = 0
        self._loop: LoopThread | None = None
        self.server: CsmsServer | None = None

    # -- RoleDriver ------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        try:
            return CsmsOptions.from_dict(cfg.options).problems()
        except BenchError as e:
            return getattr(e, "errors", None) or [str(e)]

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext) -> "CSMSEmulator":
        ev = ctx.evidence if ctx is not None else None
        inst = cls(cfg.options, evidence=ev, name=cfg.role)
        inst.start()
        return inst

    def identify(self) -> str:
        o = self.options
        return (f"v2g-bench CSMS emulator at {self.url} (security profile {o.security_profile}, "
                f"OCPP {'/'.join(o.ocpp_versions)})")

    def safe_state(self) -> None:
        """A CSMS drives no power; its safe state is: no per-test overrides left active."""
        if self.server is not None:
            self.server.overrides.clear()

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            if self.server is not None:
                self._write_summary()
                self._loop.run(self.server.stop(), timeout=10)
        finally:
            self._loop.stop()
            self._loop = None

    # -- start -----------------------------------------------------------------------------
    def start(self) -> "CSMSEmulator":
        o = self.options
        record_path = o.record_path
        if record_path is None:
            ev = self.evidence
            if ev is None:
                try:
                    from v2g_bench.harness.evidence import Evidence
                    ev = Evidence.current()
                except ImportError:
                    ev = None
            self.evidence = ev
            if ev is not None:
                record_path = str(ev.path("ocpp-frames.jsonl"))
        self.record_path = record_path
        ssl_ctx = None
        if o.security_profile in (2, 3):
            from v2g_bench.csms.pki import TestPKI, server_ssl_context
            if o.tls_cert:
                if o.security_profile == 3 and not o.tls_client_ca:
                    raise BenchError("security profile 3 needs tls_client_ca (the CA of the station certificates)",
                                     where="roles.csms.tls_client_ca")
                ssl_ctx = server_ssl_context(o.tls_cert, o.tls_key, o.tls_client_ca if o.security_profile == 3 else None)
            else:
                self.pki = TestPKI.create(self._pki_dir)
                ssl_ctx = self.pki.server_context(require_client_cert=o.security_profile == 3)
        self._clock0 = (time.time(), time.monotonic())
        self._loop = LoopThread(name=f"csms-{self.name}")
        recorder = FrameRecorder(record_path, retain=o.retain_frames)
        try:
            self.server = self._loop.run(self._make_server(recorder, ssl_ctx), timeout=10)
        except BaseException:
            self._loop.stop()
            self._loop = None
            raise
        return self

    async def _make_server(self, recorder, ssl_ctx) -> CsmsServer:
        srv = CsmsServer(self.options, recorder=recorder, ssl_context=ssl_ctx, pki=self.pki)
        await srv.start()
        return srv

    @property
    def url(self) -> str:
        return self.server.url()

    def url_for(self, station_id: str) -> str:
        return self.server.url(station_id)

    @property
    def port(self) -> int:
        return self.server.port

    # -- violations ------------------------------------------------------------------------
    @property
    def violations(self) -> list[Violation]:
        return list(self.server.violations)

    def take_violations(self) -> list[Violation]:
        """The violations since the last take (the test expected them: they no longer fail it)."""
        new = self.server.violations[self._violations_seen:]
        self._violations_seen = len(self.server.violations)
        return list(new)

    def assert_conformant(self) -> None:
        new = self.server.violations[self._violations_seen:]
        if new:
            self._violations_seen = len(self.server.violations)
            raise Nonconformance(f"{len(new)} OCPP frame(s) from the station broke OCPP-J / the "
                                 f"OCPP JSON schema:\n  " + "\n  ".join(map(str, new)))

    # -- the bench's own faults (a station kept away by the bench is no nonconformance) ---------------
    def bench_fault(self, reason: str) -> BenchFault:
        """Declare that the bench, not the station, keeps the station from the CSMS from now on (it cut the
        station's network, switched its supply off, ...): until `.end()` (or the end of a `with` block),
        a wait for the station that fails is a BenchError naming `reason`, never a Nonconformance."""
        f = BenchFault(str(reason), time.monotonic())
        self.bench_faults.append(f)
        return f

    def provisioned(self, station_id: str, *, password: str | None = None) -> None:
        """What the bench gave the station to log in with: if the CSMS refuses exactly that, its own
        configuration disagrees with the bench's, and the refusal is a bench error."""
        if password is not None:
            self.server.provisioned[station_id] = password

    def _not_the_station(self, t0: float, station_id: str | None = None, *, any_time: bool = False) -> list[str]:
        """Bench-side causes that overlap the wait that began at t0."""
        causes = [f"{f.reason}" for f in self.bench_faults if f.t1 is None or f.t1 >= t0]
        causes += [f"connection refused for a bench reason: {e.detail}" for e in self.server.events
                   if e.kind == "rejected" and e.side == "bench" and (any_time or e.t >= t0)
                   and (station_id is None or e.station in (None, station_id))]
        own = self.server.own_tls_problems
        n = self.server.abandoned_tls_handshakes(0.0 if any_time else t0)
        if own and n:
            causes.append(f"{n} TLS handshake(s) abandoned by the station, which rightly refuses the CSMS's own "
                          f"certificate: {'; '.join(own)}")
        return causes

    def _failure(self, message: str, t0: float, station_id: str | None = None, *, any_time: bool = False,
                 req: str | tuple[str, ...] = ()):
        """The exception for a failed wait: BenchError when the bench kept the station away, else Nonconformance."""
        causes = self._not_the_station(t0, station_id, any_time=any_time)
        if causes:
            return BenchError(f"{message}; not the charger's fault: " + "; ".join(dict.fromkeys(causes)),
                              where=self.identify(),
                              fix="restore what the bench broke (network, supply, its own credentials/certificate)")
        return Nonconformance(message, req=req)

    # -- reboots and clocks ------------------------------------------------------------------
    def assert_no_reboot(self, since: float, *, station: str | None = None, req: str | tuple[str, ...] = ()) -> None:
        """The station did not boot again after `since` (time.monotonic()) unless the CSMS asked (Reset) or the
        bench declared a cause (`bench_fault`, e.g. it cycled the station's supply: then a BenchError)."""
        frames = [f for f in self.server.recorder.frames if f.t >= since and f.msg_type == CALL
                  and (station is None or f.station == station)]
        boots = [f for f in frames if f.direction == "in" and f.action == "BootNotification"]
        if not boots or any(f.direction == "out" and f.action == "Reset" for f in frames):
            return
        reasons = ", ".join(str((f.payload or {}).get("reason")) for f in boots)
        raise self._failure(f"the station rebooted during the case without being asked (BootNotification reason "
                            f"{reasons}, {boots[0].t - since:.1f} s into the check)", since, station, req=req)

    def bench_clock_step_s(self, frame: Frame) -> float:
        """How far the bench's wall clock moved against its monotonic clock between the CSMS's start and the
        moment `frame` was recorded (0 on a steady clock; NTP slews stay far below a second)."""
        import datetime as dt
        wall = dt.datetime.fromisoformat(frame.wall).timestamp()
        return wall - (self._clock0[0] + (frame.t - self._clock0[1]))

    def judge_station_clock(self, frame: Frame, *, tolerance_s: float = 5.0, field: str = "timestamp",
                            req: str | tuple[str, ...] = ()) -> float:
        """The station's `field` (an OCPP dateTime) agrees with the bench's clock at receipt within tolerance_s;
        returns the offset (s, station - bench). A step of the BENCH's wall clock makes it Inconclusive (the
        comparison means nothing), a station clock off by more than the tolerance is a Nonconformance."""
        import datetime as dt

        from v2g_bench.errors import Inconclusive
        step = self.bench_clock_step_s(frame)
        if abs(step) > 1.0:
            raise Inconclusive(f"the bench's wall clock stepped by {step:+.1f} s during the case (against its monotonic "
                               f"clock): the station's timestamps cannot be judged against it; fix the bench's time "
                               f"sync and repeat")
        try:
            ts = dt.datetime.fromisoformat(str(frame.payload[field]))
        except (KeyError, TypeError, ValueError) as e:
            raise Nonconformance(f"{frame.action} has no usable {field} ({e})", req=req) from None
        offset = ts.timestamp() - dt.datetime.fromisoformat(frame.wall).timestamp()
        if abs(offset) > tolerance_s:
            raise Nonconformance(f"the station's clock is {offset:+.1f} s off the bench's ({frame.action}.{field} "
                                 f"{frame.payload[field]}, received {frame.wall}; tolerance {tolerance_s:g} s)", req=req)
        return offset

    # -- stations and waiting ---------------------------------------------------------------
    def _run(self, coro, timeout: float):
        return self._loop.run(coro, timeout=timeout + 2)

    def _wait(self, predicate: Callable[[], Any], timeout: float):
        try:
            return self._run(self.server.wait_until(predicate, timeout), timeout)
        except TimeoutError:
            return None

    def stations(self) -> list[str]:
        return [sid for sid, s in self.server.sessions.items() if not s.closed.is_set()]

    def session(self, station_id: str | None = None) -> StationSession:
        sid = station_id or self._only_station()
        s = self.server.sessions.get(sid)
        if s is None or s.closed.is_set():
            raise BenchError(f"station {sid!r} is not connected", where=self.identify(),
                             fix="wait_for_station() first; connected: " + (", ".join(self.stations()) or "none"))
        return s

    def _only_station(self) -> str:
        live = self.stations()
        if len(live) == 1:
            return live[0]
        raise BenchError(f"{len(live)} stations are connected ({', '.join(live) or 'none'}); name one",
                         where=self.identify())

    def wait_for_station(self, station_id: str | None = None, timeout: float = 10.0) -> StationSession:
        def ready():
            for sid, s in self.server.sessions.items():
                if (station_id is None or sid == station_id) and not s.closed.is_set():
                    return s
            return None
        t0 = time.monotonic()
        s = self._wait(ready, timeout)
        self.assert_conformant()
        if s is None:
            refused = [f"{e.station}: {e.detail}" for e in self.server.events if e.kind == "rejected"]
            n = self.server.abandoned_tls_handshakes()
            if n:
                refused.append(f"{n} TLS handshake(s) abandoned by the station")
            raise self._failure(f"station {station_id or '(any)'} did not connect within {timeout:g} s"
                                + (f"; refused attempts: {refused}" if refused else "; no connection attempt seen"),
                                t0, station_id, any_time=True)
        return s

    def wait_for_disconnect(self, station_id: str, timeout: float = 10.0) -> str:
        # The server registers a session when its handler starts, which can be after a fast client
        # has already dropped the connection: wait for the session to appear, within the same timeout.
        deadline = time.monotonic() + timeout
        if self._wait(lambda: station_id in self.server.sessions, timeout) is None:
            return "not connected"
        s = self.server.sessions[station_id]
        if self._wait(lambda: s.closed.is_set(), max(0.0, deadline - time.monotonic())) is None:
            raise self._failure(f"station {station_id} did not disconnect within {timeout:g} s",
                                deadline - timeout, station_id)
        return s.close_detail

    @property
    def connection_events(self):
        return list(self.server.events)

    @property
    def frames(self) -> list[Frame]:
        return list(self.server.recorder.frames)

    def expect(self, action: str, where: Callable[[Frame], bool] | None = None, timeout: float = 10.0, *,
               station: str | None = None) -> Frame:
        """The first not-yet-expected CALL `action` from the station that satisfies `where`.

        Looks at frames already received too (no race with fast stations); each frame is returned
        by at most one expect(). Raises Nonconformance listing what did arrive on timeout.
        """
        def find():
            for f in self.server.recorder.frames:
                if (f.direction == "in" and f.msg_type == CALL and f.action == action and f.seq not in self._consumed
                        and (station is None or f.station == station) and not f.problems):
                    try:
                        ok = where is None or where(f)
                    except Exception as e:  # noqa: BLE001 - the test's predicate is wrong, not the station
                        raise CaseDefinitionError(
                            f"the where= condition of expect({action!r}) raised {type(e).__name__}: {e} on frame "
                            f"{json.dumps(f.payload)[:200]}", where="csms.expect",
                            fix="fix the predicate (a frame that lacks an optional field: use .get())") from e
                    if ok:
                        return f
            return None
        t0 = time.monotonic()
        f = self._wait(find, timeout)
        self.assert_conformant()
        if f is None:
            seen = [f"{x.action}({json.dumps(x.payload)[:100]})" for x in self.server.recorder.frames
                    if x.direction == "in" and x.msg_type == CALL and x.action == action]
            raise self._failure(f"no {action} {'matching the condition ' if where else ''}from "
                                f"{station or 'any station'} within {timeout:g} s; {action} frames seen: "
                                f"{seen[-5:] or 'none'}", t0, station)
        self._consumed.add(f.seq)
        return f

    def expect_all(self, action: str, count: int, where=None, timeout: float = 10.0, station=None) -> list[Frame]:
        deadline = time.monotonic() + timeout
        return [self.expect(action, where, max(0.0, deadline - time.monotonic()), station=station) for _ in range(count)]

    # -- overrides -------------------------------------------------------------------------
    def respond(self, action: str, response: Any, *, station: str | None = None, times: int | None = None) -> Override:
        """Answer `action` with `response` (payload dict, callable(frame) -> dict, OcppCallError or
        NO_ANSWER) instead of the default, `times` times or until clear_overrides()."""
        return self.server.override(action, response, station=station, times=times)

    def clear_overrides(self) -> None:
        self.server.overrides.clear()

    # -- CALLs to the station ---------------------------------------------------------------
    def call_frame(self, action: str, payload: Any, *, station: str | None = None, timeout: float | None = None,
                   validate: bool = True) -> Frame:
        s = self.session(station)
        t = self.options.response_timeout_s if timeout is None else timeout
        t0 = time.monotonic()
        try:
            frame = self._run(s.call(action, payload, timeout=t, validate=validate), t)
        except ConnectionError as e:
            raise self._failure(f"{action}: {e} before answering it (OCPP-J 4.1: every CALL is answered by a "
                                f"CALLRESULT or CALLERROR)", t0, s.id) from None
        except Nonconformance as e:            # no answer in time
            if self._not_the_station(t0, s.id):
                raise self._failure(str(e), t0, s.id) from None
            raise
        self.assert_conformant()
        return frame

    def call(self, action: str, payload: Any, *, station: str | None = None, timeout: float | None = None) -> dict:
        """Send a CALL and return the response payload; CallErrorReceived on CALLERROR."""
        if dataclasses.is_dataclass(payload):
            action = action or type(payload).__name__
        f = self.call_frame(action, payload, station=station, timeout=timeout)
        if f.msg_type == CALLERROR:
            p = f.payload
            raise CallErrorReceived(f.station, action, p["errorCode"], p["errorDescription"], p["errorDetails"])
        return f.payload

    def version(self, station: str | None = None) -> str:
        return self.session(station).version

    # Commands (K: smart charging, F: remote control, B: provisioning, G: availability)
    def charging_profile(self, profile_id: int, purpose: str, periods: Iterable[tuple[int, float]], *,
                         station: str | None = None, **kw) -> dict:
        """Build a profile in the station's OCPP version (power in W, + = charge, - = discharge)."""
        return P.charging_profile(profile_id, purpose, list(periods), version=self.version(station), **kw)

    def set_charging_profile(self, evse_id: int, profile: dict, **kw) -> dict:
        return self.call("SetChargingProfile", {"evseId": evse_id, "chargingProfile": profile}, **kw)

    def clear_charging_profile(self, profile_id: int | None = None, *, evse_id: int | None = None,
                               purpose: str | None = None, stack_level: int | None = None, **kw) -> dict:
        payload: dict[str, Any] = {}
        if profile_id is not None:
            payload["chargingProfileId"] = profile_id
        criteria = {k: v for k, v in (("evseId", evse_id), ("chargingProfilePurpose", purpose),
                                      ("stackLevel", stack_level)) if v is not None}
        if criteria:
            payload["chargingProfileCriteria"] = criteria
        return self.call("ClearChargingProfile", payload, **kw)

    def get_composite_schedule(self, evse_id: int, duration_s: int, unit: str | None = "W", **kw) -> dict:
        payload: dict[str, Any] = {"evseId": evse_id, "duration": int(duration_s)}
        if unit:
            payload["chargingRateUnit"] = unit
        return self.call("GetCompositeSchedule", payload, **kw)

    def get_charging_profiles(self, request_id: int, *, evse_id: int | None = None, purpose: str | None = None,
                              **kw) -> dict:
        crit: dict[str, Any] = {}
        if purpose:
            crit["chargingProfilePurpose"] = purpose
        payload: dict[str, Any] = {"requestId": request_id, "chargingProfile": crit}
        if evse_id is not None:
            payload["evseId"] = evse_id
        return self.call("GetChargingProfiles", payload, **kw)

    def request_start_transaction(self, remote_start_id: int, id_token: str = "BENCH-TOKEN", *,
                                  evse_id: int | None = 1, token_type: str = "Central",
                                  charging_profile: dict | None = None, **kw) -> dict:
        payload: dict[str, Any] = {"remoteStartId": remote_start_id, "idToken": {"idToken": id_token, "type": token_type}}
        if evse_id is not None:
            payload["evseId"] = evse_id
        if charging_profile is not None:
            payload["chargingProfile"] = charging_profile
        return self.call("RequestStartTransaction", payload, **kw)

    def request_stop_transaction(self, transaction_id: str, **kw) -> dict:
        return self.call("RequestStopTransaction", {"transactionId": transaction_id}, **kw)

    def trigger_message(self, requested: str, *, evse_id: int | None = None, connector_id: int | None = None,
                        **kw) -> dict:
        payload: dict[str, Any] = {"requestedMessage": requested}
        if evse_id is not None:
            payload["evse"] = {"id": evse_id, **({"connectorId": connector_id} if connector_id else {})}
        return self.call("TriggerMessage", payload, **kw)

    def get_variables(self, items: Iterable[tuple[str, str]], **kw) -> dict:
        """items: (component name, variable name) pairs."""
        return self.call("GetVariables", {"getVariableData": [
            {"component": {"name": c}, "variable": {"name": v}} for c, v in items]}, **kw)

    def set_variables(self, items: Iterable[tuple[str, str, str]], **kw) -> dict:
        """items: (component name, variable name, value) triples."""
        return self.call("SetVariables", {"setVariableData": [
            {"component": {"name": c}, "variable": {"name": v}, "attributeValue": str(val)} for c, v, val in items]}, **kw)

    def reset(self, kind: str = "OnIdle", *, evse_id: int | None = None, **kw) -> dict:
        payload: dict[str, Any] = {"type": kind}
        if evse_id is not None:
            payload["evseId"] = evse_id
        return self.call("Reset", payload, **kw)

    def change_availability(self, status: str, *, evse_id: int | None = None, connector_id: int | None = None,
                            **kw) -> dict:
        payload: dict[str, Any] = {"operationalStatus": status}
        if evse_id is not None:
            payload["evse"] = {"id": evse_id, **({"connectorId": connector_id} if connector_id else {})}
        return self.call("ChangeAvailability", payload, **kw)

    # -- deliberately invalid frames ---------------------------------------------------------
    def send_raw(self, text: str | bytes, *, station: str | None = None) -> Frame:
        s = self.session(station)

        async def go():
            frame = await s.send(text if isinstance(text, str) else text.decode("latin-1"))
            if isinstance(text, bytes):
                await s.ws.send(text)          # the recorded text above is for humans; send bytes as binary
            return frame
        if isinstance(text, bytes):
            async def go_binary():
                frame = s.server.recorder.record(station=s.id, direction="out", raw=repr(text), note="binary frame")
                s.server.recorder.write(frame)
                await s.ws.send(text)
                return frame
            return self._run(go_binary(), 5)
        return self._run(go(), 5)

    def send_invalid(self, kind: str, *, station: str | None = None, timeout: float = 5.0) -> InvalidFrameOutcome:
        """Send one kind of invalid frame and report what the station did (answers, close)."""
        if kind not in INVALID_FRAME_KINDS:
            raise BenchError(f"unknown invalid-frame kind {kind!r}", fix=f"one of {', '.join(INVALID_FRAME_KINDS)}")
        s = self.session(station)
        uid = f"bad-{kind}-{int(time.monotonic() * 1000) % 10**9}"
        frames: list[str | bytes] = []
        if kind == "malformed_json":
            frames = [f'[2,"{uid}","Heartbeat",{{']
        elif kind == "not_an_array":
            frames = [json.dumps({"id": uid, "action": "Reset"})]
        elif kind == "unknown_message_type":
            frames = [json.dumps([7, uid, "Reset", {"type": "OnIdle"}])]
        elif kind == "unknown_action":
            frames = [json.dumps([2, uid, "SelfDestruct", {}])]
        elif kind == "wrong_type":
            frames = [json.dumps([2, uid, "GetCompositeSchedule", {"evseId": "one", "duration": 60}])]
        elif kind == "missing_field":
            frames = [json.dumps([2, uid, "SetChargingProfile", {"evseId": 1}])]
        elif kind == "duplicate_id":
            req = json.dumps([2, uid, "GetVariables", {"getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}])
            frames = [req, req]
        elif kind == "oversized":
            frames = [json.dumps([2, uid, "DataTransfer", {"vendorId": "v2g-bench", "data": "x" * (4 * 1024 * 1024)}])]
        elif kind == "binary":
            frames = [json.dumps([2, uid, "Heartbeat", {}]).encode()]
        start_seq = self.server.recorder.count
        s.raw_ids.add(uid)
        for fr in frames:
            self.send_raw(fr, station=s.id)
        want = 2 if kind == "duplicate_id" else 1

        def answers():
            return [f for f in self.server.recorder.frames if f.seq > start_seq and f.direction == "in"
                    and f.station == s.id and f.msg_type in (CALLRESULT, CALLERROR) and f.unique_id in (uid, "-1")]
        self._wait(lambda: len(answers()) >= want or s.closed.is_set(), timeout)
        got = answers()
        # answers to our invalid frames are expected, not violations of the station
        return InvalidFrameOutcome(kind, frames[0] if isinstance(frames[0], str) else repr(frames[0]), got,
                                   s.closed.is_set(), s.close_detail)

    def disconnect(self, station: str | None = None, code: int = 1000, reason: str = "closed by the test") -> None:
        s = self.session(station)
        self._run(s.ws.close(code, reason), 5)

    # -- evidence --------------------------------------------------------------------------
    def summary(self) -> dict:
        srv = self.server
        return {"url": srv.url(), "security_profile": self.options.security_profile,
                "frames": srv.recorder.count, "record_file": self.record_path,
                "connections": [dataclasses.asdict(e) for e in srv.events],
                "violations": [{"problems": v.problems, "frame": v.frame.to_record()} for v in srv.violations],
                "handler_failures": srv.handlers_failed}

    def _write_summary(self) -> None:
        if self.evidence is not None:
            try:
                self.evidence.attach_json("ocpp-summary.json", self.summary())
            except Exception:   # evidence must never turn a close into an error
                pass
