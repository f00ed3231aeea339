"""ISO 15118-20 SECC, per message group (ISO 15118-4 pattern): good case, out of sequence, unknown session,
performance time; AC/AC_BPT loop groups as the DUT claims them. Rows: secc20_rows.py."""
from v2g_bench.conformance import cases_test

from secc20_rows import message_group_cases

CASES = message_group_cases()
test_secc_message_groups = cases_test(CASES)
