"""The one runner of case rows: `test_block_k = cases_test(CASES)` in a test module makes one parametrized pytest
test whose rows are the cases (× their OCPP versions). Each row runs its preconditions, then its steps, every
step an Allure step titled with its requirement IDs; the verdict only blames the charger:

- Nonconformance in a step → failed (the step's req is added when the raise carried none);
- Nonconformance in a precondition (`given`) → inconclusive: the DUT could not be brought to the start state;
- Inconclusive → inconclusive; BenchError → error;
- anything else escaping a step (a typo in a case's lambda, a bare assert, a crashed helper) → error, naming the
  step: never a verdict against the charger.
"""
from __future__ import annotations

import time
from typing import Iterable

import pytest

from v2g_bench.conformance.case import Case
from v2g_bench.conformance.context import CaseContext
from v2g_bench.conformance.steps import Step
from v2g_bench.errors import BenchError, CaseDefinitionError, Inconclusive, Nonconformance

VERSION_MARKS = {"2.0.1": "ocpp201", "2.1": "ocpp21"}


class StepCrashed(BenchError):
    """A step raised something that is not a verdict: the case's or the bench's fault, never the charger's."""


def _marks(case: Case, version: str | None) -> list:
    marks = [pytest.mark.v2g_case(case.id), pytest.mark.covers(*case.covers)]
    if case.requires:
        marks.append(pytest.mark.requires(*case.requires))
    if version:
        marks.append(getattr(pytest.mark, VERSION_MARKS[version]))
    if case.slow:
        marks.append(pytest.mark.slow)
    if case.lab_only:
        marks.append(pytest.mark.lab_only)
    if case.actions:
        marks.append(pytest.mark.dut_actions(*case.actions))
    for m in case.markers:
        marks.append(getattr(pytest.mark, m))
    return marks


def cases_test(cases: Iterable[Case]):
    """One parametrized pytest test running every row of `cases`."""
    cases = list(cases)
    seen: dict[str, Case] = {}
    params = []
    for c in cases:
        if not isinstance(c, Case):
            raise CaseDefinitionError(f"{c!r} is not a Case row")
        if c.id in seen:
            raise CaseDefinitionError(f"case {c.id!r} is defined twice in the same table")
        seen[c.id] = c
        for row_id, version in c.rows():
            params.append(pytest.param(c, version, id=row_id.replace("[", "-").replace("]", ""),
                                       marks=_marks(c, version)))

    @pytest.mark.parametrize(("case", "version"), params)
    def test_case(case: Case, version: str | None, request: pytest.FixtureRequest) -> None:
        run_case(case, version, request)

    test_case.__doc__ = "Conformance cases as rows: " + ", ".join(seen)
    test_case.cases = cases
    return test_case


def _allure_labels(case: Case, version: str | None) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover
        return
    allure.dynamic.parent_suite(case.suite(version))
    allure.dynamic.suite(case.block)
    allure.dynamic.title(f"{case.id}{f' (OCPP {version})' if version else ''}: {case.title}")
    allure.dynamic.label("as_id", case.id)
    if case.description:
        allure.dynamic.description(case.description)


def run_case(case: Case, version: str | None, request: pytest.FixtureRequest) -> None:
    ctx = CaseContext(case, version, request)
    request.node._v2g_case_ctx = ctx
    _allure_labels(case, version)
    if case.actions:
        from v2g_bench.dut.actions import missing
        reason = missing(ctx, case.actions)
        if reason:
            pytest.skip(f"{reason}; nothing was checked")
    try:
        for s in case.given:
            run_step(ctx, s, precondition=True)
        for s in case.steps:
            run_step(ctx, s)
    finally:
        problems = ctx.close()
        ctx.deviations += [f"cleanup failed: {p}" for p in problems]
        _record(ctx, request)
    if problems:
        raise BenchError("the case's cleanup failed: " + "; ".join(problems))


def run_step(ctx: CaseContext, s: Step, *, precondition: bool = False) -> None:
    try:
        import allure
        step_cm = allure.step(("precondition: " if precondition else "") + s.title())
    except ImportError:  # pragma: no cover
        from contextlib import nullcontext
        step_cm = nullcontext()
    ctx.current_step = s
    t0 = time.monotonic()
    entry = {"step": s.title(), "kind": "given" if precondition else s.kind, "req": list(s.reqs())}
    ctx.step_log.append(entry)
    try:
        with step_cm:
            try:
                s.run(ctx)
            except Nonconformance as e:
                req = e.req or s.reqs() or ctx.case.covers
                msg = str(e) if e.req else f"[{', '.join(req)}] {e}"
                if precondition:
                    raise Inconclusive(f"precondition not reached ({s.title()}): the DUT {msg}") from e
                if not e.req:
                    raise _with_req(e, req) from e
                raise
            except (Inconclusive, BenchError, pytest.skip.Exception, KeyboardInterrupt, SystemExit):
                raise
            except AssertionError as e:
                raise CaseDefinitionError(f"step {s.title()!r}: a bare assert failed ({e or 'no message'})",
                                          fix="a verdict against the charger raises Nonconformance(msg, req=ID); "
                                              "a check of the bench itself raises BenchError") from e
            except Exception as e:  # noqa: BLE001 - anything else is not the charger's fault
                raise StepCrashed(f"step {s.title()!r} raised {type(e).__name__}: {e}",
                                  fix="a bug in the case (e.g. a typo in a lambda) or in the bench") from e
        entry["outcome"] = "passed"
    except Nonconformance:
        entry["outcome"] = "failed"
        raise
    except Inconclusive:
        entry["outcome"] = "inconclusive"
        raise
    except BaseException as e:
        entry["outcome"] = "error" if not isinstance(e, pytest.skip.Exception) else "skipped"
        raise
    finally:
        entry["duration_s"] = round(time.monotonic() - t0, 4)
        ctx.current_step = None


def _with_req(e: Nonconformance, req: tuple[str, ...]) -> Nonconformance:
    message = str(e)
    return Nonconformance(message, req=tuple(req))


def _record(ctx: CaseContext, request: pytest.FixtureRequest) -> None:
    """The step log and the PIXITs used travel with the report (also across xdist) for the report's pages."""
    import json
    request.node.user_properties.append(("v2g_steps", json.dumps(ctx.step_log)))
    if ctx.pixit_used:
        request.node.user_properties.append(("v2g_pixit", json.dumps(ctx.pixit_used, default=str)))
    if ctx.deviations:
        request.node.user_properties.append(("v2g_deviations", json.dumps(ctx.deviations)))
    try:
        ctx.evidence.attach_json("case-steps", {"case": ctx.case.summary(), "version": ctx.version,
                                                "steps": ctx.step_log, "pixit": ctx.pixit_used,
                                                "deviations": ctx.deviations})
    except Exception:  # noqa: BLE001, S110 - evidence of a case that could not even open its folder
        pass
