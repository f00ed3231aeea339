"""Switchable defects of the simulated charger's SECC: a charger that is wrong on purpose, so every
conformance case can be shown able to fail (docs/iso15118-suite.md has the case x defect table).

    defects.enable("accept_any_session_id")                 # in the lab process
    defects.enable("late_response", message="AuthorizationRes", seconds=1.7)
    lab.control().call("secc.defect", name="stale_present_values")       # from the harness
    lab.control().call("secc.defect", name="stale_present_values", on=False)
    lab.control().call("secc.defects")                                    # what is on; clear=True clears

Each defect is a hook on the iso15118 SECC (patched once per process; a no-op while no defect is on)
or on our PlantEVSEController (which asks `active(name)`). Hand-written because the stack has no
fault hooks; every hook only touches SECC classes (the EV emulator in the same process is unaffected,
`_is_secc` checks the module of the state or session).
"""
from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any

from v2g_bench.errors import BenchError


@dataclass(frozen=True)
class Defect:
    name: str
    what: str                       # what the charger does wrong
    breaks: str                     # the requirement it breaks (ID as cited by the cases)
    params: tuple[tuple[str, Any], ...] = ()   # (name, default)


DEFECTS: dict[str, Defect] = {d.name: d for d in (
    Defect("accept_any_session_id", "requests with another SessionID are processed as if it matched",
           "V2G20-460"),
    Defect("ignore_sequence", "a request out of sequence gets ResponseCode OK instead of FAILED_SequenceError",
           "V2G20-459"),
    Defect("keep_tcp_open", "after its final (FAILED or SessionStop) response the SECC never closes TCP",
           "V2G20-1633"),
    Defect("never_timeout", "the sequence timer never fires: a silent EV keeps the session open",
           "V2G20-443"),
    Defect("late_response", "the response `message` leaves `seconds` late",
           "V2G20-1502", (("message", "AuthorizationRes"), ("seconds", 1.7))),
    Defect("wrong_response_code", "the response `message` carries ResponseCode `code`",
           "V2G20-736", (("message", "ServiceDiscoveryRes"), ("code", "FAILED"))),
    Defect("stale_present_values", "EVSEPresentVoltage/Current frozen at their first reported value",
           "V2GB-15118-PV-01"),
    Defect("exceed_discharge_limit", "the stage discharges at `factor` x the EV's maximum discharge power",
           "V2GB-15118-BPT-02", (("factor", 1.5),)),
    Defect("loop_limits_beyond_cpd", "DC_ChargeLoopRes states limits `factor` x those of DC_ChargeParameterDiscoveryRes",
           "V2G20-2654", (("factor", 1.5),)),
    Defect("answer_invalid_v2gtp", "frames with a wrong V2GTP version, inverse version or payload type are "
           "processed as if the header were right", "TC_SECC_CMN_VTB_V2GTPSessionSetup_004"),
    Defect("bad_response_header", "responses go out with V2GTP protocol version 0x02 / inverse 0xFD",
           "TC_SECC_CMN_VTB_V2GTPSessionSetup_001"),
    Defect("empty_evseid", "SessionSetupRes carries an empty EVSEID (not valid EXI for the -20 schema)",
           "V2G20-736"),
    Defect("reset_at", "the charger resets when about to send `message`: TCP aborted (RST), no response",
           "V2G20-459", (("message", "DC_ChargeLoopRes"),)),
    Defect("flood_at", "instead of `message` the charger floods the EV with `kbytes` of garbage", "V2G20-736",
           (("message", "DC_ChargeLoopRes"), ("kbytes", 256))),
    Defect("pnc_listed_with_eim_element", "AuthorizationSetupRes lists PnC among the services but carries the EIM "
           "element (no GenChallenge)", "V2G20-1220"),
    Defect("overstate_ratings", "DC_ChargeParameterDiscoveryRes states `factor` x the stage's ratings",
           "V2G20-2188", (("factor", 1.5),)),
    Defect("zero_session_id", "SessionSetupRes carries SessionID 0", "V2G20-2106"),
    Defect("reuse_session_id", "every new session gets the same SessionID", "V2G20-2621"),
    Defect("sap_lowest_priority", "SupportedAppProtocolRes picks the EV's lowest-priority protocol",
           "V2G20-169"),
    Defect("sap_accept_unknown", "an EV offering no supported protocol still gets OK_SuccessfulNegotiation",
           "TC_SECC_CMN_VTB_SupportedAppProtocol_002"),
    Defect("no_terminate_notification", "a charger-side stop is not signalled (no EVSENotification Terminate)",
           "V2GB-15118-STOP-01"),
    # TLS / PnC (hooks on the TLS server context the stack makes per SDP request, on the -20 signature check
    # and on the SDP answer)
    Defect("offer_tls12", "the SECC's TLS server negotiates at most TLS 1.2 (-20 runs over TLS 1.2)",
           "V2G20-2356"),
    Defect("expired_certificate", "the SECC presents a leaf certificate that expired yesterday (chain otherwise "
           "anchored at the V2G root)", "V2GB-15118-TLS-01"),
    Defect("untrusted_certificate", "the SECC presents a chain anchored at a root the EV does not trust",
           "V2GB-15118-TLS-01"),
    Defect("accept_bad_signature", "a PnC AuthorizationReq whose signature does not verify is accepted (OK)",
           "V2G20-2565"),
    Defect("sdp_ignore_tls_request", "an SDP request asking for TLS is answered with TCP (no security)",
           "V2GB-15118-SDP-01"),
    Defect("sdp_tls_to_tcp_request", "an SDP request asking for no security is answered with TLS",
           "TC_SECC_CMN_VTB_SDP_001"),
    # pause / resume
    Defect("join_any_session", "a SessionSetupReq with any non-zero SessionID is answered OK_OldSessionJoined with "
           "that ID (no check that it is the paused session)", "V2G20-2626"),
)}

