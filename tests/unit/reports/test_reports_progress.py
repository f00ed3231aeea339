"""Terminal progress: one line per case that never wraps (non-TTY), a bar with ETA on a terminal."""
import io
import re

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from v2g_bench.harness.runner import ProgressPlugin, case_line


class Rep:
    def __init__(self, nodeid, when, outcome):
        self.nodeid, self.when, self.outcome, self.longrepr, self.duration = nodeid, when, outcome, None, 0.5
        self.passed, self.failed, self.skipped = outcome == "passed", outcome == "failed", outcome == "skipped"


LONG = "tests/conformance/ocpp/test_ocpp_v2x_power.py::test_discharge_profile_is_followed_and_metered[ocpp2.0.1-" + "x" * 80 + "]"


def feed(plugin, nodeids):
    plugin._set_total(len(nodeids))
    for n in nodeids:
        for when in ("setup", "call", "teardown"):
            plugin.pytest_runtest_logreport(Rep(n, when, "passed"))


def test_non_tty_prints_one_full_line_per_case():
    out = io.StringIO()
    plugin = ProgressPlugin(None, stream=out)
    feed(plugin, [LONG, "t.py::test_b"])
    lines = out.getvalue().splitlines()
    assert lines == [case_line(1, 2, "passed", LONG, 1.5), case_line(2, 2, "passed", "t.py::test_b", 1.5)]
    assert lines[0].startswith("[1/2] PASSED") and LONG in lines[0]


def test_tty_shows_a_bar_with_eta_and_never_wraps_a_case_line():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=70, color_system=None)
    with Progress(TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=console, auto_refresh=False) as progress:
        plugin = ProgressPlugin(progress)
        feed(plugin, [LONG, "t.py::test_b", "t.py::test_c"])
        progress.refresh()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())    # without the cursor controls
    assert "ETA" in text and "3/3" in text
    case_lines = [ln for ln in text.replace("\r", "\n").splitlines() if ln.startswith("[1/3]")]
    assert case_lines and all(len(ln) <= 70 for ln in case_lines)
    assert not any(ln.startswith("x" * 10) for ln in text.splitlines())     # no wrapped tail of the long ID
    assert "…" in case_lines[0] and case_lines[0].endswith("xxx] (1.5 s)")   # cut in the middle: the param id stays


def test_a_teardown_error_turns_only_a_pass_into_an_error():
    from v2g_bench.harness.runner import Tally
    t = Tally()
    for nodeid, call in (("t::dut_fails", ("t.py", 1, "AssertionError: late")), ("t::passes", None)):
        for when, outcome, lr in (("setup", "passed", None), ("call", "failed" if call else "passed", call),
                                  ("teardown", "failed", ("t.py", 2, "SafeStateError: output did not turn off"))):
            r = Rep(nodeid, when, outcome)
            r.longrepr = lr
            t.record(r)
    assert t.verdicts == {"t::dut_fails": "failed", "t::passes": "error"}
    assert t.messages["t::dut_fails"].endswith("(and a bench error at teardown)")
