"""The oracle on crafted captures: real pcap files written by scapy (IPv6 link-local, SDP over UDP 15118, V2GTP
over TCP), messages encoded by our own EXI codec. Each test breaks one thing and checks the oracle names it with
its requirement ID (and the bit position for EXI), and that a clean capture has no finding."""
from __future__ import annotations

import copy
import json
import struct

import pytest

SECC, EV = "fe80::1", "fe80::2"
SECC_PORT, EV_PORT = 61000, 50123
SID = "56A9C819C895E992"
NS20DC = "urn:iso:std:iso:15118:-20:DC"

SAP_REQ = {"supportedAppProtocolReq": {"AppProtocol": [{"ProtocolNamespace": NS20DC, "VersionNumberMajor": 1,
                                                        "VersionNumberMinor": 0, "SchemaID": 1, "Priority": 1}]}}
SAP_RES = {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 1}}
SS_REQ = {"SessionSetupReq": {"Header": {"SessionID": "0000000000000000", "TimeStamp": 1796011688},
                              "EVCCID": "WMIV1234567890ABCDEX"}}
SS_RES = {"SessionSetupRes": {"Header": {"SessionID": SID, "TimeStamp": 1796011688},
                              "ResponseCode": "OK_NewSessionEstablished", "EVSEID": "UK123E1234"}}
SD_REQ = {"ServiceDiscoveryReq": {"Header": {"SessionID": SID, "TimeStamp": 1796012115}}}
SD_RES = {"ServiceDiscoveryRes": {"Header": {"SessionID": SID, "TimeStamp": 1796012115}, "ResponseCode": "OK",
                                  "ServiceRenegotiationSupported": False,
                                  "EnergyTransferServiceList": {"Service": [{"ServiceID": 2, "FreeService": False}]}}}
STOP_REQ = {"SessionStopReq": {"Header": {"SessionID": SID, "TimeStamp": 1796012125}, "ChargingSession": "Terminate"}}
STOP_RES = {"SessionStopRes": {"Header": {"SessionID": SID, "TimeStamp": 1796012126}, "ResponseCode": "OK"}}


def v2gtp(payload: bytes, ptype: int, version: int = 1, inverse: int = 0xFE) -> bytes:
    return struct.pack(">BBHI", version, inverse, ptype, len(payload)) + payload


def exi(msg: dict, schema: str) -> bytes:
    from v2g_bench.exi.codec import encode
    return encode(msg, schema)


def exchange(*, sd_res=None, sd_req=None, late_s=0.0, stop_res=None, close_by="secc", close_after=0.05):
    """[(t, direction, frame bytes)] of a short -20 session (SAP, SessionSetup, ServiceDiscovery, SessionStop)."""
    t = 1000.0
    steps = [(SAP_REQ, "appprotocol", 0x8001), (SAP_RES, "appprotocol", 0x8001),
             (SS_REQ, "iso20_common", 0x8002), (SS_RES, "iso20_common", 0x8002),
             (sd_req or SD_REQ, "iso20_common", 0x8002), (sd_res or SD_RES, "iso20_common", 0x8002),
             (STOP_REQ, "iso20_common", 0x8002), (stop_res or STOP_RES, "iso20_common", 0x8002)]
    out = []
    for i, (msg, schema, pt) in enumerate(steps):
        t += 0.02 if i % 2 else 0.01
        if i == 5:
            t += late_s
        frame = msg if isinstance(msg, bytes) else v2gtp(exi(msg, schema), pt)
        out.append((t, "ev->secc" if i % 2 == 0 else "secc->ev", frame))
    return out, (t + close_after, close_by) if close_by else None


