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
