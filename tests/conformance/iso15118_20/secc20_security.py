"""ISO 15118-20 SECC: TLS 1.3 and Plug & Charge (rows need the DUT's `tls` and `PnC` claims) and the SDP security
variants. The EV emulator trusts only the test PKI's V2G root (made at lab start, shared with the lab's SECC);
a TLS session's frames are encrypted in the capture, so these rows judge from the EV's trace (what it decoded
after the handshake) and from the SDP exchange in the capture. See secc20_rows.py for the conventions."""
from __future__ import annotations

import json
import ssl
import time

from v2g_bench.conformance import Case, step
from v2g_bench.conformance.iso15118 import response
from v2g_bench.conformance.iso15118_steps import answered, ev_session, first_response, oracle_of, session_of
from v2g_bench.errors import Inconclusive, Nonconformance

from secc20_rows import LINGER_S, STANDARD

TLS_REQ = ("ISO15118-20", "DC_BPT", "TLS")
PNC_REQ = ("ISO15118-20", "DC_BPT", "TLS", "PnC")
# what the EV's TLS stack says when it refuses the SECC's chain (OpenSSL verify errors)
_VERIFY = ("certificate verify failed", "CERTIFICATE_VERIFY_FAILED", "certificate has expired",
           "unable to get local issuer", "self-signed certificate", "self signed certificate")


def _notes(res) -> list[str]:
    with open(res.trace_path, encoding="utf-8") as f:
        rows = [json.loads(x) for x in f if x.strip()]
    return [r.get("note", "") for r in rows if r.get("dir") == "note"]


def _tls_note(ctx) -> str | None:
    return next((n for n in _notes(session_of(ctx)) if n.startswith("TLS ")), None)


def _refused_chain(res) -> str | None:
    text = f"{res.step}: {res.reason}"
    return text[:400] if any(k in text for k in _VERIFY) else None


def _tls_session_note(ctx, no_session) -> str:
    """The session's TLS note (attached); without one, a refused SECC chain fails the case, anything else
    raises what `no_session(res)` returns."""
    res = session_of(ctx)
    note = _tls_note(ctx)
    ctx.attach("tls", note or f"no TLS session: {res.step}: {res.reason[:300]}")
    if note is None:
        why = _refused_chain(res)
        if why:
            raise Nonconformance(f"the EV refused the SECC's certificate chain: {why}", req="V2GB-15118-TLS-01")
        raise no_session(res)
    return note


def _tls13(ctx):
    res = session_of(ctx)
    note = _tls_session_note(ctx, lambda r: Nonconformance(
        f"the EV asked for TLS in SDP and got no TLS session ({r.step}: {r.reason[:300]})", req="V2G20-1235"))
    version = note.split()[1]
    if version != "TLSv1.3":
        raise Nonconformance(f"-20 over {version} (the SECC negotiated it; TLS 1.3 is mandatory for -20): {note}",
                             req="V2G20-2356")
    if not session_of(ctx).passed:
        raise Nonconformance(f"the -20 session over TLS 1.3 did not complete: {res.step}: {res.reason[:300]}",
                             req="V2G20-1235")


def _chain_accepted(ctx):
    """The EV (trusting only the V2G root) accepted the SECC's chain, and its leaf is within its validity."""
    note = _tls_session_note(ctx, lambda r: Inconclusive(
        f"no TLS session, and not for the SECC's chain: {r.step}: {r.reason[:300]}"))
    not_after = note.rsplit("valid until ", 1)[-1].rstrip(")")
    try:
        end = ssl.cert_time_to_seconds(not_after)       # OpenSSL's "Jan 29 07:08:17 2027 GMT"
    except ValueError:
        raise Inconclusive(f"the SECC certificate's notAfter {not_after!r} could not be read") from None
    if end <= time.time():
        raise Nonconformance(f"the SECC's certificate expired ({not_after})", req="V2GB-15118-TLS-01")


def _sdp_answers_tls(ctx):
    rep = oracle_of(ctx)
    sdp = rep.capture.sdp
    reqs = [x for x in sdp if x.direction == "ev->secc" and x.security == 0x00]
    if not reqs:
        raise Inconclusive("no SDP request asking for TLS in the capture")
    answers = [x for x in sdp if x.direction == "secc->ev" and x.t >= reqs[0].t]
    ctx.attach("sdp", [{"dir": x.direction, "t": x.t, "security": x.security, "transport": x.transport}
                       for x in sdp])
    if not answers:
        raise Nonconformance("the SDP request asking for TLS got no answer", req="V2GB-15118-SDP-01")
    bad = [x for x in answers if x.security != 0x00]
    if bad:
        raise Nonconformance(f"the SDP request asked for TLS (0x00); the charger, which claims TLS, answered "
                             f"security {bad[0].security:#04x} (no TLS)", req="V2GB-15118-SDP-01")


