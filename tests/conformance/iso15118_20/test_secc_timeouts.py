"""ISO 15118-20 SECC: the EV goes silent, one case per state group; the SECC closes TCP after its 60 s
V2G_SECC_Sequence_Timeout. Slow: run with --run-slow (make mutation-iso runs them)."""
from v2g_bench.conformance import cases_test

from secc20_rows import timeout_cases

CASES = timeout_cases()
test_secc_sequence_timeouts = cases_test(CASES)
