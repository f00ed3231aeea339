"""Verification library: judge what flowed against what was commanded, guaranteed and optimal.

Every judge returns a `VerificationResult` subclass with `.verdict` ("pass" / "fail" / "inconclusive"),
`.metrics` (the numbers), `.checks` (criterion, value, limit, citation) and `.assert_pass()`.
"""
from v2g_bench.verification.result import (FAIL, INCONCLUSIVE, PASS, Check, SampleError, VerificationResult)
from v2g_bench.verification.compliance import CommandedProfile, ComplianceResult, Tolerance, judge_schedule
from v2g_bench.verification.frequency import FrequencyResponseResult, expected_response_w, judge_frequency_response
from v2g_bench.verification.guarantees import GuaranteeResult, judge_guarantees, judge_plan_guarantees
from v2g_bench.verification.efficiency import Cycle, EfficiencyResult, MeterAccuracy, cycle_from_counters, judge_round_trip
from v2g_bench.verification.economics import EconomicsResult, judge_economics, uncontrolled_power_kw

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "Check", "SampleError", "VerificationResult", "CommandedProfile",
           "ComplianceResult", "Tolerance", "judge_schedule", "FrequencyResponseResult", "expected_response_w",
           "judge_frequency_response", "GuaranteeResult", "judge_guarantees", "judge_plan_guarantees", "Cycle",
           "EfficiencyResult", "MeterAccuracy", "cycle_from_counters", "judge_round_trip", "EconomicsResult",
           "judge_economics", "uncontrolled_power_kw"]