def write_pcap(path, frames, close=None, *, sdp=True, slac=0, segments=None):
    """A capture: SDP request/response, the TCP handshake, the frames (one segment each, or `segments`), a FIN."""
    from scapy.all import Ether, IPv6, Raw, TCP, UDP, wrpcap

    pkts = []

    def add(t, p):
        p.time = t
        pkts.append(p)
    eth = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
    for k in range(slac):
        add(999.0 + k * 0.001, Ether(src="02:00:00:00:00:02", dst="ff:ff:ff:ff:ff:ff", type=0x88E1) / Raw(b"\x01" * 40))
    if sdp:
        add(999.5, eth / IPv6(src=EV, dst="ff02::1") / UDP(sport=EV_PORT + 1, dport=15118) /
            Raw(v2gtp(b"\x10\x00", 0x9000)))
        body = bytes.fromhex("fe800000000000000000000000000001") + SECC_PORT.to_bytes(2, "big") + b"\x10\x00"
        add(999.6, eth / IPv6(src=SECC, dst=EV) / UDP(sport=15118, dport=EV_PORT + 1) / Raw(v2gtp(body, 0x9001)))
    seq = {"ev->secc": 1000, "secc->ev": 5000}
    add(999.7, eth / IPv6(src=EV, dst=SECC) / TCP(sport=EV_PORT, dport=SECC_PORT, flags="S", seq=seq["ev->secc"] - 1))
    add(999.71, eth / IPv6(src=SECC, dst=EV) / TCP(sport=SECC_PORT, dport=EV_PORT, flags="SA", seq=seq["secc->ev"] - 1))
    for t, d, frame in frames:
        src, dst, sp, dp = (EV, SECC, EV_PORT, SECC_PORT) if d == "ev->secc" else (SECC, EV, SECC_PORT, EV_PORT)
        parts = segments(frame) if segments else [(0, frame)]       # (offset in the frame, bytes)
        for k, (off, part) in enumerate(parts):
            add(t + k * 0.001, eth / IPv6(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags="PA", seq=seq[d] + off) /
                Raw(part))
        seq[d] += len(frame)
    if close:
        t, who = close
        d = "secc->ev" if who == "secc" else "ev->secc"
        src, dst, sp, dp = (EV, SECC, EV_PORT, SECC_PORT) if d == "ev->secc" else (SECC, EV, SECC_PORT, EV_PORT)
        add(t, eth / IPv6(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags="FA", seq=seq[d]))
    pkts.sort(key=lambda p: p.time)
    wrpcap(str(path), pkts)
    return path


def run(tmp_path, name="c.pcap", **kw):
    from v2g_bench.oracle import analyze
    frames, close = exchange(**{k: v for k, v in kw.items() if k in ("sd_res", "sd_req", "late_s", "stop_res",
                                                                     "close_by", "close_after")})
    p = write_pcap(tmp_path / name, frames, close, **{k: v for k, v in kw.items() if k in ("sdp", "slac", "segments")})
    return analyze(p, tls_required_for_20=kw.get("tls_required", False), trace=kw.get("trace"))


def rules(rep):
    return sorted({v.rule for v in rep.violations})


def test_a_clean_session_has_no_finding(tmp_path):
    rep = run(tmp_path, slac=3)
    names = [m.name for m in rep.messages]
    assert names == ["supportedAppProtocolReq", "supportedAppProtocolRes", "SessionSetupReq", "SessionSetupRes",
                     "ServiceDiscoveryReq", "ServiceDiscoveryRes", "SessionStopReq", "SessionStopRes"]
    assert rep.violations == [], [str(v) for v in rep.violations]
    assert rep.capture.slac_frames == 3 and len(rep.capture.sdp) == 2
    res = rep.named("ServiceDiscoveryRes")[0]
    assert res.response_time_s == pytest.approx(0.02, abs=1e-6) and res.limit.seconds == 2.0


def test_segments_split_reordered_and_retransmitted_are_reassembled(tmp_path):
    def segments(frame):          # three parts, the last before the middle one, the middle one twice
        if len(frame) <= 9:
            return [(0, frame)]
        return [(0, frame[:5]), (9, frame[9:]), (5, frame[5:9]), (5, frame[5:9])]
    rep = run(tmp_path, segments=segments)
    assert [m.name for m in rep.messages][-1] == "SessionStopRes"
    assert rep.violations == []


def test_an_invalid_exi_frame_names_the_bit_position(tmp_path):
    bad = bytearray(v2gtp(exi(SD_RES, "iso20_common"), 0x8002))
    bad[8 + 17] ^= 0xFF                                   # EXI byte 17: ResponseCode no longer decodes
    rep = run(tmp_path, sd_res=bytes(bad))
    v = next(v for v in rep.violations if v.rule == "EXI-strict")
    assert v.req == "V2G20-736" and v.bit == 136 and "ResponseCode" in v.text


