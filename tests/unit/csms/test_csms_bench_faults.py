"""The CSMS emulator's bench-fault channel (issue 16): a station the BENCH keeps away from the CSMS (it cut the
network, or its own credentials/certificate are wrong) gives a BenchError naming the reason — error, not failed;
only a genuine charger fault is a Nonconformance. Each pair: the bench-side cause, then the station-side one."""
from __future__ import annotations

import pytest

from v2g_bench.csms.emulator import CSMSEmulator
from v2g_bench.errors import BenchError, Nonconformance

PASSWORD = "bench-password-0123"
OTHER = "another-password-4567"
STATION = "LAB-CS-001"


def _connected(csms, st, **kw):
    r = st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD, timeout_s=5, **kw)
    assert r["connected"], r
    csms.expect("BootNotification", timeout=5)


def test_network_cut_by_the_bench_is_an_error_not_a_nonconformance(make_csms, make_station):
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    _connected(csms, st)
    with csms.bench_fault("the bench cut the station's network"):
        st.op("station.cut_network")
        csms.wait_for_disconnect(STATION, 5)
        with pytest.raises(BenchError) as ei:
            csms.wait_for_station(STATION, timeout=1.0)
        assert "not the charger's fault: the bench cut the station's network" in str(ei.value)
        with pytest.raises(BenchError, match="bench cut"):
            csms.expect("Heartbeat", timeout=0.5)
    assert not isinstance(ei.value, Nonconformance)
    # once the bench fault has ended, the same silence is the station's
    with pytest.raises(Nonconformance) as ei:
        csms.wait_for_station(STATION, timeout=0.5)
    assert "not the charger's fault" not in str(ei.value)


def test_station_that_goes_away_by_itself_is_a_nonconformance(make_csms, make_station):
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    _connected(csms, st)
    st.op("station.disconnect")
    csms.wait_for_disconnect(STATION, 5)
    with pytest.raises(Nonconformance, match="did not connect"):
        csms.wait_for_station(STATION, timeout=1.0)


def test_csms_refusing_the_password_the_bench_provisioned_is_a_bench_error(make_csms, make_station):
    csms = make_csms(security_profile=1, password=PASSWORD)
    csms.provisioned(STATION, password=OTHER)           # the bench gave the station another password
    st = make_station(ocpp_version="2.0.1")
    r = st.op("station.connect", url=csms.url, security_profile=1, password=OTHER, timeout_s=5, reconnect=False)
    assert not r["connected"]
    ev = [e for e in csms.connection_events if e.kind == "rejected"][-1]
    assert ev.side == "bench" and "bench misconfiguration" in ev.detail
    with pytest.raises(BenchError, match="bench misconfiguration"):
        csms.wait_for_station(STATION, timeout=0.5)


