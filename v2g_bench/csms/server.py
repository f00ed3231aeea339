"""The asyncio core of the CSMS emulator: a websockets server speaking OCPP-J 2.0.1 / 2.1.

Why not the library's `ChargePoint` dispatch for the CSMS side: a test instrument must see and
answer EVERY frame, including the ones the library silently drops (malformed JSON, unknown
message types, duplicate ids are all only logged by `ocpp` 2.1.0), must answer with per-test
overrides, and must send deliberately invalid frames. So frames are parsed, validated (our own
compiled schemas), recorded and answered here; the library supplies the schemas, the typed payload
dataclasses (accepted by `call`) and the error vocabulary. The simulated station
(`lab_station.py`) uses the library's ChargePoint as a real station would.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import ipaddress
import json
import logging
import re
import ssl
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Callable

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request

from v2g_bench.errors import BenchError, Nonconformance
from v2g_bench.csms import compat
from v2g_bench.csms.payloads import dumps, minimal_payload
from v2g_bench.csms.recording import CALL, CALLERROR, CALLRESULT, Frame, FrameRecorder, utc_now_iso
from v2g_bench.csms.directions import station_sends
from v2g_bench.csms.validation import SUBPROTOCOLS, VERSION_OF_SUBPROTOCOL, schemas_for
from v2g_bench.harness.asyncrt import close_server

log = logging.getLogger("v2g_bench.csms")
compat.install()

MAX_MESSAGE_ID_LEN = 36          # OCPP-J: messageId is a string of at most 36 characters
MIN_PASSWORD_LEN = 16            # OCPP 2.x A00.FR.205: BasicAuthPassword has 16..40(..64) characters
PASSWORD_STRING = re.compile(r"[a-zA-Z0-9*\-_=:+|@.]*")   # Part 2 §2.1.4 passwordString characters
MAX_VIOLATIONS_KEPT = 10_000     # per server; more are counted, not kept
FLOOD_BACKLOG = 8                # frames queued behind the one being read: a station not waiting for answers
NO_ANSWER = object()             # override value: swallow the CALL (tests the station's timeout)


class CallErrorReceived(BenchError):
    """The station answered a CALL with a CALLERROR."""

    def __init__(self, station: str, action: str, code: str, description: str, details: Any):
        self.station, self.action, self.code, self.description, self.details = station, action, code, description, details
        super().__init__(f"{action} answered with CALLERROR {code}: {description!r} {details or ''}",
                         where=f"station {station}")


class OcppCallError(Exception):
    """Raise from an override (or return one) to answer a CALL with a CALLERROR."""

    def __init__(self, code: str, description: str = "", details: dict | None = None):
        self.code, self.description, self.details = code, description, details or {}
        super().__init__(f"{code}: {description}")


@dataclass
class Violation:
    """A frame from a station that breaks OCPP-J or the schema: fails the test unless acknowledged."""

    frame: Frame
    problems: list[str]

    def __str__(self) -> str:
        return f"{'; '.join(self.problems)}\n    frame: {self.frame.short()}"


@dataclass
class ConnectionEvent:
    """An accepted, refused or closed connection (what a test asserts on for security profiles)."""

    t: float
    kind: str                 # "accepted" | "rejected" | "closed" | "flooding"
    station: str | None
    detail: str
    status: int | None = None
    subprotocol: str | None = None
    side: str = "station"     # for "rejected": "bench" when the bench's own configuration caused the refusal


@dataclass
class Override:
    action: str
    response: Any             # dict | callable(frame) -> dict | OcppCallError | NO_ANSWER
    station: str | None = None
    times: int | None = None  # None = until cleared


@dataclass
class CsmsOptions:
    """`[roles.csms]` options of a bench profile (documented in docs/csms-emulator.md)."""

    host: str = "127.0.0.1"
    port: int = 0                                # 0 = the OS picks
    security_profile: int = 1                    # 0 (bench-only: no auth), 1, 2, 3
    ocpp_versions: tuple[str, ...] = ("2.1", "2.0.1")   # preference order
    stations: dict[str, str] = field(default_factory=dict)   # id -> Basic-auth password; {} = any id
    password: str | None = None                  # password for any station id (when `stations` is empty)
    tls_cert: str | None = None                  # server certificate (PEM); generated when absent
    tls_key: str | None = None
    tls_client_ca: str | None = None             # CA that signs station certificates (profile 3)
    heartbeat_interval_s: int = 300
    boot_status: str = "Accepted"
    response_timeout_s: float = 10.0
    max_frame_bytes: int = 65536                 # bigger frames: connection closed with 1009
    record_path: str | None = None               # JSONL of every frame; default: the test's evidence
    retain_frames: bool = True                   # keep frames in memory for expect()
    reuse_port: bool = False                     # SO_REUSEPORT: several CSMS processes on one port (csms/shard.py)
    flood_limit_per_s: float = 100.0             # a station sending more (2 s burst) is cut off (1008); 0 = off

    KNOWN = ("host", "port", "security_profile", "ocpp_version", "ocpp_versions", "station_id", "stations",
             "password", "tls_cert", "tls_key", "tls_client_ca", "heartbeat_interval_s", "boot_status",
             "response_timeout_s", "max_frame_bytes", "record_path", "retain_frames", "reuse_port",
             "flood_limit_per_s")

    @classmethod
    def from_dict(cls, d: dict) -> "CsmsOptions":
        d = dict(d)
        unknown = sorted(set(d) - set(cls.KNOWN))
        if unknown:
            raise BenchError(f"unknown CSMS option(s) {unknown}", where="roles.csms",
                             fix=f"use only {', '.join(cls.KNOWN)}")
        if "ocpp_version" in d:
            d["ocpp_versions"] = (d.pop("ocpp_version"),)
        if "ocpp_versions" in d:
            v = d["ocpp_versions"]
            d["ocpp_versions"] = tuple([v] if isinstance(v, str) else v)
        sid = d.pop("station_id", None)
        stations = dict(d.get("stations") or {})
        if sid:
            stations.setdefault(sid, d.get("password") or "")
        d["stations"] = stations
        opts = cls(**d)
        opts.check()
        return opts

    def problems(self) -> list[str]:
        errs = []
        if self.security_profile not in (0, 1, 2, 3):
            errs.append(f"security_profile = {self.security_profile!r}: must be 0 (no auth, bench only), 1, 2 or 3")
        bad = [v for v in self.ocpp_versions if v not in SUBPROTOCOLS]
        if bad or not self.ocpp_versions:
            errs.append(f"ocpp_versions = {list(self.ocpp_versions)!r}: each must be one of {sorted(SUBPROTOCOLS)}")
        if not 0 <= int(self.port) <= 65535:
            errs.append(f"port = {self.port!r}: must be 0..65535 (0 = any free port)")
        if self.security_profile in (1, 2) and not (self.stations or self.password):
            errs.append("security profiles 1/2 need `password` (or `stations = {id = password}`) for Basic auth")
        if (self.tls_cert is None) != (self.tls_key is None):
            errs.append("give both tls_cert and tls_key, or neither (then a test PKI is generated)")
        if self.security_profile == 0 and not is_loopback(self.host):
            errs.append(f"security_profile = 0 (no authentication) on {self.host!r}: any host on the network could "
                        "connect as any station; bind to 127.0.0.1/::1 or use security profile 1, 2 or 3")
        return errs

    def security_warnings(self) -> list[str]:
        """Legal but unsafe settings: logged when the server starts and printed by the CLI."""
        warns = []
        if self.security_profile == 1 and not is_loopback(self.host):
            warns.append(f"security profile 1 on {self.host!r}: Basic-auth passwords cross the network in clear "
                         "text (OCPP: profile 1 only on a trusted network); prefer profile 2 or 3")
        if self.security_profile in (1, 2):
            named = [(f"station {sid!r}", pw) for sid, pw in self.stations.items() if pw]
            if self.password:
                named.append(("password", self.password))
            for who, pw in named:
                if len(pw) < MIN_PASSWORD_LEN:
                    warns.append(f"{who}: the password has {len(pw)} characters; OCPP requires at least "
                                 f"{MIN_PASSWORD_LEN} (A00.FR.205)")
                elif not PASSWORD_STRING.fullmatch(pw):
                    warns.append(f"{who}: the password has characters outside OCPP's passwordString set "
                                 "(a-z A-Z 0-9 * - _ = : + | @ .)")
        return warns

    def check(self) -> None:
        errs = self.problems()
        if errs:
            from v2g_bench.errors import ProfileError
            raise ProfileError(errs, where="roles.csms")


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False          # a host name other than localhost: assume it reaches the network


def own_certificate_problems(cert_path) -> list[str]:
    """What is wrong with the CSMS's own server certificate (expired, not yet valid, unreadable): a station
    that refuses the TLS handshake then does right, and the refusal is the bench's fault."""
    if not cert_path:
        return []
    import datetime as dt

    from cryptography import x509
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as e:
        return [f"cannot read {cert_path}: {e}"]
    now = dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc < now:
        return [f"{cert_path} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"]
    if cert.not_valid_before_utc > now:
        return [f"{cert_path} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"]
    return []


