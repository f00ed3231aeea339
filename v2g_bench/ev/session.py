"""The EVCC session handler and session of ours: same state machine as iso15118, plus
tracing of every V2GTP frame, feeding the charger's present V/I to the EV model, and misbehaviour.

We override only `start_comm_session` (to create our session class and own the TCP connection) and
the session's `send` / `process_message` (to see every frame). Hand-written because the stack has no
hook for either.
"""
from __future__ import annotations

import asyncio
import logging

from v2g_bench.ev import compat

compat.import_stack()

from iso15118.evcc.comm_session_handler import (  # noqa: E402
    CommunicationSessionHandler, EVCCCommunicationSession,
)
from iso15118.evcc.transport.tcp_client import TCPClient  # noqa: E402
from iso15118.shared.exceptions import MessageProcessingError  # noqa: E402
from iso15118.shared.exi_codec import EXI  # noqa: E402
from iso15118.shared.messages.timeouts import Timeouts  # noqa: E402
from iso15118.shared.messages.v2gtp import V2GTPMessage  # noqa: E402

from v2g_bench.ev.misbehaviour import Misbehaviour, corrupt_exi, malform_header, oversized, raw_header  # noqa: E402,E501
from v2g_bench.exi.values import find_key as _find, rational as _rational  # noqa: E402

log = logging.getLogger(__name__)
WRONG_SESSION_ID = "DEADBEEF00000000"






def message_name(msg) -> str:
    """The request's name: the body element for -2/DIN (their messages are all V2GMessage)."""
    if msg is None:
        return "?"
    body = getattr(msg, "body", None)
    if type(msg).__name__ == "V2GMessage" and hasattr(body, "get_message"):
        inner = body.get_message()
        return type(inner).__name__ if inner is not None else "V2GMessage"
    return type(msg).__name__


