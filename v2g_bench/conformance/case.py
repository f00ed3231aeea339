"""A conformance case as data: the IDs it covers, what the DUT must claim for it to apply, the protocol versions
it exists in, the DUT actions it needs, its preconditions and its steps. Checked when the row is built, so an
unknown step, field, feature or ID is refused at collection with the row named — never a silently skipped or
silently passing case."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from v2g_bench.conformance import catalogue
from v2g_bench.conformance.features import known_features, normalise
from v2g_bench.conformance.steps import Step
from v2g_bench.errors import CaseDefinitionError

OCPP_VERSIONS = ("2.0.1", "2.1")
# DUT actions a case may need (OCTT's operator actions); v2g_bench.dut.actions performs them
KNOWN_ACTIONS = ("plug_in", "unplug", "present_token", "present_invalid_token", "power_cycle", "cut_network",
                 "restore_network", "start_transaction", "stop_transaction", "ev_ready", "ev_suspend",
                 "emergency_stop", "set_cp_state")
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")


@dataclass
class Case:
    id: str
    title: str = ""
    covers: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    standard: str = ""
    block: str = ""
    versions: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    given: list[Step] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    slow: bool = False
    lab_only: bool = False
    side: str = "CS"                  # what the case judges: "CS" (the OCPP station) or "SECC" (the ISO 15118 side)
    markers: tuple[str, ...] = ()     # extra plain markers: power, timing, efficiency, safety, security
    description: str = ""

    def __post_init__(self):
        problems = self.problems()
        if problems:
            raise CaseDefinitionError(f"case {self.id!r}: " + "; ".join(problems),
                                      fix="fix the row (see docs/writing-a-conformance-test.md)")
        self.covers = tuple(self.covers)
        self.requires = tuple(normalise(f) for f in self.requires)

    def problems(self) -> list[str]:
        out: list[str] = []
        if not isinstance(self.id, str) or not ID_RE.fullmatch(self.id or ""):
            out.append(f"id {self.id!r} is not a usable test ID")
        if not self.title:
            out.append("no title")
        if not self.standard or not self.block:
            out.append("standard and block name the report's suite: both are needed")
        for name in ("covers", "requires", "versions", "actions", "markers"):
            v = getattr(self, name)
            if isinstance(v, str) or not isinstance(v, (tuple, list)):
                out.append(f"{name} must be a tuple of strings, not {v!r}")
        if out:
            return out
        if not self.covers:
            out.append("covers names no requirement or test-case ID")
        out += catalogue.audit(tuple(self.covers), side=self.side)
        known = known_features()
        for f in self.requires:
            if normalise(f) not in known:
                out.append(f"requires {f!r}: no DUT profile can claim it (known: see conformance/features.py)")
        for v in self.versions:
            if v not in OCPP_VERSIONS:
                out.append(f"versions: {v!r} is not an OCPP version ({', '.join(OCPP_VERSIONS)})")
        for a in self.actions:
            if a not in KNOWN_ACTIONS:
                out.append(f"actions: unknown DUT action {a!r} (known: {', '.join(KNOWN_ACTIONS)})")
        if self.side not in ("CS", "SECC"):
            out.append(f"side {self.side!r}: CS or SECC")
        if not self.steps:
            out.append("no steps: a case that checks nothing cannot pass")
        for where, lst in (("given", self.given), ("steps", self.steps)):
            if not isinstance(lst, list):
                out.append(f"{where} must be a list of steps")
                continue
            for i, s in enumerate(lst):
                if not isinstance(s, Step):
                    out.append(f"{where}[{i}] is {type(s).__name__} {s!r}, not a step word")
                    continue
                out += [f"{where}[{i}] {p}" for p in s.check()]
                for r in s.reqs():
                    out += [f"{where}[{i}] req {p}" for p in catalogue.audit((r,), side=self.side)]
        return out

    # -- rows: one per protocol version -------------------------------------------------------------
    def rows(self) -> list[tuple[str, str | None]]:
        """(pytest id, version) of each row of this case."""
        if not self.versions:
            return [(self.id, None)]
        return [(f"{self.id}[ocpp{v}]", v) for v in self.versions]

    def suite(self, version: str | None) -> str:
        return f"{self.standard} {version}" if version else self.standard

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "covers": list(self.covers), "requires": list(self.requires),
                "standard": self.standard, "block": self.block, "versions": list(self.versions),
                "actions": list(self.actions), "slow": self.slow,
                "steps": [s.title() for s in (*self.given, *self.steps)]}