_lock = threading.Lock()
_active: dict[str, dict[str, Any]] = {}
REUSED_SESSION_ID = "0123456789ABCDEF"


def enable(name: str, **params) -> dict:
    d = DEFECTS.get(name)
    if d is None:
        raise BenchError(f"unknown SECC defect {name!r}", where="secc.defect",
                         fix=f"one of: {', '.join(sorted(DEFECTS))}")
    allowed = dict(d.params)
    unknown = set(params) - set(allowed)
    if unknown:
        raise BenchError(f"defect {name!r} has no parameter(s) {sorted(unknown)}", where="secc.defect",
                         fix=f"its parameters: {sorted(allowed) or 'none'}")
    values = {**allowed, **params}
    for k, hi in (("seconds", 120), ("factor", 120), ("kbytes", 65536)):
        if k in values:
            try:
                values[k] = float(values[k])
            except (TypeError, ValueError):
                raise BenchError(f"defect {name!r}: {k} must be a number, got {values[k]!r}",
                                 where="secc.defect") from None
            if not 0 <= values[k] <= hi:
                raise BenchError(f"defect {name!r}: {k} {values[k]:g} out of 0..{hi}", where="secc.defect")
    install()
    with _lock:
        _active[name] = values
    return values


def disable(name: str | None = None) -> None:
    with _lock:
        if name is None:
            _active.clear()
        else:
            _active.pop(name, None)


class _On(dict):
    """A defect's parameters; true even when it has none (`if active("x"):`)."""

    def __bool__(self) -> bool:
        return True


def active(name: str) -> dict | None:
    """The parameters of defect `name` if it is on, else None."""
    if not _active:
        return None
    with _lock:
        v = _active.get(name)
        return _On(v) if v is not None else None


def snapshot() -> dict[str, dict]:
    with _lock:
        return {k: dict(v) for k, v in _active.items()}


def _norm(name: str) -> str:
    return name.replace("_", "").lower()


def _is_secc(obj: Any) -> bool:
    return type(obj).__module__.startswith("iso15118.secc")


def _matches(wanted: str, msg: Any) -> bool:
    body = getattr(msg, "body", None)
    if type(msg).__name__ == "V2GMessage" and hasattr(body, "get_message"):   # -2/DIN: the body names it
        msg = body.get_message()
    return _norm(wanted) == _norm(type(msg).__name__)


# --- hooks on the stack -----------------------------------------------------------------------------
_installed = False


