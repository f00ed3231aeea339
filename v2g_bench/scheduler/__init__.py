"""Reference scheduler: cost-optimal V2G charge/discharge plans on HiGHS (highspy).

Entry points: `Scheduler().plan(site, ev_or_evs)` (exact LP, MILP repair of simultaneous charge and
discharge), `plan_fleet_independent`, `plan_fleet_shared`, `plan_fleet_decomposed` (Dantzig-Wolfe),
`to_charging_schedule` (OCPP-style periods), `load_scenario` (TOML scenarios).
"""
from v2g_bench.scheduler.model import (CostBreakdown, EVPlan, EVRequest, InfeasibleSchedule, Plan, ScheduleInputError, Site,
                    interval_window)
from v2g_bench.scheduler.lp import Scheduler
from v2g_bench.scheduler.fleet import FleetResult, plan_fleet_decomposed, plan_fleet_independent, plan_fleet_shared
from v2g_bench.scheduler.ocpp import plan_periods, to_charging_schedule
from v2g_bench.scheduler.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["CostBreakdown", "EVPlan", "EVRequest", "InfeasibleSchedule", "Plan", "ScheduleInputError", "Site",
           "interval_window", "Scheduler", "FleetResult", "plan_fleet_decomposed", "plan_fleet_independent",
           "plan_fleet_shared", "plan_periods", "to_charging_schedule", "Scenario", "ScenarioError", "load_scenario"]
