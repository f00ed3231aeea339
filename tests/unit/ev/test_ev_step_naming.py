"""The step a failed EV session names: the request the charger failed to answer, whatever came back."""
from v2g_bench.ev.emulator import _step
from v2g_bench.ev.trace import TraceEntry


def _e(direction, name):
    return TraceEntry(0.0, direction, name, 0x8001, "", "", None)


def test_no_exchange_is_sdp():
    assert _step([]).startswith("SDP")


def test_normal_end_is_the_last_message():
    assert _step([_e("tx", "SessionStopReq"), _e("rx", "SessionStopRes")]) == "SessionStopRes"


def test_undecodable_answer_names_the_request():
    assert _step([_e("tx", "DC_ChargeLoopReq"), _e("rx", "undecodable")]) == "DC_ChargeLoopReq (answer undecodable)"


def test_garbage_that_decodes_as_a_request_names_the_request_it_answered():
    # seen in CI: a random EXI body decoded as a DC_ChargeParameterDiscoveryReq
    step = _step([_e("tx", "DC_ChargeLoopReq"), _e("rx", "DC_ChargeParameterDiscoveryReq")])
    assert step == "DC_ChargeLoopReq (answered by a DC_ChargeParameterDiscoveryReq)"
