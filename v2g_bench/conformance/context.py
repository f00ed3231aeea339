"""CaseContext: what a step sees while its case runs — the bench's roles (opened on demand, unwound by the bench
fixture), the profiles, the evidence folder, the values earlier steps saved, and the timers to judge by."""
from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from v2g_bench.conformance.match import Matcher
from v2g_bench.conformance.steps import Step, V
from v2g_bench.errors import CaseDefinitionError

if TYPE_CHECKING:
    import pytest

    from v2g_bench.conformance.case import Case


class CaseContext:
    def __init__(self, case: Case, version: str | None, request: pytest.FixtureRequest):
        self.case, self.version, self._request = case, version, request
        self.vars: dict[str, Any] = {}
        self.step_log: list[dict] = []         # name, req, kind, outcome, duration of every step run
        self.pixit_used: dict[str, Any] = {}   # every PIXIT / timer this row was judged by
        self.deviations: list[str] = []        # what the run did differently from the method (for the report)
        self.current_step: Step | None = None
        self.last_wire_t: float | None = None  # monotonic wire time of the last stimulus' effect (answer in)
        self._cleanups: list = []              # run when the case ends, last first (recorders, profiles set)

    def on_close(self, fn) -> None:
        """Run `fn()` when the case ends, whatever its verdict (before the bench unwinds the roles)."""
        self._cleanups.append(fn)

    def close(self) -> list[str]:
        problems = []
        while self._cleanups:
            fn = self._cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - every cleanup runs; problems are reported
                problems.append(f"{getattr(fn, '__name__', fn)}: {type(e).__name__}: {e}")
        return problems

    # -- roles and profiles ------------------------------------------------------------------------
    def role(self, name: str) -> Any:
        """A bench role (or a fixture such as `dc_link`), opened on first use and made safe after the case."""
        return self._request.getfixturevalue(name)

    csms = property(lambda self: self.role("csms"))
    ev = property(lambda self: self.role("ev"))
    dut = property(lambda self: self.role("dut"))
    analyzer = property(lambda self: self.role("analyzer"))
    battery = property(lambda self: self.role("battery"))
    charger = property(lambda self: self.role("charger"))
    dc_link = property(lambda self: self.role("dc_link"))
    dut_profile = property(lambda self: self.role("dut_profile"))
    bench_profile = property(lambda self: self.role("bench_profile"))
    evidence = property(lambda self: self.role("evidence"))

    def has_role(self, name: str) -> bool:
        return name in self.bench_profile.roles

    # -- values ------------------------------------------------------------------------------------
    def resolve(self, x: Any) -> Any:
        """V("a.b") references and `lambda ctx: ...` turned into values; dicts and lists resolved inside."""
        if isinstance(x, V):
            return x.get(self.vars)
        if isinstance(x, (Matcher, Step, type)):
            return x
        if callable(x):
            return x(self)
        if isinstance(x, dict):
            return {k: self.resolve(v) for k, v in x.items()}
        if isinstance(x, list):
            return [self.resolve(v) for v in x]
        if isinstance(x, tuple):
            return tuple(self.resolve(v) for v in x)
        return x

    def save(self, name: str | None, value: Any) -> None:
        if name:
            self.vars[name] = value

    # -- PIXIT and normative timers -------------------------------------------------------------------
    def pixit(self, name: str, default: Any) -> Any:
        """A PIXIT value of the DUT profile (its `[pixit]` table) or the default; recorded for the report."""
        value = self.dut_profile.pixit.get(name, default)
        self.pixit_used[name] = value
        return value

    def timer(self, name: str, normative_s: float) -> float:
        """The limit to judge a normative timer by: a PIXIT may tighten it, never loosen it."""
        if not (isinstance(normative_s, (int, float)) and math.isfinite(normative_s) and normative_s > 0):
            raise CaseDefinitionError(f"timer {name!r}: normative value {normative_s!r} is not a positive time")
        declared = self.dut_profile.pixit.get(name)
        limit = float(normative_s)
        if declared is not None:
            try:
                declared = float(declared)
            except (TypeError, ValueError):
                raise CaseDefinitionError(f"[pixit] {name} = {declared!r} is not a number of seconds") from None
            if declared < limit:
                limit = declared
            elif declared > limit:
                self.deviations.append(f"[pixit] {name} = {declared:g} s would loosen the normative {normative_s:g} s: "
                                       f"ignored, judged at {normative_s:g} s")
        self.pixit_used[name] = {"limit_s": limit, "normative_s": float(normative_s), "declared_s": declared}
        return limit

    # -- evidence ----------------------------------------------------------------------------------
    def attach(self, name: str, obj: Any) -> None:
        """Evidence for the current step: written to the evidence folder at once (a crash keeps it) and attached
        to the current Allure step."""
        ev = self.evidence
        prefix = f"{len(self.step_log) + 1:02d}-"
        if isinstance(obj, (bytes, bytearray)):
            path = ev.path(prefix + name)
            path.write_bytes(bytes(obj))
            body, kind, ext = bytes(obj), None, None
        elif isinstance(obj, str):
            path = ev.attach_text(prefix + name, obj)
            body, kind, ext = obj, "text/plain", "txt"
        else:
            path = ev.attach_json(prefix + name, obj)
            body, kind, ext = json.dumps(obj, indent=1, default=str), "application/json", "json"
        try:
            import allure
            allure.attach(body, name=name, attachment_type=kind, extension=ext) if kind else \
                allure.attach.file(str(path), name=name)
        except ImportError:  # pragma: no cover
            pass

    def now(self) -> float:
        return time.monotonic()
