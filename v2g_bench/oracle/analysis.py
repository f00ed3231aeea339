"""The oracle: a capture judged without the stack that drove the session.

Every V2GTP frame is decoded again by our own EXI codec in strict mode (namespace from the SAP
exchange and the V2GTP payload type), requests are paired with responses, and the SECC's side is
checked against rules that cite requirement IDs: V2GTP header, schema validity, response type and
sequence, SessionID handling, response times (wire timestamps), TCP close after a final response,
SAP choice, -20 only over TLS, DC loop limits within the discovered ones. Optionally the decoded
content is compared with what the EV emulator's trace says it received.

    report = analyze("ev.pcap", trace="v2gtp-trace.jsonl")
    report.violations          # [Violation(rule, req, text, t, stream, bit)]
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from v2g_bench.oracle import limits
from v2g_bench.oracle.capture import Capture, Frame, read_capture
from v2g_bench.exi.values import rational as _rational

NS_20 = "urn:iso:std:iso:15118:-20:"
NS_2 = "urn:iso:15118:2:2013:MsgDef"
NS_DIN = "urn:din:70121:2012:MsgDef"
PT_20 = {0x8002: "iso20_common", 0x8003: "iso20_ac", 0x8004: "iso20_dc", 0x8005: "iso20_acdp",
         0x8006: "iso20_wpt"}
KNOWN_PAYLOAD_TYPES = {0x8001, *PT_20, 0x9000, 0x9001}
FINAL_OK = {"SessionStopRes"}


@dataclass
class Violation:
    rule: str                 # short rule name
    req: str | None           # requirement ID it descends from
    text: str
    t: float | None = None
    stream: int | None = None
    bit: int | None = None    # EXI bit position, when the rule is about the bits

    def __str__(self) -> str:
        where = f" (stream {self.stream}, t={self.t:.6f})" if self.t is not None else ""
        return f"[{self.req or self.rule}] {self.text}{where}"


@dataclass
class Message:
    t: float
    stream: int
    direction: str
    family: str               # "SAP" | "-20" | "-2" | "DIN" | "?"
    schema: str | None
    name: str
    body: dict | None         # decoded root content
    frame: Frame
    error: str | None = None
    bit: int | None = None
    response_time_s: float | None = None   # responses: from the request's last byte
    limit: limits.Limit | None = None

    @property
    def response_code(self) -> str | None:
        return (self.body or {}).get("ResponseCode") if isinstance(self.body, dict) else None

    def row(self) -> dict:
        return {"t": round(self.t, 6), "stream": self.stream, "dir": self.direction, "family": self.family,
                "name": self.name, "response_code": self.response_code,
                "response_time_s": None if self.response_time_s is None else round(self.response_time_s, 6),
                "limit_s": None if self.limit is None else self.limit.seconds, "error": self.error}


@dataclass
class Report:
    capture: Capture
    messages: list[Message] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def by_rule(self, *rules: str) -> list[Violation]:
        return [v for v in self.violations if v.rule in rules]

    def named(self, name: str, direction: str | None = None) -> list[Message]:
        return [m for m in self.messages if m.name == name and (direction is None or m.direction == direction)]

    def summary(self) -> dict:
        return {"capture": self.capture.path, "packets": self.capture.packets,
                "slac_frames": self.capture.slac_frames, "sdp": len(self.capture.sdp),
                "streams": len(self.capture.streams), "messages": len(self.messages),
                "violations": [str(v) for v in self.violations], "notes": self.notes}


# --- decoding ----------------------------------------------------------------------------------------
def _decode(data: bytes, schema: str) -> tuple[dict | None, str | None, int | None]:
    from v2g_bench.exi.codec import decode
    from v2g_bench.exi.errors import EXIError

    try:
        return decode(data, schema, strict=True), None, None
    except EXIError as exc:
        return None, str(exc), getattr(exc, "position", None)
    except Exception as exc:  # noqa: BLE001 - garbage must give a finding, never a crash
        return None, f"{type(exc).__name__}: {exc}", None


def _root(decoded: dict) -> tuple[str, dict]:
    key = next(iter(decoded))
    val = decoded[key]
    if key == "V2G_Message" and isinstance(val, dict):          # -2 / DIN: the body names it
        body = val.get("Body") or {}
        name = next(iter(body), "V2G_Message")
        inner = dict(body.get(name) or {})
        inner["Header"] = val.get("Header")
        return name, inner
    return key, val if isinstance(val, dict) else {"value": val}


def _family(ns: str | None) -> str:
    if not ns:
        return "?"
    if ns.startswith(NS_20):
        return "-20"
    if ns == NS_2:
        return "-2"
    if ns == NS_DIN:
        return "DIN"
    return "?"


def _schema_for(family: str, frame: Frame) -> str | None:
    if family == "-20":
        return PT_20.get(frame.payload_type)
    return {"-2": "iso2", "DIN": "din"}.get(family)


def _base(name: str) -> str:
    return name[:-3] if name.endswith(("Req", "Res")) else name


# --- the oracle ------------------------------------------------------------------------------------
def analyze(capture: str | Path | Capture, *, trace: str | Path | list | None = None,
            tls_required_for_20: bool = True, supported_namespaces: list[str] | None = None,
            keylog: str | Path | None = None) -> Report:
    """Judge a capture. `trace`: the EV emulator's v2gtp-trace.jsonl (or its rows) to compare with;
    `supported_namespaces`: what the SECC supports (DUT profile), for the SAP priority rule; `keylog`: the
    TLS key log (NSS format) to decrypt TLS streams with (default: one found beside the capture)."""
    cap = capture if isinstance(capture, Capture) else read_capture(capture, keylog=keylog)
    rep = Report(cap)
    _sdp_rules(cap, rep)
    for st in cap.streams:
        if st.tls and not st.decrypted:
            why = st.tls_problem or "no key log given (--keylog, or <capture>.keylog beside it)"
            rep.notes.append(f"stream {st.index}: TLS, {st.ev[0]} -> [{st.secc[0]}]:{st.secc[1]} "
                             f"(encrypted; messages not decodable: {why})")
            continue
        if st.decrypted:
            rep.notes.append(f"stream {st.index}: {st.tls_version} (suite {st.tls_suite:#06x}) decrypted with the "
                             f"key log {cap.keylog}")
        if st.gap:
            rep.notes.append(f"stream {st.index}: the capture lost TCP data; decoded up to the gap")
        _stream(st, rep, tls_required_for_20, supported_namespaces)
    if trace is not None:
        _compare_trace(rep, trace)
    return rep


def _sdp_rules(cap: Capture, rep: Report) -> None:
    last_req = None
    for ex in cap.sdp:
        if ex.direction == "ev->secc":
            last_req = ex
            continue
        if (ex.version, ex.inverse_version) != (0x01, 0xFE) or ex.payload_type != 0x9001:
            rep.violations.append(Violation("V2GTP-header", "TC_SECC_CMN_VTB_V2GTPSDP_001",
                                            f"SDP response header {ex.version:#04x}/{ex.inverse_version:#04x}/"
                                            f"{ex.payload_type:#06x}", ex.t))
        if last_req is not None and last_req.security == 0x10 and ex.security == 0x00:
            rep.violations.append(Violation("SDP-security", "TC_SECC_CMN_VTB_SDP_001",
                                            "SDP request asked for no security, the response offers TLS", ex.t))
        if ex.transport not in (0x00, None):
            rep.violations.append(Violation("SDP-transport", "TC_SECC_CMN_VTB_SDP_001",
                                            f"SDP response transport {ex.transport:#04x} (TCP is 0x00)", ex.t))


def _stream(st, rep: Report, tls_required_for_20: bool, supported: list[str] | None) -> None:
    family, ns, offered = "SAP", None, []
    pending: Message | None = None
    session_id: str | None = None
    cpd_limits: dict[str, float] = {}
    final: Message | None = None
    for f in st.frames:
        secc = f.direction == "secc->ev"
        if not f.header_ok or f.payload_type not in KNOWN_PAYLOAD_TYPES or not f.complete:
            what = (f"V2GTP header {f.version:#04x}/{f.inverse_version:#04x}" if not f.header_ok else
                    f"unknown payload type {f.payload_type:#06x}" if f.payload_type not in KNOWN_PAYLOAD_TYPES
                    else f"payload length {f.length} beyond the {len(f.payload)} bytes that followed")
            if secc:
                rep.violations.append(Violation("V2GTP-header", "TC_SECC_CMN_VTB_V2GTPSessionSetup_001",
                                                f"the SECC sent a frame with {what}", f.t, st.index))
            else:
                rep.notes.append(f"stream {st.index} t={f.t:.6f}: EV frame with {what} (stimulus)")
                pending = Message(f.t, st.index, f.direction, family, None, "invalid-V2GTP", None, f,
                                  error=what)
                rep.messages.append(pending)
            continue
        schema = "appprotocol" if family == "SAP" else _schema_for(family, f)
        if schema is None:
            body, err, bit = None, f"no schema for family {family} / payload type {f.payload_type:#06x}", None
        else:
            body, err, bit = _decode(f.payload, schema)
        if body is not None:
            name, content = _root(body)
        else:
            name, content = "undecodable", None
        m = Message(f.t, st.index, f.direction, family, schema, name, content, f, err, bit)
        rep.messages.append(m)
        if err is not None:
            if secc:
                rep.violations.append(Violation("EXI-strict", "V2G20-736" if family == "-20" else None,
                                                f"SECC frame not valid EXI for {schema}: {err}", f.t, st.index, bit))
            if not secc:
                pending = m               # an undecodable request: the SECC may ignore it or fail it
            continue
        if not secc:
            if pending is not None and pending.name not in ("undecodable", "invalid-V2GTP") and final is None:
                rep.violations.append(Violation("no-response", "V2G20-459" if family == "-20" else None,
                                                f"{pending.name} got no response before the next request",
                                                pending.t, st.index))
            pending = m
            if name == "supportedAppProtocolReq":
                offered = list((content or {}).get("AppProtocol") or [])
            continue
        # --- a SECC response
        req = pending
        pending = None
        if final is not None:
            rep.violations.append(Violation("after-final", "V2G20-1633", f"{name} sent after the final response "
                                            f"{final.name} ({final.response_code})", f.t, st.index))
        if req is None:
            rep.violations.append(Violation("unsolicited", None, f"{name} without a request", f.t, st.index))
        else:
            m.response_time_s = f.t - req.frame.t
            m.limit = limits.response_limit(family, req.name if req.name not in ("undecodable",) else name)
            if req.name not in ("undecodable", "invalid-V2GTP") and _base(req.name).lower() != _base(name).lower():
                rep.violations.append(Violation("response-type", "V2G20-459" if family == "-20" else None,
                                                f"{req.name} answered by {name}", f.t, st.index))
            if m.response_time_s > m.limit.seconds:
                rep.violations.append(Violation("response-time", m.limit.req,
                                                f"{name} after {m.response_time_s * 1000:.0f} ms "
                                                f"(limit {m.limit.seconds * 1000:.0f} ms: {m.limit.source})",
                                                f.t, st.index))
        code = m.response_code or ""
        if family == "SAP":
            ns, family = _sap(m, offered, rep, st, supported)
            if family == "-20" and not st.tls and tls_required_for_20:
                rep.violations.append(Violation("-20-without-TLS", "V2G20-2356",
                                                f"the SECC selected {ns} over plain TCP", f.t, st.index))
            if code.startswith("Failed") or code.startswith("FAILED"):
                final = m
            continue
        header = (content or {}).get("Header") or {}
        sid = header.get("SessionID")
        if name == "SessionSetupRes":
            if sid is not None and _hex(sid) and int(str(sid), 16) == 0:
                rep.violations.append(Violation("session-id-zero", "V2G20-2106" if family == "-20" else None,
                                                "SessionSetupRes carries SessionID 0", f.t, st.index))
            if code.startswith("OK"):
                session_id = sid
        elif sid is not None and session_id is not None and sid != session_id and family == "-20":
            rep.violations.append(Violation("session-id-changed", "TC_SECC_CMN_VTB_SessionSetup_002",
                                            f"{name} carries SessionID {sid}, the session's is {session_id}",
                                            f.t, st.index))
        if req is not None and req.body is not None and session_id is not None and name != "SessionSetupRes":
            rsid = ((req.body or {}).get("Header") or {}).get("SessionID")
            if rsid is not None and rsid != session_id and "UnknownSession" not in code:
                rep.violations.append(Violation("unknown-session", "V2G20-460" if family == "-20" else None,
                                                f"{req.name} with SessionID {rsid} (session {session_id}) "
                                                f"answered {code or 'without a code'}", f.t, st.index))
        if family == "-20":
            _dc_limits(name, content or {}, cpd_limits, rep, f, st)
        if code.startswith("FAILED") or name in FINAL_OK:
            final = m
    if final is not None:
        _close_rule(st, final, rep)


def _hex(s: Any) -> bool:
    try:
        int(str(s), 16)
        return True
    except ValueError:
        return False


def _sap(m: Message, offered: list, rep: Report, st, supported: list[str] | None) -> tuple[str | None, str]:
    code = m.response_code or ""
    if not code.startswith("OK"):
        return None, "?"
    sid = (m.body or {}).get("SchemaID")
    chosen = next((p for p in offered if p.get("SchemaID") == sid), None)
    if chosen is None:
        rep.violations.append(Violation("sap-choice", "V2G20-169", f"SupportedAppProtocolRes SchemaID {sid} was "
                                        "not offered by the EV", m.t, st.index))
        return None, "?"
    if supported is not None:
        better = [p for p in offered if p.get("ProtocolNamespace") in supported
                  and int(p.get("Priority", 99)) < int(chosen.get("Priority", 99))]
        if better:
            rep.violations.append(Violation("sap-priority", "V2G20-169",
                                            f"chose {chosen.get('ProtocolNamespace')} (priority {chosen.get('Priority')}) "
                                            f"over {better[0].get('ProtocolNamespace')} (priority "
                                            f"{better[0].get('Priority')}), which it supports", m.t, st.index))
    ns = chosen.get("ProtocolNamespace")
    return ns, _family(ns)


_LIMIT_KEYS = ("EVSEMaximumChargePower", "EVSEMaximumChargeCurrent", "EVSEMaximumDischargePower",
               "EVSEMaximumDischargeCurrent")


def _dc_limits(name: str, content: dict, cpd: dict, rep: Report, f: Frame, st) -> None:
    """DC_ChargeLoopRes limits within those of DC_ChargeParameterDiscoveryRes (V2G20-2654/2655)."""
    def flat(d, out):
        for k, v in d.items():
            r = _rational(v)
            if r is not None:
                out[k] = r
            elif isinstance(v, dict):
                flat(v, out)
        return out
    if name == "DC_ChargeParameterDiscoveryRes":
        cpd.update({k: v for k, v in flat(content, {}).items() if k in _LIMIT_KEYS})
    elif name == "DC_ChargeLoopRes" and cpd:
        for k, v in flat(content, {}).items():
            if k in cpd and abs(v) > abs(cpd[k]) * 1.0001 + 1e-6:
                rep.violations.append(Violation("loop-limit", "V2G20-2654",
                                                f"DC_ChargeLoopRes {k} {v:g} beyond DC_ChargeParameterDiscoveryRes "
                                                f"{cpd[k]:g}", f.t, st.index))


def _close_rule(st, final: Message, rep: Report) -> None:
    """After its final response the SECC closes the TCP connection (V2G20-1633), within 5 s."""
    if st.t_closed is None:
        rep.notes.append(f"stream {st.index}: no TCP close in the capture after {final.name}")
        rep.violations.append(Violation("tcp-close", "V2G20-1633", f"TCP not closed after the final response "
                                        f"{final.name} ({final.response_code}) within the capture", final.t, st.index))
        return
    if st.closed_by == "ev" and st.t_closed <= final.t + limits.TCP_TERMINATION_S:
        rep.notes.append(f"stream {st.index}: the EV closed first ({st.t_closed - final.t:.2f} s after {final.name})")
        return
    dt = st.t_closed - final.t
    if dt > limits.TCP_TERMINATION_S:
        rep.violations.append(Violation("tcp-close", "V2G20-1633",
                                        f"TCP closed {dt:.2f} s after the final response {final.name} "
                                        f"(limit {limits.TCP_TERMINATION_S:g} s)", final.t, st.index))


# --- independence: the oracle's decoding vs the emulator's -----------------------------------------
def _norm(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _norm(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_norm(v) for v in x]
    if isinstance(x, str):
        return x.upper() if _hex(x) and len(x) >= 8 else x
    return x


def _diff(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}/{k}: {'missing in the oracle' if k not in a else 'missing in the trace'}"
            d = _diff(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if a != b and not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)):
        return f"{path}: oracle {a!r}, trace {b!r}"
    return None


def _compare_trace(rep: Report, trace: str | Path | list) -> None:
    rows = trace if isinstance(trace, list) else [json.loads(x) for x in Path(trace).read_text().splitlines()
                                                  if x.strip()]
    by_exi = {}
    for m in rep.messages:
        if m.direction == "secc->ev" and m.body is not None:
            by_exi.setdefault(m.frame.payload.hex(), m)
    missing = 0
    for r in rows:
        if r.get("dir") != "rx" or not r.get("exi") or not isinstance(r.get("decoded"), dict):
            continue
        if r["decoded"].get("undecodable"):
            continue
        m = by_exi.get(r["exi"].lower())
        if m is None:
            bad = next((x for x in rep.messages if x.direction == "secc->ev" and x.body is None
                        and x.frame.payload.hex() == r["exi"].lower()), None)
            if bad is None:
                missing += 1
            continue
        name, content = _root(r["decoded"])
        d = _diff(_norm(m.body), _norm(content))
        if name != m.name or d:
            rep.violations.append(Violation("oracle-vs-emulator", None,
                                            f"{m.name}: the emulator's decoding differs from the oracle's "
                                            f"({d or f'root {name} vs {m.name}'})", m.t, m.stream))
    if missing:
        rep.notes.append(f"{missing} frame(s) of the trace not found in the capture (capture started late "
                         "or dropped packets)")
