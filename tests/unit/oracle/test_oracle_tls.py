"""The oracle on TLS captures: a real OpenSSL TLS session (Python's ssl over memory BIOs, a client key log
written by OpenSSL itself) carries a -20 exchange; the capture is decrypted with the key log and judged like a
plain one. TLS 1.3 (the -20 suites) and TLS 1.2 (the -2 CBC-SHA256 suite with and without encrypt-then-MAC,
and GCM). Wrong or missing keys are reported, never turned into a wrong verdict."""
from __future__ import annotations

import datetime
import ssl

import pytest
from test_oracle import exchange, write_pcap

from v2g_bench.errors import BenchError

NO_ENCRYPT_THEN_MAC = 1 << 19          # SSL_OP_NO_ENCRYPT_THEN_MAC (OpenSSL 1.1.1+ / 3.x); not exposed by ssl


@pytest.fixture(scope="module")
def secc_cert(tmp_path_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = tmp_path_factory.mktemp("secc-cert")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SECC")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2)).sign(key, hashes.SHA256()))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return d / "cert.pem", d / "key.pem"


def tls_flights(frames, cert, keylog, *, tls12: bool = False, ciphers: str | None = None, etm: bool = True):
    """Run a TLS client (the EV) and server (the SECC) over memory BIOs; each V2GTP frame of `frames` is
    written by its side. -> [(t, direction, bytes on the wire)] in order (handshake flights first)."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(*cert)
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname, cctx.verify_mode = False, ssl.CERT_NONE
    cctx.keylog_filename = str(keylog)
    for ctx in (sctx, cctx):
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            if ciphers:
                ctx.set_ciphers(ciphers)
            if not etm:
                ctx.options |= NO_ENCRYPT_THEN_MAC
        else:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    bios = {k: ssl.MemoryBIO() for k in ("c_in", "c_out", "s_in", "s_out")}
    cli = cctx.wrap_bio(bios["c_in"], bios["c_out"])
    srv = sctx.wrap_bio(bios["s_in"], bios["s_out"], server_side=True)
    out, t = [], 999.8

    def move():
        nonlocal t
        for src, dst, d in (("c_out", "s_in", "ev->secc"), ("s_out", "c_in", "secc->ev")):
            data = bios[src].read()
            if data:
                t += 0.001
                out.append((t, d, data))
                bios[dst].write(data)

    for _ in range(20):
        done = 0
        for end in (cli, srv):
            try:
                end.do_handshake()
                done += 1
            except ssl.SSLWantReadError:
                pass
        move()
        if done == 2 and not any(bios[k].pending for k in bios):
            break
    for ft, d, frame in frames:
        (cli if d == "ev->secc" else srv).write(frame)
        data = bios["c_out" if d == "ev->secc" else "s_out"].read()
        out.append((max(ft, t + 0.0001), d, data))
        t = out[-1][0]
        bios["s_in" if d == "ev->secc" else "c_in"].write(data)
        reader = srv if d == "ev->secc" else cli
        got = reader.read(65536)
        assert got == frame
        move()                              # TLS 1.3 session tickets and the like
    return out


def capture(tmp_path, secc_cert, name="tls.pcap", late_s=0.0, **kw):
    frames, close = exchange(late_s=late_s)
    keylog = tmp_path / (name.replace(".pcap", ".keylog"))
    flights = tls_flights(frames, secc_cert, keylog, **kw)
    return write_pcap(tmp_path / name, flights, close), keylog


NAMES = ["supportedAppProtocolReq", "supportedAppProtocolRes", "SessionSetupReq", "SessionSetupRes",
         "ServiceDiscoveryReq", "ServiceDiscoveryRes", "SessionStopReq", "SessionStopRes"]


@pytest.mark.parametrize("kw,version", [
    ({}, "TLS 1.3"),
    ({"tls12": True, "ciphers": "ECDHE-ECDSA-AES128-SHA256"}, "TLS 1.2"),
    ({"tls12": True, "ciphers": "ECDHE-ECDSA-AES128-SHA256", "etm": False}, "TLS 1.2"),
    ({"tls12": True, "ciphers": "ECDHE-ECDSA-AES128-GCM-SHA256"}, "TLS 1.2"),
], ids=["tls13", "tls12-cbc-etm", "tls12-cbc-mte", "tls12-gcm"])
def test_tls_session_is_decrypted_with_the_key_log_beside_the_capture(tmp_path, secc_cert, kw, version):
    from v2g_bench.oracle import analyze

    pcap, _ = capture(tmp_path, secc_cert, **kw)       # tls.pcap + tls.keylog: found by name
    rep = analyze(pcap, tls_required_for_20=True)
    st = rep.capture.streams[0]
    assert st.tls and st.decrypted and st.tls_version == version, (st.tls_problem, rep.notes)
    assert [m.name for m in rep.messages] == NAMES
    assert rep.violations == [], [str(v) for v in rep.violations]   # -20 over TLS: V2G20-2356 satisfied
    res = rep.named("ServiceDiscoveryRes")[0]
    assert res.response_time_s == pytest.approx(0.02, abs=1e-6)      # timed by the segment on the wire


def test_a_late_response_inside_tls_is_found(tmp_path, secc_cert):
    from v2g_bench.oracle import analyze

    pcap, _ = capture(tmp_path, secc_cert, late_s=2.5)
    rep = analyze(pcap)
    v = next(v for v in rep.violations if v.rule == "response-time")
    assert "ServiceDiscoveryRes" in v.text and "2000 ms" in v.text


def test_without_keys_the_stream_is_reported_not_judged(tmp_path, secc_cert):
    from v2g_bench.oracle import analyze

    pcap, keylog = capture(tmp_path, secc_cert)
    keylog.unlink()
    rep = analyze(pcap)
    assert rep.messages == [] and rep.capture.streams[0].tls and not rep.capture.streams[0].decrypted
    assert any("no key log given" in n for n in rep.notes), rep.notes


def test_keys_of_another_session_are_named_not_used(tmp_path, secc_cert):
    from v2g_bench.oracle import analyze

    pcap, _ = capture(tmp_path, secc_cert, name="a.pcap")
    _, other = capture(tmp_path, secc_cert, name="b.pcap")
    rep = analyze(pcap, keylog=other)
    assert rep.messages == [] and "no TLS 1.3 secrets for client random" in rep.capture.streams[0].tls_problem


def test_wrong_secrets_do_not_authenticate(tmp_path, secc_cert):
    from v2g_bench.oracle import analyze

    pcap, keylog = capture(tmp_path, secc_cert)
    lines = keylog.read_text().splitlines()
    bad = [ln if ln.startswith("#") else " ".join(ln.split()[:2] + ["00" * (len(ln.split()[2]) // 2)])
           for ln in lines]
    keylog.write_text("\n".join(bad) + "\n")
    rep = analyze(pcap)
    assert rep.messages == [] and "does not authenticate" in rep.capture.streams[0].tls_problem


def test_a_broken_key_log_is_a_clear_error(tmp_path, secc_cert):
    from v2g_bench.oracle import analyze

    pcap, keylog = capture(tmp_path, secc_cert)
    keylog.write_text("CLIENT_RANDOM zz\n")
    with pytest.raises(BenchError, match="not a key log line"):
        analyze(pcap)


def test_wire_response_times_see_through_tls(tmp_path, secc_cert):
    from v2g_bench.conformance.wire import response_times

    pcap, _ = capture(tmp_path, secc_cert, late_s=0.3)
    times = response_times(pcap)
    assert len(times) == 4 and times[2] == pytest.approx(0.32, abs=1e-6)


def test_malformed_hellos_are_reported_not_a_crash():
    from v2g_bench.oracle.tls import KeyLog, decrypt

    client = bytes([22, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, 0xAB, 0xCD])          # a ClientHello cut short
    server = bytes([22, 3, 3, 0, 6, 2, 0, 0, 2, 3, 3])                       # a ServerHello with no random
    out = decrypt(client, server, KeyLog())
    assert out.problem and not out.chunks["c"] and not out.chunks["s"]
