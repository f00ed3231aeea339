"""Timing verdicts of the OCPP words: a frame late on the wire fails the charger; a frame that only the bench's own
loop lateness made late (measured by the loop-lag probe) is inconclusive; response times of ISO 15118 are taken
from a capture (a real pcap written and read back here)."""
import time
from types import SimpleNamespace

import pytest

from v2g_bench.conformance import Case, ocpp, step
from v2g_bench.conformance.context import CaseContext
from v2g_bench.conformance.wire import response_times, v2gtp_messages
from v2g_bench.errors import Inconclusive, Nonconformance
from v2g_bench.harness.asyncrt import LagMonitor


class FakeCsms:
    """Stands in for the CSMS emulator (the code under test is the step on top of it)."""

    def __init__(self, frame_delay_s, lag_s):
        self.frame_delay_s, self.lag = frame_delay_s, LagMonitor()
        self._loop = SimpleNamespace(lag=self.lag)
        self.lag_s = lag_s
        self.frames = []

    def expect(self, action, where=None, timeout=10.0):
        now = time.monotonic()
        if self.lag_s:
            self.lag._events.append((now, self.lag_s))
        if self.frame_delay_s is None:
            raise Nonconformance(f"no {action} within {timeout:g} s")
        f = SimpleNamespace(t=self.ref + self.frame_delay_s, payload={"eventType": "Started"}, msg_type=2,
                            action=action, direction="in", seq=1)
        assert where(f)
        return f


class Req:
    def __init__(self, csms):
        self.csms = csms

    def getfixturevalue(self, name):
        return {"csms": self.csms, "dut_profile": SimpleNamespace(pixit={}),
                "evidence": SimpleNamespace(attach_json=lambda *a: None, attach_text=lambda *a: None)}[name]


CASE = Case("T", title="t", standard="OCPP", block="E", covers=("TC_E_01_CS",), steps=[step("s", lambda c: 0)])


def run_expect(frame_delay_s, lag_s, within_s=1.0):
    csms = FakeCsms(frame_delay_s, lag_s)
    ctx = CaseContext(CASE, "2.0.1", Req(csms))
    ctx.attach = lambda *a: None
    ctx.last_wire_t = csms.ref = time.monotonic() - 3.0      # the stimulus was 3 s ago
    ocpp.expect("TransactionEvent", within_s=within_s, req="E02.FR.02", eventType="Started").run(ctx)
    return ctx


def test_in_time_passes():
    run_expect(0.4, 0.0)


def test_late_on_the_wire_fails_the_charger():
    with pytest.raises(Nonconformance, match=r"\[E02.FR.02\] TransactionEvent came 2.000 s after"):
        run_expect(2.0, 0.05)


def test_late_only_because_the_bench_lagged_is_inconclusive():
    with pytest.raises(Inconclusive, match="bench's CSMS loop was late by 1500 ms"):
        run_expect(2.0, 1.5)


def test_missing_frame_fails_unless_the_bench_lagged():
    with pytest.raises(Nonconformance, match="no TransactionEvent matching"):
        run_expect(None, 0.0)
    with pytest.raises(Inconclusive, match="no verdict"):
        run_expect(None, 0.8)


def test_response_times_come_from_the_capture(tmp_path):
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import wrpcap
    ev, secc = "fe80::1", "fe80::2"

    def seg(t, src, dst, sport, dport, seq, payload):
        p = IPv6(src=src, dst=dst) / TCP(sport=sport, dport=dport, seq=seq, flags="PA") / payload
        p.time = t
        return p

    def v2gtp(body: bytes) -> bytes:
        return bytes([0x01, 0xFE, 0x80, 0x02]) + len(body).to_bytes(4, "big") + body
    req1, res1, req2, res2 = v2gtp(b"\x80" * 10), v2gtp(b"\x81" * 300), v2gtp(b"\x82" * 20), v2gtp(b"\x83" * 5)
    pkts = [seg(10.000, ev, secc, 50000, 61000, 1, req1),
            seg(10.030, secc, ev, 61000, 50000, 1, res1[:100]),           # the response split over two segments
            seg(10.045, secc, ev, 61000, 50000, 101, res1[100:]),
            seg(10.045, secc, ev, 61000, 50000, 101, res1[100:]),         # a retransmission: ignored
            seg(11.000, ev, secc, 50000, 61000, 11 + 8, req2 + b""),
            seg(11.250, secc, ev, 61000, 50000, 309, res2)]
    path = tmp_path / "s.pcap"
    wrpcap(str(path), pkts)
    msgs = v2gtp_messages(path)
    assert [m.direction for m in msgs] == ["req", "res", "req", "res"] and len(msgs[1].payload) == 300
    assert response_times(path) == pytest.approx([0.045, 0.25], abs=1e-6)