def _offers_claimed(body, ctx):
    services = body.get("AuthorizationServices") or []
    offered = {str(x).upper() for x in (services if isinstance(services, list) else [services])}
    claimed = {a.upper() for a in ctx.dut_profile.auth}
    if offered != claimed:
        return f"offers {sorted(offered)} over TLS; the DUT claims {sorted(claimed)}"
    if "PNC" in offered:
        pnc = body.get("PnC_ASResAuthorizationMode")
        if not isinstance(pnc, dict):
            return "PnC offered without the PnC element"
        if "EIM_ASResAuthorizationMode" in body:
            return "the EIM element is present although PnC is offered"
    return None


def _gen_challenge(body, ctx):
    pnc = body.get("PnC_ASResAuthorizationMode") or {}
    ch = pnc.get("GenChallenge") if isinstance(pnc, dict) else None
    if ch is None:
        return "no GenChallenge"
    if isinstance(ch, str):      # the trace carries bytes as base64 (hex accepted too)
        import base64
        import binascii
        try:
            raw = base64.b64decode(ch, validate=True)
        except binascii.Error:
            raw = bytes.fromhex(ch)
    else:
        raw = bytes(ch)
    if len(raw) != 16:
        return f"GenChallenge of {len(raw)} bytes (16 required)"
    if len(set(raw)) < 6:
        return f"GenChallenge {raw.hex()} is not random"
    return None


def _flip(value: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in value)


def security_cases() -> list[Case]:
    tls = dict(tls=True)
    pnc = dict(tls=True, auth="PnC")
    return [
        Case("ISO20_SDP_tls_requested", title="SDP request asking for TLS: the charger that claims TLS answers "
             "security TLS", standard=STANDARD, block="SDP", side="SECC", covers=("V2GB-15118-SDP-01", "V2G20-1805"),
             requires=TLS_REQ,
             # bounded: an EV that asked for TLS and got TCP gives up only at its own timeout
             steps=[ev_session(**tls, timeout_s=20), step("the SDP answer offers TLS", _sdp_answers_tls,
                                                          req="V2GB-15118-SDP-01")]),
        Case("ISO20_TLS_13", title="-20 over TLS: the SECC negotiates TLS 1.3 and the session completes",
             standard=STANDARD, block="TLS", side="SECC", covers=("V2G20-2356", "V2G20-1235"), requires=TLS_REQ,
             steps=[ev_session(**tls), step("TLS 1.3 negotiated, the session completes", _tls13, req="V2G20-2356")]),
        Case("ISO20_TLS_chain_not_expired", title="the SECC's certificate chain is within its validity period",
             standard=STANDARD, block="TLS", side="SECC", covers=("V2GB-15118-TLS-01", "V2G20-1235"),
             requires=TLS_REQ,
             steps=[ev_session(**tls), step("the EV accepts the chain; the leaf has not expired", _chain_accepted,
                                            req="V2GB-15118-TLS-01")]),
        Case("ISO20_TLS_chain_trusted", title="the SECC's chain is anchored at the V2G root the EV trusts (an "
             "EV trusting only that root accepts it)", standard=STANDARD, block="TLS", side="SECC",
             covers=("V2GB-15118-TLS-01", "V2G20-1235"), requires=TLS_REQ,
             steps=[ev_session(**tls), step("the EV, trusting only the V2G root, accepts the chain", _chain_accepted,
                                            req="V2GB-15118-TLS-01")]),
        Case("ISO20_AuthorizationSetup_PnC_over_TLS", title="over TLS AuthorizationSetupRes offers exactly the "
             "claimed methods (EIM and PnC) with the PnC element only", standard=STANDARD,
             block="AuthorizationSetup", side="SECC", covers=("V2G20-2566", "V2G20-2568", "V2G20-1219"),
             requires=PNC_REQ,
             steps=[ev_session(**pnc),
                    response("AuthorizationSetupRes", {"ResponseCode": "OK"}, req="V2G20-2566"),
                    first_response("AuthorizationSetupRes", "the claimed methods, the PnC element",
                                   _offers_claimed, req="V2G20-2568")]),
        Case("ISO20_Authorization_PnC_good", title="PnC over TLS: a 128-bit random GenChallenge, the signed "
             "AuthorizationReq accepted", standard=STANDARD, block="Authorization", side="SECC",
             covers=("V2G20-2108", "V2G20-2565"), requires=PNC_REQ,
             steps=[ev_session(**pnc),
                    first_response("AuthorizationSetupRes", "GenChallenge of 16 random bytes", _gen_challenge,
                                   req="V2G20-2108"),
                    response("AuthorizationRes", {"ResponseCode": "OK", "EVSEProcessing": "Finished"},
                             req="V2G20-2565")]),
        Case("ISO20_Authorization_PnC_wrong_signature", title="PnC AuthorizationReq whose signature does not verify: "
             "FAILED_SignatureError", standard=STANDARD, block="Authorization", side="SECC",
             covers=("V2G20-2565",), requires=PNC_REQ,
             steps=[ev_session(**pnc, linger_s=LINGER_S,
                               misbehave=("mutate", "AuthorizationReq",
                                          {"path": "header.signature.signature_value.value", "value": _flip})),
                    answered("AuthorizationRes", ResponseCode="FAILED_SignatureError", req="V2G20-2565")]),
    ]