def _handshake_logging_sslobject(server: "CsmsServer") -> type:
    """An `SSLObject` class that reports failed TLS handshakes: asyncio drops them silently
    (it logs them only in debug mode), so a refused station would leave no trace."""

    def report(e: BaseException) -> None:
        reason = getattr(e, "reason", None) or getattr(e, "verify_message", None) or str(e)
        own = server.own_tls_problems
        server._event("rejected", None, f"TLS handshake failed: {reason} ({e})"
                      + (f"; the CSMS's own certificate: {'; '.join(own)}" if own else ""),
                      side="bench" if own else "station")

    class LoggedSSLObject(ssl.SSLObject):
        _v2g_state: dict | None = None

        def do_handshake(self) -> None:
            if self._v2g_state is None:
                # asyncio closes a connection whose peer hangs up mid-handshake without calling us again:
                # a handshake that stays "started" is how such a silent refusal is seen
                self._v2g_state = {"t": time.monotonic(), "done": False}
                server.tls_handshakes.append(self._v2g_state)
            try:
                super().do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise
            except (ssl.SSLError, OSError) as e:
                self._v2g_state["done"] = True
                report(e)
                raise
            self._v2g_state["done"] = True

    return LoggedSSLObject


class StationSession:
    """One station's WebSocket connection: frame handling, outbound CALLs, duplicate-id tracking."""

    def __init__(self, server: "CsmsServer", ws: ServerConnection, station_id: str, version: str):
        self.server, self.ws, self.id, self.version = server, ws, station_id, version
        self.schemas = schemas_for(version)
        self.pending: dict[str, tuple[str, asyncio.Future]] = {}
        self.call_lock = asyncio.Lock()     # OCPP-J: one outstanding CALL per direction
        self.seen_ids: OrderedDict[str, None] = OrderedDict()
        self.connected_at = time.monotonic()
        self.closed = asyncio.Event()
        self.close_detail = ""
        self.raw_ids: set[str] = set()      # ids of frames the test sent raw: their answers are expected
        self.flood_flagged = False
        self._tokens, self._t_tokens = 2 * server.options.flood_limit_per_s, time.monotonic()   # flood guard

    # -- inbound ---------------------------------------------------------------------------
    async def serve(self) -> None:
        try:
            async for raw in self.ws:
                if not self._within_rate():
                    # a flooding station would hog the loop every other station's answers wait on
                    rate = self.server.options.flood_limit_per_s
                    self.server._event("flooding", self.id, f"more than {rate:g} frames/s: connection closed")
                    # the frame that broke the limit is evidence and fails the case that caused it
                    srv = self.server
                    frame = srv.recorder.record(station=self.id, direction="in", raw=raw)
                    try:
                        m = json.loads(raw)
                        frame.msg_type, frame.unique_id = m[0], m[1]
                        frame.action = m[2] if m[0] == CALL else None
                    except (ValueError, TypeError, IndexError, KeyError):
                        pass
                    frame.problems.append(f"flooding: more than {rate:g} frames/s (a {2 * rate:g}-frame burst) - "
                                          f"OCPP-J 4.1.1: a CALL waits for the answer to the previous one; the CSMS "
                                          f"closed the connection (1008) and keeps serving")
                    srv.add_violation(frame)
                    srv.recorder.write(frame)
                    srv.notify()
                    await self.ws.close(1008, f"flooding: more than {rate:g} frames/s")
                    break
                await self.on_frame(raw, backlog=self._backlog())
        except ConnectionClosed:
            pass
        finally:
            proto = self.ws.protocol
            sent, rcvd = proto.close_sent, proto.close_rcvd
            parts = []
            if sent is not None:
                parts.append(f"CSMS sent close {sent.code} {sent.reason!r}")
            if rcvd is not None:
                parts.append(f"station sent close {rcvd.code} {rcvd.reason!r}")
            self.close_detail = "; ".join(parts) or "connection dropped without a close frame (1006)"
            for _, fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"station {self.id} disconnected ({self.close_detail})"))
            self.closed.set()

    def _backlog(self) -> int:
        """Frames from the station already received and waiting behind this one (websockets' receive queue;
        0 when the library does not expose it). A station that keeps one CALL in flight leaves at most one
        or two there."""
        q = getattr(getattr(self.ws, "recv_messages", None), "frames", None)
        try:
            return len(q) if q is not None else 0
        except TypeError:
            return 0

    def _within_rate(self) -> bool:
        """Token bucket: `flood_limit_per_s` frames per second, bursts of two seconds' worth."""
        rate = self.server.options.flood_limit_per_s
        if rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(2 * rate, self._tokens + (now - self._t_tokens) * rate)
        self._t_tokens = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def on_frame(self, raw: str | bytes, backlog: int = 0) -> None:
        srv = self.server
        frame = srv.recorder.record(station=self.id, direction="in", raw=raw)
        try:
            reply = self._parse_and_answer(frame, raw)
            if backlog >= FLOOD_BACKLOG and not self.flood_flagged:
                # once per connection: the verdict needs the first, the evidence file keeps them all
                self.flood_flagged = True
                frame.problems.append(f"flooding: {backlog} more frames were already waiting behind this "
                                      f"{frame.action or 'frame'} - the station did not wait for the answers "
                                      f"(OCPP-J 4.1.1: one CALL in flight at a time)")
        finally:
            if frame.problems:
                srv.add_violation(frame)
            srv.recorder.write(frame)
            srv.notify()
        if reply is not None:
            if asyncio.iscoroutine(reply):
                reply = await reply
            if reply is not None:
                await self.send(reply, answers=frame)

    def _parse_and_answer(self, frame: Frame, raw):
        """Fill in the parsed fields of `frame`; return the answer (list) or None."""
        if isinstance(raw, bytes):
            frame.problems.append("binary WebSocket frame (OCPP-J uses text frames only)")
            return [CALLERROR, "-1", "RpcFrameworkError", "binary frame: OCPP-J messages are text frames", {}]
        try:
            msg = json.loads(raw)
        except RecursionError:
            # found by the fuzz campaign: "[[[[...]]]]" 2000 deep raised out of the handler and
            # killed the connection (1011) with a traceback
            frame.problems.append("JSON nested too deeply to parse")
            return [CALLERROR, "-1", "RpcFrameworkError", "message nested too deeply", {}]
        except ValueError as e:
            frame.problems.append(f"not valid JSON ({e})")
            # OCPP-J: when the messageId cannot be read, answer with messageId "-1".
            return [CALLERROR, "-1", "RpcFrameworkError", "message is not valid JSON", {}]
        if not isinstance(msg, list) or len(msg) < 3:
            frame.problems.append("not an OCPP-J message array [type, id, ...]")
            return [CALLERROR, "-1", "RpcFrameworkError", "message is not an OCPP-J array", {}]
        mtype, uid = msg[0], msg[1]
        frame.msg_type = mtype if mtype in (CALL, CALLRESULT, CALLERROR) else None
        if not isinstance(uid, str) or not uid:
            frame.problems.append(f"messageId {uid!r} is not a non-empty string")
            return [CALLERROR, "-1", "RpcFrameworkError", "messageId must be a string", {}]
        frame.unique_id = uid
        if len(uid) > MAX_MESSAGE_ID_LEN:
            frame.problems.append(f"messageId longer than {MAX_MESSAGE_ID_LEN} characters")
        if mtype == CALL:
            return self._on_call(frame, msg)
        if mtype == CALLRESULT:
            self._on_result(frame, msg)
            return None
        if mtype == CALLERROR:
            self._on_error(frame, msg)
            return None
        frame.problems.append(f"unknown MessageTypeId {mtype!r}")
        return [CALLERROR, uid, "MessageTypeNotSupported", f"MessageTypeId {mtype!r} is not 2, 3 or 4", {}]

    def _on_call(self, frame: Frame, msg: list):
        uid = frame.unique_id
        if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
            frame.problems.append("CALL must be [2, messageId, action, {payload}]")
            return [CALLERROR, uid, "FormatViolation", "CALL must be [2, messageId, action, {payload}]", {}]
        frame.action, frame.payload = msg[2], msg[3]
        if uid in self.seen_ids:
            frame.problems.append(f"duplicate messageId {uid!r} on this connection (OCPP-J: ids of CALLs are unique)")
            return [CALLERROR, uid, "RpcFrameworkError", "duplicate messageId; the CALL was not processed again", {}]
        self.seen_ids[uid] = None
        if len(self.seen_ids) > 1000:
            self.seen_ids.popitem(last=False)
        if frame.action not in self.schemas.actions:
            frame.problems.append(f"unknown action {frame.action!r} for OCPP {self.version}")
            return [CALLERROR, uid, "NotImplemented", f"{frame.action} is not an OCPP {self.version} action", {}]
        if frame.action not in station_sends(self.version):
            # a CSMS-to-station action sent to the CSMS: known, but not something a CSMS executes
            frame.problems.append(f"{frame.action} is sent by a CSMS, not by a charging station (OCPP {self.version})")
            return [CALLERROR, uid, "NotSupported", f"{frame.action} is recognized but not supported by the "
                    f"receiver (a CSMS-to-station action)", {}]
        problems = self.schemas.check(frame.action, "Request", frame.payload)
        if problems:
            frame.problems.extend(f"schema {frame.action}Request: {p}" for p in problems)
            return [CALLERROR, uid, problems[0].ocpp_error_code, str(problems[0])[:255],
                    {"problems": [str(p) for p in problems[:5]]}]
        return self.server.answer(self, frame)

    def _on_result(self, frame: Frame, msg: list) -> None:
        entry = self.pending.get(frame.unique_id)
        frame.payload = msg[2]
        if entry is None:
            if frame.unique_id in self.raw_ids:
                frame.note = "answer to a raw frame sent by the test"
            else:
                frame.problems.append("CALLRESULT for a messageId the CSMS never sent (or already answered)")
            return
        action, fut = entry
        frame.action = action
        if not isinstance(msg[2], dict) or len(msg) != 3:
            frame.problems.append("CALLRESULT must be [3, messageId, {payload}]")
        else:
            frame.problems.extend(f"schema {action}Response: {p}" for p in self.schemas.check(action, "Response", msg[2]))
        if not fut.done():
            fut.set_result(frame)

    def _on_error(self, frame: Frame, msg: list) -> None:
        entry = self.pending.get(frame.unique_id)
        if len(msg) != 5 or not isinstance(msg[2], str) or not isinstance(msg[3], str) or not isinstance(msg[4], dict):
            frame.problems.append("CALLERROR must be [4, messageId, errorCode, errorDescription, {errorDetails}]")
        frame.error_code = msg[2] if len(msg) > 2 else None
        frame.payload = {"errorCode": frame.error_code, "errorDescription": msg[3] if len(msg) > 3 else None,
                         "errorDetails": msg[4] if len(msg) > 4 else None}
        if entry is None:
            if frame.unique_id in self.raw_ids or frame.unique_id == "-1":
                frame.note = "answer to a raw frame sent by the test"
            else:
                frame.problems.append("CALLERROR for a messageId the CSMS never sent (or already answered)")
            return
        frame.action, fut = entry[0], entry[1]
        if not fut.done():
            fut.set_result(frame)

    # -- outbound --------------------------------------------------------------------------
    async def send(self, message: list | str, *, answers: Frame | None = None, action: str | None = None) -> Frame:
        raw = message if isinstance(message, str) else dumps(message)
        frame = self.server.recorder.record(station=self.id, direction="out", raw=raw)
        if isinstance(message, list):
            frame.msg_type, frame.unique_id = message[0], message[1]
            if message[0] == CALL:
                frame.action, frame.payload = message[2], message[3]
            elif message[0] == CALLRESULT:
                frame.action, frame.payload = (answers.action if answers else action), message[2]
            elif message[0] == CALLERROR:
                frame.action, frame.error_code = (answers.action if answers else action), message[2]
                frame.payload = {"errorCode": message[2], "errorDescription": message[3], "errorDetails": message[4]}
        else:
            frame.note = "raw frame sent on request"
        self.server.recorder.write(frame)
        self.server.notify()
        try:
            await self.ws.send(raw)
        except ConnectionClosed as e:
            frame.note = (frame.note + "; " if frame.note else "") + f"not delivered: connection closed ({e})"
        return frame

    async def call(self, action: str, payload: Any, *, timeout: float | None = None,
                   validate: bool = True, unique_id: str | None = None) -> Frame:
        """Send a CALL; return the answering frame (CALLRESULT or CALLERROR)."""
        if dataclasses.is_dataclass(payload) and not isinstance(payload, type):
            from ocpp.charge_point import remove_nones, serialize_as_dict
            action = action or type(payload).__name__
            payload = compat.snake_to_camel_case(remove_nones(serialize_as_dict(payload)))
        if validate:
            problems = self.schemas.check(action, "Request", payload)
            if problems:
                raise BenchError(f"the test asked the CSMS to send an invalid {action}Request: "
                                 + "; ".join(map(str, problems)), where=f"station {self.id} (OCPP {self.version})",
                                 fix="fix the payload, or use send_invalid()/send_raw() to send invalid frames on purpose")
        timeout = self.server.options.response_timeout_s if timeout is None else timeout
        uid = unique_id or str(uuid.uuid4())
        async with self.call_lock:
            fut = asyncio.get_running_loop().create_future()
            self.pending[uid] = (action, fut)
            try:
                await self.send([CALL, uid, action, payload])
                try:
                    return await asyncio.wait_for(fut, timeout)
                except asyncio.TimeoutError:
                    raise Nonconformance(f"station {self.id} did not answer {action} (messageId {uid}) "
                                         f"within {timeout:g} s") from None
            finally:
                self.pending.pop(uid, None)