def test_unknown_session_answered_ok_is_a_violation(tmp_path):
    req = copy.deepcopy(SD_REQ)
    req["ServiceDiscoveryReq"]["Header"]["SessionID"] = "DEADBEEF00000000"
    rep = run(tmp_path, sd_req=req)
    assert "unknown-session" in rules(rep)
    assert next(v for v in rep.violations if v.rule == "unknown-session").req == "V2G20-460"


def test_unknown_session_answered_failed_is_fine_and_tcp_must_close(tmp_path):
    req = copy.deepcopy(SD_REQ)
    req["ServiceDiscoveryReq"]["Header"]["SessionID"] = "DEADBEEF00000000"
    res = copy.deepcopy(SD_RES)
    res["ServiceDiscoveryRes"]["ResponseCode"] = "FAILED_UnknownSession"
    rep = run(tmp_path, sd_req=req, sd_res=res, close_by=None)
    assert "unknown-session" not in rules(rep)
    # the SECC then answered SessionStop after its final FAILED response and never closed TCP
    assert {"after-final", "tcp-close"} <= set(rules(rep))


def test_a_late_response_is_judged_from_wire_timestamps(tmp_path):
    rep = run(tmp_path, late_s=2.5)
    v = next(v for v in rep.violations if v.rule == "response-time")
    assert "ServiceDiscoveryRes" in v.text and "2000 ms" in v.text


def test_a_bad_v2gtp_header_from_the_secc(tmp_path):
    frame = v2gtp(exi(SD_RES, "iso20_common"), 0x8002, version=2, inverse=0xFD)
    rep = run(tmp_path, sd_res=frame)
    assert "V2GTP-header" in rules(rep)


def test_session_id_zero(tmp_path):
    from v2g_bench.oracle import analyze
    res = copy.deepcopy(SS_RES)
    res["SessionSetupRes"]["Header"]["SessionID"] = "0000000000000000"
    frames, close = exchange()
    frames[3] = (frames[3][0], "secc->ev", v2gtp(exi(res, "iso20_common"), 0x8002))
    rep = analyze(write_pcap(tmp_path / "z.pcap", frames, close), tls_required_for_20=False)
    assert "session-id-zero" in rules(rep)


def test_20_over_plain_tcp_when_tls_is_required(tmp_path):
    rep = run(tmp_path, tls_required=True)
    assert next(v for v in rep.violations if v.rule == "-20-without-TLS").req == "V2G20-2356"


def test_trace_that_disagrees_with_the_oracle(tmp_path):
    frames, close = exchange()
    res_frame = frames[5][2]
    wrong = copy.deepcopy(SD_RES)
    wrong["ServiceDiscoveryRes"]["ResponseCode"] = "FAILED"
    trace = [{"dir": "rx", "name": "ServiceDiscoveryRes", "exi": res_frame[8:].hex(), "decoded": wrong}]
    rep = run(tmp_path, trace=trace)
    v = next(v for v in rep.violations if v.rule == "oracle-vs-emulator")
    assert "ResponseCode" in v.text


def test_cli_exit_codes(tmp_path):
    from typer.testing import CliRunner

    from v2g_bench.oracle.cli import app
    frames, close = exchange()
    good = write_pcap(tmp_path / "good.pcap", frames, close)
    r = CliRunner().invoke(app, [str(good), "--allow-20-without-tls", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["messages"][-1]["name"] == "SessionStopRes"
    r = CliRunner().invoke(app, [str(good)])             # -20 over TCP is flagged by default
    assert r.exit_code == 1 and "V2G20-2356" in r.output
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    r = CliRunner().invoke(app, [str(junk)])
    assert r.exit_code == 2 and "error" in r.output


def test_the_first_secc_reply_with_a_bad_header_is_judged_not_dropped(tmp_path):
    from v2g_bench.oracle import analyze
    frames, close = exchange()
    t, d, frame = frames[1]                               # the SupportedAppProtocolRes
    frames[1] = (t, d, bytes([0x02, 0xFD]) + frame[2:])
    rep = analyze(write_pcap(tmp_path / "h.pcap", frames, close), tls_required_for_20=False)
    assert "V2GTP-header" in rules(rep)