class TracedEVCCSession(EVCCCommunicationSession):
    def __init__(self, *args, bench_handler: "BenchEVCCHandler", **kw):
        super().__init__(*args, **kw)
        self._bench = bench_handler
        self._prev_frame: bytes | None = None
        self._sent: dict[str, bytes] = {}        # first frame sent per message name (for replays)

    async def send(self, message: V2GTPMessage):
        h = self._bench
        frame = message.to_bytes()
        name = message_name(self.current_state.message)
        fault = h.injector.take(name) if h.injector else None
        note = ""
        replayed = None          # decoded body of a replayed frame (the trace shows what was sent)
        if fault is not None:
            note = f"misbehaviour {fault.kind.value} on {name}"
            h.trace.note(note)
            k = fault.kind
            if k is Misbehaviour.DELAY:
                await asyncio.sleep(float(fault.params["seconds"]))
            elif k is Misbehaviour.OUT_OF_SEQUENCE:
                # replay an earlier request (default SessionSetupReq; "previous" = the last one sent)
                which = fault.params.get("replay", "SessionSetupReq")
                old = (self._prev_frame, None) if which == "previous" else self._sent.get(which, (None, None))
                if old[0] is not None:
                    frame, replayed = old
                note += f" (replays {which})"
            elif k is Misbehaviour.WRONG_SESSION_ID:
                frame = self._with_session_id(message, WRONG_SESSION_ID)
            elif k is Misbehaviour.MUTATE:
                frame, replayed = self._mutated(message, str(fault.params["path"]), fault.params.get("value"))
                note += f" ({fault.params['path']} = {fault.params.get('value')!r})"
            elif k is Misbehaviour.RAW_HEADER:
                frame = raw_header(frame, **{x: fault.params[x] for x in ("version", "inverse", "payload_type",
                                                                          "length") if x in fault.params})
            elif k is Misbehaviour.OVERSIZED:
                frame = oversized(frame, int(fault.params.get("extra", 70000)))
            elif k is Misbehaviour.MALFORMED_HEADER:
                frame = malform_header(frame)
            elif k is Misbehaviour.CORRUPT_EXI:
                frame = corrupt_exi(frame)
            elif k is Misbehaviour.ABRUPT_CLOSE:
                self._record("tx", b"", note + ": TCP reset, nothing sent")
                self.writer.transport.abort()
                raise ConnectionResetError("abrupt TCP close injected by the bench")
            elif k is Misbehaviour.STOP_ANSWERING:
                # silent but connected: block here (our own response timeout cannot fire) until the
                # charger gives up and closes the connection, or the session bound cancels us
                self._record("tx", b"", note + ": nothing sent")
                self.last_message_sent = message
                t0 = asyncio.get_running_loop().time()
                while not self.reader.at_eof():
                    await asyncio.sleep(0.05)
                waited = asyncio.get_running_loop().time() - t0
                h.trace.note(f"charger closed the connection after {waited:.2f} s of silence")
                raise ConnectionResetError(f"charger closed the connection after {waited:.2f} s of EV silence")
        self.writer.write(frame)
        await self.writer.drain()
        self.last_message_sent = message
        self._prev_frame = frame if fault is None else self._prev_frame or frame
        if fault is None:
            self._sent.setdefault(name, (frame, getattr(h.codec.last, "encoded", None)))
        self._record("tx", frame, note, decoded=replayed)

    def _mutated(self, message: V2GTPMessage, path: str, value):
        """The request re-encoded with one field changed (invalid parameter values, SAP offers)."""
        msg = self.current_state.message
        *parents, leaf = path.split(".")
        obj = msg
        for p in parents:
            obj = obj[int(p)] if isinstance(obj, list) else getattr(obj, p)
        original = obj[int(leaf)] if isinstance(obj, list) else getattr(obj, leaf)

        def put(v):
            if isinstance(obj, list):
                obj[int(leaf)] = v
            else:
                object.__setattr__(obj, leaf, v)
        put(value(original) if callable(value) else value)
        try:
            payload = EXI().to_exi(msg, self.get_exi_ns(message.payload_type))
        finally:
            put(original)
        return V2GTPMessage(self.protocol, message.payload_type, payload).to_bytes(), None

    async def stop(self, reason: str):
        # linger: after the session's end the EV keeps TCP open to see whether (and when) the charger
        # closes it (the -4 pattern "the SUT terminates the session by closing the TCP connection")
        linger = getattr(self._bench, "linger_s", None)
        if linger:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while not self.reader.at_eof() and loop.time() - t0 < linger:
                await asyncio.sleep(0.02)
            waited = loop.time() - t0
            self._bench.trace.note(f"linger: charger {'closed TCP' if self.reader.at_eof() else 'kept TCP open'} "
                                   f"{waited:.3f} s after the session's end")
        return await super().stop(reason)

    def _with_session_id(self, message: V2GTPMessage, sid: str) -> bytes:
        msg = self.current_state.message
        header = getattr(msg, "header", None)
        if header is None:
            raise MessageProcessingError(type(msg).__name__)
        original = header.session_id
        header.session_id = sid
        try:
            payload = EXI().to_exi(msg, self.get_exi_ns(message.payload_type))
        finally:
            header.session_id = original
        return V2GTPMessage(self.protocol, message.payload_type, payload).to_bytes()

    def _record(self, direction: str, frame: bytes, note: str = "", decoded=None):
        h = self._bench
        if decoded is None and direction == "tx":
            decoded = getattr(h.codec.last, "encoded", None)
        entry = h.trace.record(direction, frame, decoded, note)
        if h.on_message:
            try:
                h.on_message(entry)
            except Exception:  # noqa: BLE001 - a printing callback must not end the session
                log.exception("on_message callback failed")
        return entry

    async def process_message(self, message: bytes):
        h = self._bench
        h.codec.last.decoded = None
        try:
            await super().process_message(message)
        finally:
            decoded = getattr(h.codec.last, "decoded", None)
            entry = self._record("rx", message, decoded=decoded if decoded is not None else {"undecodable": True})
            d = entry.decoded
            v = _rational(_find(d, "EVSEPresentVoltage"))
            i = _rational(_find(d, "EVSEPresentCurrent"))
            if v is not None:
                h.controller.observe_evse(v, i if i is not None else 0.0)


