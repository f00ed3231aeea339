"""Verification library: judge what flowed against what was commanded, guaranteed and optimal.

Every judge returns a `VerificationResult` subclass with `.verdict` ("pass" / "fail" / "inconclusive"),
`.metrics` (the numbers), `.checks` (criterion, value, limit, citation) and `.assert_pass()`.
"""
from .result import (FAIL, INCONCLUSIVE, PASS, Check, SampleError, VerificationResult)
from .compliance import CommandedProfile, ComplianceResult, Tolerance, judge_schedule
from .frequency import FrequencyResponseResult, expected_response_w, judge_frequency_response
from .guarantees import GuaranteeResult, judge_guarantees, judge_plan_guarantees
from .efficiency import Cycle, EfficiencyResult, MeterAccuracy, cycle_from_counters, judge_round_trip
from .economics import EconomicsResult, judge_economics, uncontrolled_power_kw

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "Check", "SampleError", "VerificationResult", "CommandedProfile",
           "ComplianceResult", "Tolerance", "judge_schedule", "FrequencyResponseResult", "expected_response_w",
           "judge_frequency_response", "GuaranteeResult", "judge_guarantees", "judge_plan_guarantees", "Cycle",
           "EfficiencyResult", "MeterAccuracy", "cycle_from_counters", "judge_round_trip", "EconomicsResult",
           "judge_economics", "uncontrolled_power_kw"]
