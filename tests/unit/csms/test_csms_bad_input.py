"""Bad input both ways: what the CSMS does with broken frames from a station (and keeps serving the
others), and what the simulated station does with broken frames from the CSMS."""
from __future__ import annotations

import asyncio
import base64
import json

import pytest
from websockets.asyncio.client import connect

from csms_helpers import PASSWORD
from v2g_bench.errors import Nonconformance


def auth(sid):
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{PASSWORD}".encode()).decode()}


async def exchange(url, sid, frames, *, expect=None, version="ocpp2.0.1", timeout=3.0):
    """Send raw frames as station `sid`; collect answers until `expect` answers or the timeout."""
    answers, closed = [], None
    async with connect(f"{url}/{sid}", subprotocols=[version], additional_headers=auth(sid), max_size=None) as ws:
        for f in frames:
            await ws.send(f)
        try:
            while expect is None or len(answers) < expect:
                answers.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
        except asyncio.TimeoutError:
            pass
        except Exception as e:                 # connection closed by the CSMS
            closed = f"{type(e).__name__}: {getattr(ws, 'close_code', None)} {getattr(ws, 'close_reason', '')}"
    return answers, closed


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


@pytest.fixture
def csms(make_csms):
    return make_csms(security_profile=1, password=PASSWORD, max_frame_bytes=65536)


CASES = [
    ("malformed_json", '[2,"m1","Heartbeat",{', "-1", "RpcFrameworkError"),
    ("not_an_array", '{"id": "m2"}', "-1", "RpcFrameworkError"),
    ("unknown_message_type", '[9,"m3","Heartbeat",{}]', "m3", "MessageTypeNotSupported"),
    ("unknown_action", '[2,"m4","SelfDestruct",{}]', "m4", "NotImplemented"),
    ("wrong_type", json.dumps([2, "m5", "StatusNotification", {"timestamp": "2030-01-01T00:00:00Z",
                                                               "connectorStatus": "Available", "evseId": "one",
                                                               "connectorId": 1}]), "m5", "TypeConstraintViolation"),
    ("missing_field", json.dumps([2, "m6", "BootNotification", {"reason": "PowerUp"}]), "m6",
     "OccurrenceConstraintViolation"),
    ("bad_enum", json.dumps([2, "m7", "BootNotification", {"reason": "Bored", "chargingStation": {
        "model": "m", "vendorName": "v"}}]), "m7", "PropertyConstraintViolation"),
    ("bad_timestamp", json.dumps([2, "m8", "StatusNotification", {"timestamp": "yesterday",
                                                                  "connectorStatus": "Available", "evseId": 1,
                                                                  "connectorId": 1}]), "m8",
     "PropertyConstraintViolation"),
]


@pytest.mark.parametrize("name,frame,uid,code", CASES, ids=[c[0] for c in CASES])
def test_invalid_station_frame_gets_callerror_and_fails_the_test(csms, name, frame, uid, code):
    answers, closed = run(exchange(csms.url, "CS-BAD", [frame], expect=1))
    assert closed is None and answers and answers[0][:3] == [4, uid, code], (answers, closed)
    with pytest.raises(Nonconformance) as ei:      # the violation fails the test, showing the frame
        csms.assert_conformant()
    assert frame[:40] in str(ei.value)
    bad = [f for f in csms.frames if f.problems]
    assert len(bad) == 1 and bad[0].raw == frame


def test_duplicate_message_id_not_processed_twice(csms):
    boot = json.dumps([2, "dup-1", "BootNotification", {"reason": "PowerUp", "chargingStation": {
        "model": "m", "vendorName": "v"}}])
    answers, _ = run(exchange(csms.url, "CS-DUP", [boot, boot], expect=2))
    assert answers[0][0] == 3 and answers[1][:3] == [4, "dup-1", "RpcFrameworkError"]
    assert len(csms.take_violations()) == 1


def test_oversized_frame_closes_with_1009_and_others_keep_being_served(csms, make_station):
    st = make_station(ocpp_version="2.0.1")
    st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
    csms.wait_for_station("LAB-CS-001", 5)
    big = json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * 200_000}])
    answers, closed = run(exchange(csms.url, "CS-BIG", [big], timeout=3))
    assert answers == [] and closed is not None
    assert "1009" in csms.wait_for_disconnect("CS-BIG", 5)     # "message too big"
    # a dropped connection in the middle of a CALL: abort the TCP stream
    async def drop():
        async with connect(f"{csms.url}/CS-DROP", subprotocols=["ocpp2.0.1"], additional_headers=auth("CS-DROP")) as ws:
            await ws.send('[2,"d1","Heartbeat",{}]')
            ws.transport.abort()
    run(drop())
    assert "without a close frame" in csms.wait_for_disconnect("CS-DROP", 5)
    # meanwhile the lab station is still served: a full round trip each way
    assert csms.trigger_message("Heartbeat", station="LAB-CS-001")["status"] == "Accepted"
    csms.expect("Heartbeat", station="LAB-CS-001", timeout=5)
    csms.assert_conformant()


@pytest.mark.parametrize("kind,codes", [
    ("malformed_json", ["RpcFrameworkError"]),
    ("unknown_message_type", ["MessageTypeNotSupported"]),
    ("unknown_action", ["NotImplemented"]),
    ("wrong_type", ["TypeConstraintViolation", "FormatViolation"]),
    ("missing_field", ["OccurrenceConstraintViolation", "ProtocolError"]),   # ocpp lib: ProtocolError
])
def test_csms_sends_invalid_frames_station_answers(make_csms, make_station, kind, codes):
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
    csms.wait_for_station("LAB-CS-001", 5)
    out = csms.send_invalid(kind, timeout=3)
    print(out.report())
    assert out.error_codes and out.error_codes[0] in codes, out.report()
    assert not out.connection_closed
    csms.assert_conformant()


def test_csms_duplicate_id_to_station_is_reported(make_csms, make_station):
    csms = make_csms(security_profile=1, password=PASSWORD)
    st = make_station(ocpp_version="2.0.1")
    st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
    csms.wait_for_station("LAB-CS-001", 5)
    out = csms.send_invalid("duplicate_id", timeout=2)
    print(out.report())
    # the library-based station answers both (it does not track ids): we report what happened
    assert len(out.answers) in (1, 2) and "duplicate_id" in out.report()
