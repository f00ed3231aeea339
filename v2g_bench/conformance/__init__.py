"""v2g_bench.conformance: the suite's public API — cases as rows, steps in a small typed vocabulary, one runner.

    from v2g_bench.conformance import Case, cases_test, step, V
    from v2g_bench.conformance import ocpp, iso15118, judge
    from v2g_bench.conformance.match import one_of, approx, between, where, absent

    CASES = [Case("TC_B_01_CS", title="Cold boot", standard="OCPP", block="B Provisioning",
                  covers=("TC_B_01_CS", "B01.FR.01"), versions=("2.0.1", "2.1"),
                  steps=[ocpp.connected(), ocpp.expect("StatusNotification", within_s=10, req="B01.FR.05")])]
    test_block_b = cases_test(CASES)

See docs/writing-a-conformance-test.md.
"""
from v2g_bench.conformance.case import Case
from v2g_bench.conformance.context import CaseContext
from v2g_bench.conformance.runner import StepCrashed, cases_test, run_case
from v2g_bench.conformance.steps import FnStep, Step, V, step
from v2g_bench.errors import CaseDefinitionError

__all__ = ["Case", "CaseContext", "CaseDefinitionError", "FnStep", "Step", "StepCrashed", "V", "cases_test",
           "run_case", "step"]