class BenchEVCCHandler(CommunicationSessionHandler):
    def __init__(self, config, iface, codec, controller, *, trace, injector=None, on_message=None,
                 wanted_control_mode=None, allow_pnc: bool = False):
        super().__init__(config, iface, codec, controller)
        self.codec, self.controller, self.trace = codec, controller, trace
        self.injector, self.on_message = injector, on_message
        self.linger_s: float | None = None      # keep TCP open this long after the end (see TracedEVCCSession.stop)
        self.allow_pnc = allow_pnc
        if wanted_control_mode is not None:
            controller.wanted_control_mode = 1 if wanted_control_mode.name == "SCHEDULED" else 2
        self.session: TracedEVCCSession | None = None
        self.tls_info: dict | None = None

    async def process_incoming_udp_packet(self, message):
        # the stack returns silently on an SDP security mismatch (asked TLS, got TCP with enforce_tls; or the
        # reverse) and then waits forever: end the session at once, naming what the SECC answered
        from iso15118.shared.messages.enums import Protocol
        from iso15118.shared.messages.sdp import SDPResponse, Security
        from iso15118.shared.messages.v2gtp import V2GTPMessage
        from iso15118.shared.notifications import StopNotification

        try:
            v2gtp = V2GTPMessage.from_bytes(Protocol.UNKNOWN, message.data)
            resp = SDPResponse.from_payload(v2gtp.payload) if v2gtp.payload_type == 0x9001 else None
        except Exception:  # noqa: BLE001 - the stack reports what it cannot parse
            resp = None
        if resp is not None:
            tls = resp.security == Security.TLS
            if (not tls and self.config.enforce_tls) or (tls and not self.config.use_tls):
                asked = "TLS" if self.config.use_tls else "no security"
                why = f"SDP security mismatch: the EV asked for {asked}, the SECC answered {'TLS' if tls else 'TCP'}"
                self.trace.note(why)
                self._rcv_queue.put_nowait(StopNotification(False, why, None))
                return
        return await super().process_incoming_udp_packet(message)

    async def start_comm_session(self, host, port: int, is_tls: bool):
        # same as the stack's, with our session class; a connect failure ends the session (the
        # stack only logs it and then waits forever)
        from iso15118.shared.notifications import StopNotification

        try:
            self.tcp_client = await asyncio.wait_for(
                TCPClient.create(host, port, self._rcv_queue, is_tls, self.iface), 10.0)
        except Exception as exc:  # noqa: BLE001
            self._rcv_queue.put_nowait(StopNotification(
                False, f"TCP connect to [{host.compressed}%{self.iface}]:{port} failed: {exc!r}", None))
            return
        session = TracedEVCCSession((self.tcp_client.reader, self.tcp_client.writer), self._rcv_queue,
                                    self.config, self.iface, self.ev_controller, bench_handler=self)
        session.is_tls = is_tls
        session.allow_pnc = self.allow_pnc      # read by compat.patch_evcc_no_pnc_without_tls
        self.session = session
        self.trace.note(f"SDP: SECC at [{host.compressed}]:{port} {'TLS' if is_tls else 'TCP'}")
        ssl_obj = self.tcp_client.writer.get_extra_info("ssl_object") if is_tls else None
        if ssl_obj is not None:      # evidence of what was negotiated (TLS 1.3 for -20)
            peer = ssl_obj.getpeercert() or {}
            self.tls_info = {"version": ssl_obj.version(), "cipher": (ssl_obj.cipher() or ("?",))[0],
                             "peer_not_after": peer.get("notAfter")}
            self.trace.note(f"TLS {self.tls_info['version']} {self.tls_info['cipher']} "
                            f"(SECC certificate valid until {self.tls_info['peer_not_after']})")
        try:
            await session.send_sap()
        except Exception as exc:  # noqa: BLE001
            self._rcv_queue.put_nowait(StopNotification(False, f"sending SupportedAppProtocolReq: {exc!r}", None))
            return
        self.comm_session = session, asyncio.create_task(session.start(Timeouts.SUPPORTED_APP_PROTOCOL_REQ))