def install() -> None:
    """Patch the SECC once; each hook does nothing unless its defect is on."""
    global _installed
    if _installed:
        return
    from v2g_bench.ev import compat

    compat.import_stack()
    _hook_check_msg()
    _hook_stop_state_machine()
    _hook_create_next_message()
    _hook_send()
    _hook_stop()
    _hook_v2gtp_header()
    _hook_tls()
    _hook_signature()
    _hook_sdp()
    _installed = True


def _hook_check_msg() -> None:
    from iso15118.secc.states.secc_state import StateSECC

    original = StateSECC.check_msg

    def check_msg(self, message, *args, **kwargs):
        if _active and type(message).__name__ == "SessionSetupReq" and _is_secc(self):
            # the SessionID the EV asked for (join_any_session answers it)
            self.comm_session._v2g_bench_setup_sid = getattr(getattr(message, "header", None), "session_id", None)
        if active("accept_any_session_id"):
            header = getattr(message, "header", None)
            sid = getattr(self.comm_session, "session_id", None)
            if header is not None and sid and getattr(header, "session_id", sid) != sid:
                header.session_id = sid
        return original(self, message, *args, **kwargs)

    StateSECC.check_msg = check_msg


def _hook_stop_state_machine() -> None:
    from iso15118.secc.states.secc_state import StateSECC

    original = StateSECC.stop_state_machine

    def stop_state_machine(self, reason, faulty_request, response_code, *args, **kwargs):
        if active("ignore_sequence") and "SEQUENCE" in str(getattr(response_code, "name", response_code)).upper():
            # answer the out-of-sequence request as if it were fine (the session still ends)
            response_code = type(response_code)("OK")
        return original(self, reason, faulty_request, response_code, *args, **kwargs)

    StateSECC.stop_state_machine = stop_state_machine


def _set_code(msg: Any, code: str) -> None:
    rc = getattr(msg, "response_code", None)
    if rc is None:
        return
    try:
        msg.response_code = type(rc)(code)
    except ValueError:       # a code that namespace does not know: the first FAILED* one it has
        msg.response_code = next(c for c in type(rc) if c.value.startswith("FAILED"))


def _hook_create_next_message() -> None:
    from iso15118.shared.states import State

    original = State.create_next_message

    def create_next_message(self, next_state, next_msg, next_msg_timeout, *args, **kwargs):
        if _active and _is_secc(self) and next_msg is not None:
            name = _norm(type(next_msg).__name__)
            if active("never_timeout"):
                next_msg_timeout = 3600.0
            w = active("wrong_response_code")
            if w and _matches(w["message"], next_msg):
                _set_code(next_msg, str(w["code"]))
            if name == "sessionsetupres":
                sid = ("00" * 8 if active("zero_session_id") else
                       REUSED_SESSION_ID if active("reuse_session_id") else None)
                if sid is not None:
                    self.comm_session.session_id = sid
                    header = getattr(next_msg, "header", None)
                    if header is not None:
                        header.session_id = sid
            if name == "authorizationsetupres" and active("pnc_listed_with_eim_element"):
                services = list(getattr(next_msg, "auth_services", None) or [])
                pnc = next((a for a in type(services[0]) if a.value == "PnC"), None) if services else None
                if pnc is not None and pnc not in services:
                    object.__setattr__(next_msg, "auth_services", services + [pnc])
            asked = getattr(self.comm_session, "_v2g_bench_setup_sid", None)
            if name == "sessionsetupres" and active("join_any_session") and asked and int(asked, 16) != 0 \
                    and hasattr(next_msg, "header"):
                self.comm_session.session_id = asked
                next_msg.header.session_id = asked
                next_msg.response_code = type(next_msg.response_code)("OK_OldSessionJoined")
            if name == "sessionsetupres" and active("empty_evseid") and hasattr(next_msg, "evse_id"):
                object.__setattr__(next_msg, "evse_id", "")
            if name == "supportedappprotocolres" and active("sap_accept_unknown") \
                    and getattr(next_msg.response_code, "value", None) == "Failed_NoNegotiation":
                offered = getattr(self.comm_session, "_v2g_bench_sap_offer", None) or []
                next_msg.response_code = type(next_msg.response_code)("OK_SuccessfulNegotiation")
                if offered:
                    next_msg.schema_id = offered[0].schema_id
            if name == "supportedappprotocolres" and active("sap_lowest_priority"):
                offered = getattr(self.comm_session, "_v2g_bench_sap_offer", None) or []
                if offered and getattr(next_msg, "schema_id", None) is not None:
                    next_msg.schema_id = max(offered, key=lambda p: p.priority).schema_id
        return original(self, next_state, next_msg, next_msg_timeout, *args, **kwargs)

    State.create_next_message = create_next_message
    # the SAP state decides from the request; keep what the EV offered for `sap_lowest_priority`
    from iso15118.secc.states import sap_states

    sap = sap_states.SupportedAppProtocol
    original_process = sap.process_message

    async def process_message(self, message, message_exi=None):
        offered = getattr(message, "app_protocol", None)
        if offered:
            self.comm_session._v2g_bench_sap_offer = list(offered)
        return await original_process(self, message, message_exi)

    sap.process_message = process_message