class CsmsServer:
    """The CSMS: accepts stations, answers their CALLs, sends CALLs, records everything."""

    def __init__(self, options: CsmsOptions, *, recorder: FrameRecorder | None = None, ssl_context=None, pki=None):
        self.options = options
        self.recorder = recorder or FrameRecorder(options.record_path, retain=options.retain_frames)
        self.sessions: dict[str, StationSession] = {}
        self.events: list[ConnectionEvent] = []
        self.violations: list[Violation] = []
        self.violations_dropped = 0
        self.overrides: list[Override] = []
        self.ssl_context = ssl_context
        self.pki = pki
        self.port: int | None = None
        self.warnings: list[str] = []
        self._server = None
        self._changed = asyncio.Event()
        self._closing: set[asyncio.Future] = set()     # closes of replaced sessions in flight
        self.handlers_failed: list[str] = []
        # The bench's side of the credentials, to tell its own misconfiguration from the station's fault:
        self.own_tls_problems: list[str] = own_certificate_problems(options.tls_cert or (pki.server_cert if pki else None))
        self.provisioned: dict[str, str] = {}       # station id -> the password the bench gave that station
        self.tls_handshakes: deque[dict] = deque(maxlen=256)   # {"t", "done"} of recent TLS handshakes

    def abandoned_tls_handshakes(self, since: float = 0.0, older_than_s: float = 0.5) -> int:
        """TLS handshakes that began after `since` and were neither completed nor failed with an error within
        `older_than_s`: the station hung up mid-handshake (a refusal without an alert, or a network fault)."""
        now = time.monotonic()
        return sum(1 for h in list(self.tls_handshakes) if not h["done"] and since <= h["t"] <= now - older_than_s)

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        o = self.options
        if o.security_profile in (2, 3) and self.ssl_context is None:
            raise BenchError(f"security profile {o.security_profile} needs TLS but no SSL context was given",
                             where="CsmsServer.start", fix="open the CSMS via CSMSEmulator, which builds one")
        self.warnings = o.security_warnings()
        for w in self.warnings:
            log.warning("CSMS: %s", w)
        if self.ssl_context is not None:
            self.ssl_context.sslobject_class = _handshake_logging_sslobject(self)
        subprotocols = [SUBPROTOCOLS[v] for v in o.ocpp_versions]
        self._server = await serve(self._handle, o.host, o.port, ssl=self.ssl_context,
                                   subprotocols=subprotocols, process_request=self._process_request,
                                   max_size=o.max_frame_bytes, ping_interval=None, compression=None,
                                   server_header="v2g-bench-csms", reuse_port=o.reuse_port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("CSMS listening on %s", self.url())

    async def stop(self) -> None:
        if self._server is not None:
            if not await close_server(self._server, 5):
                log.warning("CSMS: connections did not close within 5 s")
            self._server = None
        self.recorder.close()

    def url(self, station_id: str | None = None) -> str:
        scheme = "wss" if self.options.security_profile in (2, 3) else "ws"
        host = self.options.host if ":" not in self.options.host else f"[{self.options.host}]"
        base = f"{scheme}://{host}:{self.port}/ocpp"
        return f"{base}/{station_id}" if station_id else base

    # -- waiting ---------------------------------------------------------------------------
    def notify(self) -> None:
        ev, self._changed = self._changed, asyncio.Event()
        ev.set()

    async def wait_until(self, predicate: Callable[[], Any], timeout: float):
        """Re-check `predicate` on every frame/connection event until truthy; TimeoutError after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self._changed
            result = predicate()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(ev.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    def add_violation(self, frame: Frame) -> None:
        v = Violation(frame, list(frame.problems))
        if len(self.violations) >= MAX_VIOLATIONS_KEPT:
            # a station spewing garbage for hours must not grow the CSMS without bound: keep the first
            # ones (what a verdict needs), count the rest
            self.violations_dropped += 1
            if self.violations_dropped % 1000 == 1:
                log.warning("OCPP violations from %s: %d more not kept (first %d are)", frame.station,
                            self.violations_dropped, MAX_VIOLATIONS_KEPT)
            return
        self.violations.append(v)
        text = str(v)       # capped: a hostile 64 kB frame must not become a 64 kB log line per problem
        log.warning("OCPP violation from %s: %s", frame.station, text if len(text) <= 600 else text[:600] + "...")

    def _event(self, kind: str, station: str | None, detail: str, status: int | None = None, sub=None, *,
               side: str = "station") -> None:
        self.events.append(ConnectionEvent(time.monotonic(), kind, station, detail, status, sub, side))
        # refusals (bad credentials, TLS) are what an operator must see: warning, with the reason
        log.log(logging.WARNING if kind == "rejected" else logging.INFO, "connection %s: %s %s", kind, station, detail)
        self.notify()

    # -- handshake: path, subprotocol, credentials ------------------------------------------
    def _process_request(self, connection: ServerConnection, request: Request):
        o = self.options
        station_id = request.path.rstrip("/").rsplit("/", 1)[-1] if request.path.strip("/") else ""
        station_id = station_id.split("?", 1)[0]

        def refuse(status: HTTPStatus, why: str, headers: dict | None = None, side: str = "station"):
            self._event("rejected", station_id or None, why, int(status), side=side)
            resp = connection.respond(status, why + "\n")
            for k, v in (headers or {}).items():
                resp.headers[k] = v
            return resp

        if not station_id or request.path.rstrip("/") in ("", "/ocpp"):
            return refuse(HTTPStatus.NOT_FOUND, "no station identity in the URL path (expected /ocpp/<stationId>)")
        if o.stations and station_id not in o.stations:
            return refuse(HTTPStatus.NOT_FOUND, f"unknown station identity {station_id!r}")
        offered = [p.strip() for h in request.headers.get_all("Sec-WebSocket-Protocol") for p in h.split(",") if p.strip()]
        wanted = [SUBPROTOCOLS[v] for v in o.ocpp_versions]
        if not offered:
            return refuse(HTTPStatus.BAD_REQUEST, "no OCPP subprotocol offered in Sec-WebSocket-Protocol; "
                          f"offer one of {', '.join(wanted)}")
        if not set(offered) & set(wanted):
            return refuse(HTTPStatus.BAD_REQUEST, f"none of the offered subprotocols {offered} is supported; "
                          f"this CSMS speaks {', '.join(wanted)}")
        if o.security_profile in (1, 2):
            auth = request.headers.get("Authorization")
            challenge = {"WWW-Authenticate": 'Basic realm="v2g-bench CSMS", charset="UTF-8"'}
            if not auth or not auth.lower().startswith("basic "):
                return refuse(HTTPStatus.UNAUTHORIZED, "security profile %d requires HTTP Basic authentication"
                              % o.security_profile, challenge)
            try:
                user, _, password = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return refuse(HTTPStatus.UNAUTHORIZED, "malformed Basic authorization header", challenge)
            if user != station_id:
                return refuse(HTTPStatus.UNAUTHORIZED, f"Basic auth username {user!r} does not match the station "
                              f"identity {station_id!r} in the URL", challenge)
            expected = o.stations.get(station_id) or o.password
            if password != expected:
                given = self.provisioned.get(station_id)
                if given is not None and password == given:
                    # the station sent exactly what the bench gave it: the bench's two settings disagree
                    return refuse(HTTPStatus.UNAUTHORIZED, f"wrong password for station {station_id!r}: it is the "
                                  "password the bench provisioned to the station, which the CSMS's own configuration "
                                  "does not accept (bench misconfiguration)", challenge, side="bench")
                return refuse(HTTPStatus.UNAUTHORIZED, f"wrong password for station {station_id!r}", challenge)
        if o.security_profile == 3:
            ssl_obj = connection.transport.get_extra_info("ssl_object")
            cert = ssl_obj.getpeercert() if ssl_obj else None
            if not cert:
                return refuse(HTTPStatus.FORBIDDEN, "security profile 3 requires a client certificate")
            cns = [v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"]
            if station_id not in cns:
                return refuse(HTTPStatus.FORBIDDEN, f"client certificate CN {cns} does not match the station "
                              f"identity {station_id!r} in the URL")
        connection.v2g_station_id = station_id
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        station_id = getattr(ws, "v2g_station_id", None) or ws.request.path.rstrip("/").rsplit("/", 1)[-1]
        version = VERSION_OF_SUBPROTOCOL[ws.subprotocol]
        session = StationSession(self, ws, station_id, version)
        # Swap before any await: awaiting the old session's close first let concurrent connects of
        # one id each close the same old session and then overwrite each other (500 connects left
        # 250 open). With the swap atomic, every connection but the newest is closed.
        old = self.sessions.get(station_id)
        self.sessions[station_id] = session
        if old is not None:
            task = asyncio.ensure_future(old.ws.close(1000, "replaced by a new connection of the same station"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self._event("accepted", station_id, f"OCPP {version} (SP{self.options.security_profile}) path "
                    f"{ws.request.path if ws.request is not None else '?'}", 101, ws.subprotocol)
        try:
            await session.serve()
        finally:
            self._event("closed", station_id, session.close_detail)

    # -- answering the station's CALLs ------------------------------------------------------
    def override(self, action: str, response, *, station: str | None = None, times: int | None = None) -> Override:
        ov = Override(action, response, station, times)
        self.overrides.insert(0, ov)        # newest first
        return ov

    def answer(self, session: StationSession, frame: Frame):
        uid, action = frame.unique_id, frame.action
        response = None
        for ov in self.overrides:
            if ov.action == action and ov.station in (None, session.id) and (ov.times is None or ov.times > 0):
                if ov.times is not None:
                    ov.times -= 1
                response = ov.response
                break
        if response is NO_ANSWER:
            frame.note = "no answer (per test override)"
            return None
        try:
            if response is None:
                payload = self.default_response(session, frame)
            elif callable(response):
                payload = response(frame)
            else:
                payload = response
            if isinstance(payload, OcppCallError):
                raise payload
        except OcppCallError as e:
            return [CALLERROR, uid, e.code, e.description, e.details]
        except Exception as e:   # a broken override must not kill the connection: report it
            self.handlers_failed.append(f"{action}: {e!r}")
            log.exception("CSMS handler for %s failed", action)
            return [CALLERROR, uid, "InternalError", f"CSMS handler failed: {e!r}"[:255], {}]
        return [CALLRESULT, uid, payload]

    def default_response(self, session: StationSession, frame: Frame) -> dict:
        action, req = frame.action, frame.payload
        now = utc_now_iso()
        if action == "BootNotification":
            return {"currentTime": now, "interval": self.options.heartbeat_interval_s, "status": self.options.boot_status}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "Authorize":
            return {"idTokenInfo": {"status": "Accepted"}}
        if action == "TransactionEvent":
            return {"idTokenInfo": {"status": "Accepted"}} if "idToken" in req else {}
        if action == "DataTransfer":
            return {"status": "UnknownVendorId"}     # this CSMS knows no vendor extensions (use case P01)
        return minimal_payload(session.version, action)