def test_station_sending_a_password_it_was_not_given_is_a_nonconformance(make_csms, make_station):
    csms = make_csms(security_profile=1, password=PASSWORD)
    csms.provisioned(STATION, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    r = st.op("station.connect", url=csms.url, security_profile=1, password=OTHER, timeout_s=5, reconnect=False)
    assert not r["connected"]
    assert [e for e in csms.connection_events if e.kind == "rejected"][-1].side == "station"
    with pytest.raises(Nonconformance, match="wrong password"):
        csms.wait_for_station(STATION, timeout=0.5)


def test_tls_refused_because_the_csms_certificate_expired_is_a_bench_error(tmp_path, make_station):
    from v2g_bench.csms.pki import TestPKI
    pki = TestPKI.create(tmp_path / "pki")
    cert, key = pki.expired_server_cert()
    csms = CSMSEmulator({"security_profile": 2, "password": PASSWORD, "tls_cert": str(cert), "tls_key": str(key),
                         "record_path": str(tmp_path / "frames.jsonl")}).start()
    try:
        st = make_station(ocpp_version="2.0.1")
        r = st.op("station.connect", url=csms.url, security_profile=2, password=PASSWORD, ca_cert=str(pki.ca_cert),
                  timeout_s=5, reconnect=False)
        assert not r["connected"] and "certificate has expired" in r["error"]     # the station does right
        with pytest.raises(BenchError) as ei:
            csms.wait_for_station(STATION, timeout=2.0)
        assert "TLS handshake" in str(ei.value) and "refuses the CSMS's own certificate" in str(ei.value) \
            and "expired on" in str(ei.value)
    finally:
        csms.close()


def test_tls_refused_because_the_station_certificate_expired_is_a_nonconformance(make_csms, make_station):
    csms = make_csms(security_profile=3)
    cert, key = csms.pki.station_cert(STATION, expired=True)
    st = make_station(ocpp_version="2.0.1")
    r = st.op("station.connect", url=csms.url, security_profile=3, ca_cert=str(csms.pki.ca_cert),
              client_cert=str(cert), client_key=str(key), timeout_s=5, reconnect=False)
    assert not r["connected"]
    with pytest.raises(Nonconformance) as ei:
        csms.wait_for_station(STATION, timeout=2.0)
    assert "TLS handshake failed" in str(ei.value) and "certificate has expired" in str(ei.value)


def test_reboot_nobody_asked_for_is_a_nonconformance_and_one_the_bench_caused_an_error(make_csms, make_station):
    import time
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    _connected(csms, st)
    t0 = time.monotonic()
    csms.assert_no_reboot(t0)                                  # nothing yet
    with csms.bench_fault("the bench cycled the station's supply"):
        st.op("station.power_cycle")
        csms.expect("BootNotification", timeout=10)
    with pytest.raises(BenchError, match="cycled the station's supply"):
        csms.assert_no_reboot(t0)
    # the same reboot with no cause on the bench's side (a fresh pair: one reboot each)
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    _connected(csms, st)
    t1 = time.monotonic()
    st.op("station.power_cycle")
    csms.expect("BootNotification", timeout=10)
    with pytest.raises(Nonconformance, match="rebooted during the case without being asked"):
        csms.assert_no_reboot(t1)


def test_station_clock_jump_fails_a_bench_clock_step_is_inconclusive(make_csms, make_station, monkeypatch):
    import datetime as dt

    from v2g_bench.csms import recording
    from v2g_bench.csms.ocpp_time import ocpp_time, utc_now
    from v2g_bench.errors import Inconclusive
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    try:
        _connected(csms, st)
        st.op("station.start_transaction")
        started = csms.expect("TransactionEvent", lambda m: m["eventType"] == "Started", timeout=5)
        assert abs(csms.judge_station_clock(started)) < 5.0
        assert st.op("station.clock_step", dt_s=-600.0) == {"clock_offset_s": -600.0}
        with pytest.raises(BenchError, match="finite number"):
            st.op("station.clock_step", dt_s=float("nan"))
        updated = csms.expect("TransactionEvent", lambda m: m["eventType"] == "Updated", timeout=5)
        with pytest.raises(Nonconformance, match="clock is -600.0 s off"):
            csms.judge_station_clock(updated)
    finally:
        st.op("station.clear")                                  # the station's clock is right again
    # a fresh pair: now the BENCH's wall clock steps back 10 min while the station's is right
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    _connected(csms, st)
    monkeypatch.setattr(recording, "utc_now_iso", lambda: ocpp_time(utc_now() + dt.timedelta(seconds=-600)))
    st.op("station.start_transaction")
    frame = csms.expect("TransactionEvent", lambda m: m["eventType"] == "Started", timeout=5)
    with pytest.raises(Inconclusive, match="bench's wall clock stepped by -600"):
        csms.judge_station_clock(frame)


def test_dut_action_cut_network_declares_a_bench_fault_until_restore(make_csms, monkeypatch):
    """The OCPP step dut_action("cut_network") opens a bench fault on the CSMS; restore_network ends it."""
    import types

    from v2g_bench.conformance import ocpp as ocpp_steps
    csms = make_csms(security_profile=1, password=PASSWORD)
    done = []
    monkeypatch.setattr(ocpp_steps, "_action_performer", lambda ctx: lambda name, *a, **k: done.append(name))
    ctx = types.SimpleNamespace(vars={}, csms=csms, has_role=lambda r: r == "csms", resolve=lambda x: x,
                                attach=lambda *a: None, last_wire_t=0.0)
    ocpp_steps.dut_action("cut_network").run(ctx)
    with pytest.raises(BenchError, match="the test cut the station's network"):
        csms.wait_for_station(STATION, timeout=0.3)
    ocpp_steps.dut_action("restore_network").run(ctx)
    with pytest.raises(Nonconformance):
        csms.wait_for_station(STATION, timeout=0.3)
    assert done == ["cut_network", "restore_network"] and "_network_cut" not in ctx.vars
