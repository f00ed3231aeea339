"""The lab's ISO 15118 SDP/SECC keeps answering under malformed V2GTP (issue 16 item 5).

The fuzz campaign's `secc` target over the real wire (veth pair, EV end in its own netns): SDP, one
TCP connection per malformed input, the health probe (SDP + supportedAppProtocolReq on a fresh
connection) after every batch. Before the fixes in `v2g_bench/ev/compat.py` the SECC stopped
answering SDP for good within seconds (a cancelled session never closed its connection; the SECC's
one notification task then waited for it forever in `Server.wait_closed()`).

The short run is part of the default suite; the soak (`make soak`, SOAK_SECONDS, default 1200 s)
also bounds the lab's memory and fds over the long run."""
from __future__ import annotations

import os

import pytest

from v2g_bench.ev.labnet import unavailable_reason
from v2g_bench.fuzz.campaign import OK, run_target
from v2g_bench.fuzz.targets_secc import SeccTarget

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=f"needs a veth pair and a netns: {unavailable_reason()}")


class _CheckedSecc(SeccTarget):
    """The fuzz target, plus a last probe before teardown whose result the test asserts on."""

    final = None

    def teardown(self) -> None:
        try:
            self.final = self._probe()
        finally:
            super().teardown()


def _run(tmp_path, seconds: float):
    t = _CheckedSecc()
    stats = run_target(t, seconds, tmp_path, seed=16)
    assert not stats.note, stats.note
    return t, stats


def test_secc_keeps_answering_sdp_after_malformed_v2gtp(tmp_path):
    t, s = _run(tmp_path, 25.0)
    assert s.inputs >= 20, f"only {s.inputs} inputs reached the SECC"
    assert s.hangs == 0 and s.crashes == 0, [p.read_text() for p in (tmp_path / "crashes").rglob("*.txt")]
    assert t.final == (OK, None), t.final


SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "1200"))


@pytest.mark.soak
@pytest.mark.timeout(SOAK_SECONDS + 600)     # the run itself, lab start-up and teardown
def test_secc_soak_long_abuse_keeps_answering_with_bounded_memory(tmp_path):
    t, s = _run(tmp_path, SOAK_SECONDS)
    print(f"\nsoak {s.seconds:.0f} s: {s.inputs} inputs ({s.rate:.1f}/s), typed {s.typed}, "
          f"lab RSS {s.rss_start_mb:.0f} -> {s.rss_end_mb:.0f} MB (peak {s.rss_peak_mb:.0f}), "
          f"fds {s.fds_start} -> {s.fds_end}")
    assert s.hangs == 0 and s.crashes == 0
    assert t.final == (OK, None), t.final
    assert s.rss_end_mb - s.rss_start_mb < 100, "the lab's memory grew by 100 MB or more"
    assert s.fds_end - s.fds_start < 20, "the lab leaks file descriptors"
