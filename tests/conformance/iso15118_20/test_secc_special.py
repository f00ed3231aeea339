"""ISO 15118-20 SECC: V2GTP, SDP, SAP, session identity, invalid parameters, control-mode variants, BPT on measured
power, charger-side stop, oracle independence. Rows: secc20_special.py."""
from v2g_bench.conformance import cases_test

from secc20_special import special_cases

CASES = special_cases()
test_secc_special = cases_test(CASES)
