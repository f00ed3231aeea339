"""After pytest.main returns, `v2g-bench run` drops log handlers left on closed streams (a library's basicConfig()
during the captured session), so building the test report prints no "--- Logging error ---" tracebacks."""
import io
import logging

from v2g_bench.harness.runner import _drop_closed_log_handlers


def test_handlers_on_closed_streams_are_dropped_others_kept():
    root, named = logging.getLogger(), logging.getLogger("v2g_bench.test.handlers")
    dead_stream, live_stream = io.StringIO(), io.StringIO()
    dead, live = logging.StreamHandler(dead_stream), logging.StreamHandler(live_stream)
    root.addHandler(dead)
    named.addHandler(live)
    try:
        dead_stream.close()
        _drop_closed_log_handlers()
        assert dead not in root.handlers and live in named.handlers
        logging.getLogger("weasyprint.progress").warning("Step 7 - Adding PDF metadata")   # no logging error
    finally:
        root.removeHandler(dead)
        named.removeHandler(live)
