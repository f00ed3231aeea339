"""Strict decoder (what the conformance checks use) and the hardened decoder under garbage."""
from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2g_bench.errors import BenchError
from v2g_bench.exi.codec import decode, encode, get_grammar
from v2g_bench.exi.errors import EXIDecodeError
from v2g_bench.exi.randmsg import MessageGenerator

HDR = {"SessionID": "AAAAAAAAAAAAAAAA", "TimeStamp": 1700000000}


def _loop_req(soc):
    return {"DC_ChargeLoopReq": {
        "Header": HDR, "DisplayParameters": {"PresentSOC": soc}, "MeterInfoRequested": False,
        "EVPresentVoltage": {"Exponent": 0, "Value": 400},
        "Scheduled_DC_CLReqControlMode": {"EVTargetCurrent": {"Exponent": 0, "Value": 10},
                                          "EVTargetVoltage": {"Exponent": 0, "Value": 400}}}}


def test_exi_strict_rejects_value_outside_facet_with_path_and_position():
    stream = encode(_loop_req(101), "iso20_dc")          # the jar-compatible untyped fallback
    assert decode(stream, "iso20_dc")["DC_ChargeLoopReq"]["DisplayParameters"]["PresentSOC"] == 101
    with pytest.raises(EXIDecodeError) as ei:
        decode(stream, "iso20_dc", strict=True)
    e = ei.value
    assert isinstance(e, BenchError)
    assert e.path == "/DC_ChargeLoopReq/DisplayParameters/PresentSOC"
    assert e.got == "101" and "nbit" in e.expected
    assert e.position == 141  # bit offset of the escape event code
    assert "bit 141" in str(e)


def test_exi_strict_rejects_empty_value_trailing_bytes_and_length_violation():
    empty = encode({"SessionSetupReq": {"Header": HDR, "EVCCID": ""}}, "iso20_common")
    with pytest.raises(EXIDecodeError) as ei:
        decode(empty, "iso20_common", strict=True)
    assert ei.value.path == "/SessionSetupReq/EVCCID" and "second-level EE" in ei.value.what

    ok = encode({"SessionSetupReq": {"Header": HDR, "EVCCID": "WMIV1234567890ABCDEX"}}, "iso20_common")
    assert decode(ok, "iso20_common", strict=True)["SessionSetupReq"]["EVCCID"] == "WMIV1234567890ABCDEX"
    with pytest.raises(EXIDecodeError) as ei:
        decode(ok + b"\x00", "iso20_common", strict=True)
    assert "trailing" in ei.value.what and len(ok) * 8 - 8 < ei.value.position < len(ok) * 8
    assert decode(ok + b"\x00", "iso20_common")  # lenient, like the jar: trailing bytes ignored

    # identifierType has maxLength 255: the jar does not enforce length facets, strict does
    long_id = encode({"SessionSetupReq": {"Header": HDR, "EVCCID": "A" * 256}}, "iso20_common")
    with pytest.raises(EXIDecodeError) as ei:
        decode(long_id, "iso20_common", strict=True)
    assert ei.value.path == "/SessionSetupReq/EVCCID" and ei.value.got == 256


def test_exi_wrong_schema_and_bad_header_are_typed_errors():
    ok = encode({"SessionSetupReq": {"Header": HDR, "EVCCID": "X"}}, "iso20_common")
    with pytest.raises(EXIDecodeError) as ei:
        decode(b"\x81" + ok[1:], "iso20_common")
    assert ei.value.position == 0 and ei.value.expected == "0x80"
    with pytest.raises(EXIDecodeError) as ei:
        decode(ok[:-3], "iso20_common")
    assert "truncated" in ei.value.what and ei.value.path.startswith("/SessionSetupReq")
    with pytest.raises(EXIDecodeError):
        decode(ok, "iso20_dc", strict=True)   # SessionSetupReq's code means another root there


GRAMMAR = get_grammar("iso20_dc")
GEN = MessageGenerator(GRAMMAR)
VALID = [encode(GEN.random(random.Random(i)), "iso20_dc") for i in range(40)]


def _decode_bounded(data: bytes, strict: bool) -> None:
    t0 = time.monotonic()
    try:
        decode(data, "iso20_dc", strict=strict)
    except EXIDecodeError as exc:
        assert exc.position >= 0 and exc.path.startswith("/")
    assert time.monotonic() - t0 < 0.5, "decoder too slow on bad input"


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=600), strict=st.booleans())
def test_exi_fuzz_random_bytes_give_typed_errors_quickly(data, strict):
    _decode_bounded(b"\x80" + data, strict)
    _decode_bounded(data, strict)


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(idx=st.integers(0, len(VALID) - 1), flips=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
       cut=st.integers(0, 10**6), strict=st.booleans())
def test_exi_fuzz_mutated_streams_give_typed_errors_quickly(idx, flips, cut, strict):
    b = bytearray(VALID[idx])
    for f in flips:
        pos = f % (len(b) * 8)
        b[pos // 8] ^= 0x80 >> (pos % 8)
    _decode_bounded(bytes(b), strict)
    _decode_bounded(bytes(b[: cut % (len(b) + 1)]), strict)


def test_exi_oversized_length_is_capped_without_allocation():
    # a hexBinary SessionID claiming 2**60 bytes must fail on the cap, not try to allocate
    w = bytearray(b"\x80")
    stream = bytes.fromhex("8034") + bytes([0x04 | 0x03]) + b"\xff" * 9 + b"\x01"
    t0 = time.monotonic()
    with pytest.raises(EXIDecodeError) as ei:
        decode(stream, "iso20_dc")
    assert time.monotonic() - t0 < 0.1
    assert ei.value.path.startswith("/DC_ChargeLoopReq/Header")
    del w
