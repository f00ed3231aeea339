"""A charger that is not there, or that the EV confuses, ends in a failed verdict naming the step,
within the timeout: never a hang, never a crash."""
import time

import pytest

from v2g_bench.ev import netns

reason = netns.veth_unavailable_reason() or netns.netns_unavailable_reason()
pytestmark = pytest.mark.skipif(reason is not None, reason=reason or "")


def test_no_charger_fails_within_timeout():
    from v2g_bench.ev.emulator import EVEmulator

    with netns.EvNetns() as ns, netns.VethPair.create(ev_netns=ns) as pair:
        ev = EVEmulator(pair.ev_iface, netns=ns.name)
        try:
            t = time.monotonic()
            res = ev.run_session(timeout=4, trace_path=None)
            assert time.monotonic() - t < 4 + 5
            assert not res.passed
            assert res.step.startswith("SDP")
        finally:
            ev.close()


# --- a charger that answers garbage, answers late, or stops mid-session --------------------------

@pytest.fixture(scope="module")
def charger():
    from v2g_bench.lab.charger.bad_charger import FakeCharger

    with FakeCharger() as c:
        yield c


@pytest.fixture(scope="module")
def ev_for_charger(charger):
    from v2g_bench.ev.emulator import EVEmulator

    ev = EVEmulator(charger.ev_iface, netns=charger.ev_netns)
    try:
        yield ev
    finally:
        ev.safe_state()
        ev.close()


BAD_TIMEOUT = 15.0


@pytest.mark.parametrize("kind,seconds,reason_part", [
    ("garbage_exi", 0.0, "EXI"),
    ("garbage", 0.0, ""),
    ("late", 3.0, "Timeout"),
    ("stop_answering", 0.0, "Timeout"),
    ("close", 0.0, "closed"),
])
def test_bad_charger_gives_a_failed_verdict_naming_the_step(charger, ev_for_charger, kind, seconds, reason_part):
    from v2g_bench.ev.model import Phase

    charger.clear()
    fault = charger.spoil(kind, state="DCChargeLoop", nth=2, seconds=seconds)
    t = time.monotonic()
    res = ev_for_charger.run_session(protocol="ISO15118-20", service="DC_BPT", plan=[Phase(3000, 5.0)],
                                     timeout=BAD_TIMEOUT)
    wall = time.monotonic() - t
    assert fault.fired, "the fault never fired"
    assert wall < BAD_TIMEOUT + 5, wall                                  # never a hang
    assert not res.passed, res.summary()
    assert res.step.startswith("DC_ChargeLoop"), res.summary()         # names the step
    assert any("DC_ChargeLoopReq" in m for m in res.last_messages), res.last_messages
    assert len(res.last_messages) >= 3                                   # shows the last messages
    assert reason_part in res.reason, res.reason
    assert res.charge_loops >= 1                                         # it did get that far
    # the charger's own stage ended safe (its session ended too)
    end = time.monotonic() + 8
    while time.monotonic() < end and charger.plant.state().contactor_closed:
        time.sleep(0.1)
    assert not charger.plant.state().contactor_closed