def _hook_send() -> None:
    from iso15118.secc.comm_session_handler import SECCCommunicationSession

    original = SECCCommunicationSession.send

    async def send(self, message):
        late = active("late_response")
        if late:
            msg = getattr(self.current_state, "message", None)
            if msg is not None and _matches(late["message"], msg):
                await asyncio.sleep(late["seconds"])
        if active("bad_response_header"):
            message = _BadHeader(message)
        msg = getattr(self.current_state, "message", None)
        reset = active("reset_at")
        if reset and msg is not None and _matches(reset["message"], msg):
            self.writer.transport.abort()
            raise ConnectionResetError("simulated charger reset (defect reset_at)")
        flood = active("flood_at")
        if flood and msg is not None and _matches(flood["message"], msg):
            junk = bytes((i * 151 + 7) & 0xFF for i in range(1024))
            for _ in range(int(flood.get("kbytes", 256))):
                self.writer.write(junk)
                await self.writer.drain()
            self.writer.transport.abort()
            raise ConnectionResetError("simulated charger flood (defect flood_at)")
        return await original(self, message)

    SECCCommunicationSession.send = send


class _BadHeader:
    """A V2GTP message whose header bytes say protocol version 0x02 / inverse 0xFD."""

    def __init__(self, message):
        self._m = message

    def to_bytes(self) -> bytes:
        return bytes([0x02, 0xFD]) + self._m.to_bytes()[2:]

    def __getattr__(self, name):
        return getattr(self._m, name)

    def __str__(self) -> str:
        return str(self._m)


def _hook_stop() -> None:
    from iso15118.secc.comm_session_handler import SECCCommunicationSession

    original = SECCCommunicationSession.stop

    async def stop(self, reason: str):
        if active("keep_tcp_open"):
            # the final response went out; stay connected until the EV gives up (bounded)
            for _ in range(1200):
                if self.reader.at_eof():
                    break
                await asyncio.sleep(0.05)
        return await original(self, reason)

    SECCCommunicationSession.stop = stop


def _hook_v2gtp_header() -> None:
    from iso15118.shared.messages.v2gtp import V2GTPMessage

    original = V2GTPMessage.from_bytes.__func__

    @classmethod
    def from_bytes(cls, protocol, data):
        if active("answer_invalid_v2gtp") and len(data) >= 8:
            # the header's version bytes and payload type are not checked (taken as the valid ones)
            ptype = int.from_bytes(data[2:4], "big")
            ns = getattr(protocol, "ns", "") or ""
            if ptype not in (0x8001, 0x8002, 0x8003, 0x8004, 0x8005, 0x8006, 0x9000, 0x9001):
                ptype = 0x8002 if ns.startswith("urn:iso:std:iso:15118:-20") else 0x8001
            data = bytes([0x01, 0xFE]) + ptype.to_bytes(2, "big") + bytes(data[4:])
        return original(cls, protocol, data)

    V2GTPMessage.from_bytes = from_bytes


