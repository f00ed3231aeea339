"""Security profiles 1-3, identity checks and subprotocol selection (OCTT block A as seen from the CSMS)."""
from __future__ import annotations

import asyncio
import base64
import ssl

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from csms_helpers import PASSWORD


def raw_handshake(url, *, subprotocols=("ocpp2.0.1",), user=None, password=None, ssl_ctx=None):
    """Open a WebSocket like a station would; return (status, body or subprotocol)."""
    async def go():
        headers = {}
        if user is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        try:
            async with connect(url, subprotocols=list(subprotocols) or None, additional_headers=headers,
                               ssl=ssl_ctx, open_timeout=5) as ws:
                return 101, ws.subprotocol
        except InvalidStatus as e:
            return e.response.status_code, e.response.body.decode()
    return asyncio.run(asyncio.wait_for(go(), 10))


def test_TC_A_01_CS_basic_auth_accepted_and_version_by_subprotocol(make_csms, make_station):
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    r = st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
    assert r["connected"] and r["subprotocol"] == "ocpp2.0.1" and r["boot_status"] == "Accepted"
    s = csms.wait_for_station("LAB-CS-001", 5)
    assert s.version == "2.0.1"
    boot = csms.expect("BootNotification", timeout=5)
    assert boot["chargingStation"]["vendorName"] == "v2g-bench"
    csms.expect("StatusNotification", where=lambda m: m["connectorStatus"] == "Available", timeout=5)
    csms.assert_conformant()


def test_subprotocol_preference_picks_2_1_when_offered_both(make_csms):
    csms = make_csms(security_profile=1, password=PASSWORD, ocpp_versions=["2.1", "2.0.1"])
    status, sub = raw_handshake(csms.url_for("CS1"), subprotocols=("ocpp2.0.1", "ocpp2.1"), user="CS1", password=PASSWORD)
    assert (status, sub) == (101, "ocpp2.1")


def test_no_subprotocol_offered_is_rejected_clearly(make_csms):
    csms = make_csms(security_profile=1, password=PASSWORD)
    status, body = raw_handshake(csms.url_for("CS1"), subprotocols=(), user="CS1", password=PASSWORD)
    assert status == 400 and "no OCPP subprotocol offered" in body
    ev = csms.connection_events[-1]
    assert ev.kind == "rejected" and ev.status == 400 and ev.station == "CS1"


def test_unsupported_subprotocol_is_rejected(make_csms):
    csms = make_csms(security_profile=1, password=PASSWORD, ocpp_versions=["2.0.1"])
    status, body = raw_handshake(csms.url_for("CS1"), subprotocols=("ocpp1.6", "ocpp2.1"), user="CS1", password=PASSWORD)
    assert status == 400 and "ocpp2.0.1" in body


@pytest.mark.parametrize("user,password,why", [
    (None, None, "requires HTTP Basic"),
    ("CS1", "wrong-password-9999", "wrong password"),
    ("OTHER", PASSWORD, "does not match the station identity"),
])
def test_basic_auth_refusals(make_csms, user, password, why):
    csms = make_csms(security_profile=1, password=PASSWORD)
    status, body = raw_handshake(csms.url_for("CS1"), user=user, password=password)
    assert status == 401 and why in body
    assert not csms.stations()


def test_unknown_station_identity_refused(make_csms):
    csms = make_csms(security_profile=1, stations={"CS1": PASSWORD})
    status, body = raw_handshake(csms.url_for("CS2"), user="CS2", password=PASSWORD)
    assert status == 404 and "unknown station identity" in body


def test_TC_A_04_CS_security_profile_2_tls_and_basic_auth(make_csms, make_station):
    csms = make_csms(security_profile=2, password=PASSWORD)
    assert csms.url.startswith("wss://")
    st = make_station(ocpp_version="2.1")
    r = st.op("station.connect", url=csms.url, security_profile=2, password=PASSWORD, ca_cert=str(csms.pki.ca_cert))
    assert r["connected"], r
    csms.expect("BootNotification", timeout=5)
    # plain TCP to the TLS port does not get a WebSocket
    with pytest.raises(Exception):
        raw_handshake(csms.url.replace("wss://", "ws://") + "/CS9", user="CS9", password=PASSWORD)


def test_TC_A_07_CS_security_profile_3_mutual_tls(make_csms, make_station):
    csms = make_csms(security_profile=3)
    cert, key = csms.pki.station_cert("LAB-CS-001")
    st = make_station(ocpp_version="2.0.1")
    r = st.op("station.connect", url=csms.url, security_profile=3, ca_cert=str(csms.pki.ca_cert),
              client_cert=str(cert), client_key=str(key))
    assert r["connected"], r
    assert csms.wait_for_station("LAB-CS-001", 5).version == "2.0.1"


def test_security_profile_3_certificate_cn_must_match_identity(make_csms):
    csms = make_csms(security_profile=3)
    ctx = csms.pki.client_context("SOMEONE-ELSE")
    status, body = raw_handshake(csms.url_for("CS1"), ssl_ctx=ctx)
    assert status == 403 and "does not match the station identity 'CS1'" in body


def test_security_profile_3_without_client_certificate_is_refused(make_csms):
    csms = make_csms(security_profile=3)
    ctx = csms.pki.client_context(None)
    with pytest.raises((ssl.SSLError, OSError, Exception)) as ei:
        raw_handshake(csms.url_for("CS1"), ssl_ctx=ctx)
    assert not isinstance(ei.value, AssertionError)
    assert not csms.stations()


def test_bad_config_is_a_clear_error(make_csms):
    from v2g_bench.errors import BenchError
    with pytest.raises(BenchError) as ei:
        make_csms(security_profile=5)
    assert "security_profile" in str(ei.value)
    with pytest.raises(BenchError) as ei:
        make_csms(security_profile=1, ocpp_versions=["1.6"])
    assert "ocpp_versions" in str(ei.value)
    with pytest.raises(BenchError, match="unknown CSMS option"):
        make_csms(prot=1)
