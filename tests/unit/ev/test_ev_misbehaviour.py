"""Misbehaviour on demand against the SECC inside the lab process (-20 DC_BPT): one call each, the
SECC's observable reaction asserted (its response code, the connection it closed, its sequence
timeout - 4 s in this lab, see conftest), and the harness never hangs (every run is time-boxed)."""
from __future__ import annotations

import time


TIMEOUT = 20.0           # session bound given to the EV
HARD_BOUND = TIMEOUT + 5  # the harness must return within this, whatever the SECC does


def _run(lab_wire, ev, kind, at, nth=1, **params):
    """One -20 DC_BPT session with one armed misbehaviour; returns (result, trace rows, the SECC's own
    (state, reason) for how the session ended, wall time)."""
    from v2g_bench.ev.model import Phase
    from v2g_bench.ev.trace import Trace

    lab_wire.wait_idle()
    ended0 = lab_wire.secc_status()["sessions_ended_count"]
    ev.model.soc = lab_wire.state()["soc"]
    ev.misbehave(kind, at=at, nth=nth, **params)
    t = time.monotonic()
    res = ev.run_session(protocol="ISO15118-20", service="DC_BPT", plan=[Phase(3000, 1.5)], timeout=TIMEOUT)
    wall = time.monotonic() - t
    assert wall < HARD_BOUND, f"harness took {wall:.1f} s"
    assert ev.injector.fired and ev.injector.fired[-1].kind.value == kind, "misbehaviour never fired"
    rows = Trace.load(res.trace_path)
    # the SECC's own view of how the session ended (lab control port); bounded wait
    end = time.monotonic() + 8
    status = lab_wire.secc_status()
    while status["sessions_ended_count"] <= ended0 and time.monotonic() < end:
        time.sleep(0.1)
        status = lab_wire.secc_status()
    assert status["sessions_ended_count"] == ended0 + 1, status
    st = lab_wire.wait_idle()
    assert not st["contactor_closed"] and st["setpoint_w"] == 0.0, st      # the DUT ended safe
    return res, rows, tuple(status["sessions_ended"][-1]), wall


def _rx(rows, name):
    return [r["decoded"][name].get("ResponseCode") for r in rows
            if r.get("dir") == "rx" and r.get("name") == name and isinstance(r.get("decoded"), dict)]


def _tx_index(rows, note_part):
    return next(i for i, r in enumerate(rows) if r.get("dir") == "tx" and note_part in r.get("note", ""))


def test_delay_below_the_secc_timeout_is_tolerated(lab_wire, lab_ev):
    res, rows, (state, reason), _ = _run(lab_wire, lab_ev, "delay", "DC_ChargeLoopReq", 2, seconds=1.0)
    assert res.passed, res.summary()
    i = _tx_index(rows, "misbehaviour delay")
    assert rows[i]["t"] - rows[i - 2]["t"] >= 1.0          # the request really left >= 1 s late
    assert rows[i + 1]["dir"] == "rx" and rows[i + 1]["name"] == "DC_ChargeLoopRes"
    assert state == "SessionStop", (state, reason)


def test_delay_beyond_the_secc_sequence_timeout_ends_the_session(lab_wire, lab_ev):
    res, rows, (state, reason), _ = _run(lab_wire, lab_ev, "delay", "DC_ChargeLoopReq", 2, seconds=6.0)
    assert not res.passed and res.step == "DC_ChargeLoopReq", res.summary()
    assert state == "DCChargeLoop" and reason.startswith("TimeoutError") and "4.0 s" in reason, reason
    assert _rx(rows, "DC_ChargeLoopRes") == ["OK"]         # no answer to the late request
    assert "closed" in res.reason, res.reason


def test_out_of_sequence_request_is_refused(lab_wire, lab_ev):
    res, rows, (state, reason), _ = _run(lab_wire, lab_ev, "out_of_sequence", "DC_ChargeLoopReq", 2)
    assert not res.passed and res.step in ("DC_ChargeLoopReq", "SessionSetupRes"), res.summary()
    i = _tx_index(rows, "out_of_sequence")
    assert rows[i]["exi"] == next(r["exi"] for r in rows if r.get("name") == "SessionSetupReq")
    answer = next(r for r in rows[i + 1:] if r.get("dir") == "rx")
    # the SECC answers the replayed SessionSetupReq with FAILED_SequenceError and ends the session
    assert answer["name"] == "SessionSetupRes", answer["name"]
    assert _rx([answer], "SessionSetupRes") == ["FAILED_SequenceError"]
    assert state == "DCChargeLoop", (state, reason)


def test_wrong_session_id_gets_failed_unknown_session(lab_wire, lab_ev):
    res, rows, (state, reason), _ = _run(lab_wire, lab_ev, "wrong_session_id", "DC_ChargeLoopReq", 2)
    assert not res.passed and res.step.startswith("DC_ChargeLoop"), res.summary()
    assert _rx(rows, "DC_ChargeLoopRes") == ["OK", "FAILED_UnknownSession"]
    assert "DEADBEEF00000000" in reason and "does not match" in reason, reason


def test_malformed_v2gtp_header_closes_the_connection(lab_wire, lab_ev):
    res, rows, (state, reason), _ = _run(lab_wire, lab_ev, "malformed_header", "DC_ChargeLoopReq", 2)
    assert not res.passed and res.step == "DC_ChargeLoopReq", res.summary()
    i = _tx_index(rows, "malformed_header")
    assert rows[i]["v2gtp"][:4] == "02fd"                  # version 0x02, inverse 0xFD on the wire
    assert _rx(rows, "DC_ChargeLoopRes") == ["OK"] and "closed" in res.reason
    assert "InvalidV2GTPMessageError" in reason, reason


def test_corrupt_exi_is_rejected(lab_wire, lab_ev):
    res, rows, (state, reason), _ = _run(lab_wire, lab_ev, "corrupt_exi", "DC_ChargeLoopReq", 2)
    assert not res.passed and res.step.startswith("DC_ChargeLoop"), res.summary()
    # no answer to the corrupted request: the SECC closes the connection (reason below)
    assert _rx(rows, "DC_ChargeLoopRes") == ["OK"] and "closed" in res.reason, res.summary()
    assert state == "DCChargeLoop" and "EXIDecodingError" in reason, reason


def test_abrupt_tcp_close_ends_the_secc_session(lab_wire, lab_ev):
    res, rows, (state, reason), wall = _run(lab_wire, lab_ev, "abrupt_close", "DC_ChargeLoopReq", 2)
    assert not res.passed and res.step == "DC_ChargeLoopReq", res.summary()
    assert "abrupt TCP close" in res.reason
    assert state == "DCChargeLoop" and ("closed" in reason or "Reset" in reason), reason


def test_stop_answering_hits_the_secc_sequence_timeout(lab_wire, lab_ev):
    res, rows, (state, reason), wall = _run(lab_wire, lab_ev, "stop_answering", "DC_ChargeLoopReq", 2)
    assert not res.passed and res.step == "DC_ChargeLoopReq", res.summary()
    assert state == "DCChargeLoop" and reason.startswith("TimeoutError") and "4.0 s" in reason, reason
    silence = next(r["note"] for r in rows if r.get("dir") == "note" and "of silence" in r.get("note", ""))
    waited = float(silence.split("after ")[1].split(" s")[0])
    assert 3.5 <= waited <= 8.0, silence                  # the SECC's 4 s timeout (+ its close)