# --- TLS: the stack makes a fresh server context per SDP request asking for TLS (tcp_server.start_tls) --------
def _hook_tls() -> None:
    from iso15118.secc.transport import tcp_server

    original = tcp_server.get_ssl_context

    def get_ssl_context(server_side: bool):
        ctx = original(server_side)
        if ctx is None or not server_side or not _active:
            return ctx
        import ssl

        if active("offer_tls12"):
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        which = "expired" if active("expired_certificate") else "untrusted" if active("untrusted_certificate") \
            else None
        if which:
            cert, key = _bad_chain(which)
            ctx.load_cert_chain(certfile=cert, keyfile=key)
        return ctx

    tcp_server.get_ssl_context = get_ssl_context


_bad_chains: dict[str, tuple[str, str]] = {}


def _bad_chain(which: str) -> tuple[str, str]:
    """A SECC chain that must not verify, made once per process with `cryptography` from the test PKI:
    'expired' = a new leaf with the real leaf's subject, signed by the CPO Sub-CA 2, valid until yesterday;
    'untrusted' = a leaf under a self-made root the EV does not know. Returns (chain pem, key pem) paths."""
    if which in _bad_chains:
        return _bad_chains[which]
    import datetime as dt
    import tempfile
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from iso15118.shared.settings import shared_settings

    base = Path(str(shared_settings["PKI_PATH"])) / "iso15118_2"
    leaf_real = x509.load_pem_x509_certificate((base / "certs/seccLeafCert.pem").read_bytes())
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())

    def cert(subject, issuer, pub, signer, start, end, ca: bool):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(pub)
             .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        return b.sign(signer, hashes.SHA256())

    if which == "expired":
        sub2 = x509.load_pem_x509_certificate((base / "certs/cpoSubCA2Cert.pem").read_bytes())
        raw = (base / "private_keys/cpoSubCA2.key").read_bytes()
        try:
            sub2_key = serialization.load_pem_private_key(raw, None)
        except (TypeError, ValueError):
            pw = (base / "private_keys/seccLeafPassword.txt").read_text().strip().encode()
            sub2_key = serialization.load_pem_private_key(raw, pw)
        leaf = cert(leaf_real.subject, sub2.subject, key.public_key(), sub2_key, now - dt.timedelta(days=30),
                    now - dt.timedelta(days=1), False)
        rest = (base / "certs/cpoCertChain.pem").read_bytes().split(b"-----END CERTIFICATE-----", 1)[1]
        chain = leaf.public_bytes(serialization.Encoding.PEM) + rest.lstrip(b"\r\n")
    else:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "v2g-bench untrusted root")])
        root = cert(root_name, root_name, root_key.public_key(), root_key, now - dt.timedelta(days=1),
                    now + dt.timedelta(days=30), True)
        leaf = cert(leaf_real.subject, root_name, key.public_key(), root_key, now - dt.timedelta(days=1),
                    now + dt.timedelta(days=30), False)
        chain = leaf.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)
    d = Path(tempfile.mkdtemp(prefix=f"v2g-bench-{which}-chain-"))
    (d / "chain.pem").write_bytes(chain)
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    _bad_chains[which] = (str(d / "chain.pem"), str(d / "key.pem"))
    return _bad_chains[which]


def _hook_signature() -> None:
    from iso15118.secc.states import iso15118_20_states as st20

    original = st20.verify_signature

    def verify_signature(*args, **kwargs):
        ok = original(*args, **kwargs)
        return True if active("accept_bad_signature") else ok

    st20.verify_signature = verify_signature


def _hook_sdp() -> None:
    from iso15118.secc.comm_session_handler import CommunicationSessionHandler

    original = CommunicationSessionHandler.process_sdp_request

    async def process_sdp_request(self, sdp_request):
        if active("sdp_ignore_tls_request") and not self.config.enforce_tls:
            from iso15118.shared.messages.sdp import Security

            if sdp_request.security == Security.TLS:
                sdp_request.security = Security.NO_TLS
        if active("sdp_tls_to_tcp_request"):
            from iso15118.shared.messages.sdp import Security

            if sdp_request.security == Security.NO_TLS:
                sdp_request.security = Security.TLS
        return await original(self, sdp_request)

    CommunicationSessionHandler.process_sdp_request = process_sdp_request
