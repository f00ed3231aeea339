"""A TLS 1.3 session of the EV emulator is judged from its capture: the EV logs the session's keys beside its
pcap (`<pcap>.keylog`), the oracle decrypts the stream with them and the wire response times exist - so the
-20 suite's performance-time verdicts also hold when the session runs over TLS, as on a real charger."""
from __future__ import annotations


def test_tls13_session_capture_is_decrypted_by_the_oracle(lab_wire, lab_ev, tmp_path):
    from v2g_bench.conformance.wire import response_times
    from v2g_bench.ev.model import Phase
    from v2g_bench.oracle import analyze

    lab_wire.wait_idle()
    lab_ev.model.soc = lab_wire.state()["soc"]
    cap = lab_ev.start_capture(tmp_path / "tls-session.pcap")
    try:
        res = lab_ev.run_session(protocol="ISO15118-20", service="DC_BPT", tls=True, auth="EIM",
                                 plan=[Phase(5000, 1.0)], timeout=60)
    finally:
        pcap = lab_ev.stop_capture(cap)
    assert res.passed, res.summary()
    keylog = tmp_path / "tls-session.keylog"
    assert keylog.is_file() and "CLIENT_TRAFFIC_SECRET_0" in keylog.read_text()
    rep = analyze(pcap)
    tls = [s for s in rep.capture.streams if s.tls]
    assert tls and tls[0].decrypted and tls[0].tls_version == "TLS 1.3", (rep.notes, tls and tls[0].tls_problem)
    names = [m.name for m in rep.messages]
    for want in ("SessionSetupRes", "AuthorizationRes", "DC_ChargeLoopRes", "SessionStopRes"):
        assert want in names, names
    assert not [v for v in rep.violations if v.rule in ("EXI", "V2GTP-header")], [str(v) for v in rep.violations]
    times = response_times(pcap)
    assert len(times) >= len(res.tx_names) - 1 and all(0 <= t < 2 for t in times), times
