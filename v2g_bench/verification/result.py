"""Result objects shared by every verification: a verdict, the numbers, and what was checked (cited)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from v2g_bench.errors import BenchError, Inconclusive, Nonconformance

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


class SampleError(BenchError):
    """Measured samples or a commanded profile are unusable (out of order, NaN, mismatched lengths...)."""


@dataclass
class Check:
    """One criterion: `value` compared against `limit` (`op` is "<=" or ">="), with its source cited."""

    name: str
    value: float
    limit: float | None
    unit: str
    op: str = "<="
    cite: str = ""
    passed: bool | None = None   # None = could not be evaluated (-> inconclusive)
    detail: str = ""

    def __post_init__(self):
        if self.value is not None:
            self.value = float(self.value)  # numpy scalars would make `passed` a numpy bool (`is False` fails)
        if self.limit is not None:
            self.limit = float(self.limit)
        if self.passed is None and self.limit is not None and self.value is not None and not math.isnan(self.value):
            self.passed = bool(self.value <= self.limit if self.op == "<=" else self.value >= self.limit)

    def line(self) -> str:
        mark = {True: "PASS", False: "FAIL", None: "----"}[self.passed]
        lim = f" (limit {self.op} {self.limit:g} {self.unit})" if self.limit is not None else ""
        val = f"{self.value:.6g}" if isinstance(self.value, (int, float)) else str(self.value)
        cite = f" [{self.cite}]" if self.cite else ""
        return f"{mark} {self.name}: {val} {self.unit}{lim}{cite}{' - ' + self.detail if self.detail else ''}"


@dataclass
class VerificationResult:
    kind: str
    checks: list[Check] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)   # why inconclusive, if it is

    @property
    def verdict(self) -> str:
        if any(c.passed is False for c in self.checks):
            return FAIL
        if self.reasons or not self.checks or any(c.passed is None and c.limit is not None for c in self.checks):
            return INCONCLUSIVE
        return PASS

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.passed is False]

    @property
    def cites(self) -> list[str]:
        return sorted({c.cite for c in self.checks if c.cite})

    def check(self, name: str) -> Check:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        head = f"{self.kind}: {self.verdict.upper()}"
        lines = [head] + ["  " + c.line() for c in self.checks] + [f"  inconclusive: {r}" for r in self.reasons]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        def clean(v):
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, (np.floating, np.integer)):
                return v.item()
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, (list, tuple)):
                return [clean(x) for x in v]
            return v
        return {"kind": self.kind, "verdict": self.verdict, "reasons": self.reasons,
                "checks": [{"name": c.name, "value": clean(c.value), "limit": c.limit, "unit": c.unit, "op": c.op,
                            "passed": c.passed, "cite": c.cite, "detail": c.detail} for c in self.checks],
                "metrics": clean(self.metrics)}

    def assert_pass(self) -> "VerificationResult":
        """Raise Nonconformance (citing what failed) or Inconclusive; return self when it passed."""
        if self.verdict == FAIL:
            raise Nonconformance(f"{self.kind} failed:\n" + "\n".join("  " + c.line() for c in self.failed),
                                 req=tuple(c.cite for c in self.failed if c.cite))
        if self.verdict == INCONCLUSIVE:
            raise Inconclusive(f"{self.kind}: " + ("; ".join(self.reasons) or "nothing could be checked"))
        return self


def as_series(name: str, values, *, where: str, n: int | None = None) -> np.ndarray:
    """A 1-D finite float array or a SampleError naming the field and the first bad index."""
    if values is None:
        raise SampleError(f"{name} is missing", where=where)
    try:
        a = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError) as e:
        raise SampleError(f"{name} is not numeric ({e})", where=where) from None
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise SampleError(f"{name}[{bad[0]}] is {a[bad[0]]} ({bad.size} non-finite values)", where=where,
                          fix="drop or repair invalid samples before judging; a gap is not a zero")
    if n is not None and a.size != n:
        raise SampleError(f"{name} has {a.size} values but the timestamps have {n}", where=where)
    return a


def as_timestamps(name: str, values, *, where: str, min_len: int = 2) -> np.ndarray:
    t = as_series(name, values, where=where)
    if t.size < min_len:
        raise SampleError(f"{name} has {t.size} samples, need at least {min_len}", where=where)
    d = np.diff(t)
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise SampleError(f"{name}[{i}] = {t[i]:.6f} is not after {name}[{i - 1}] = {t[i - 1]:.6f} "
                          f"(samples out of order or duplicated)", where=where,
                          fix="sort by timestamp and remove duplicates at the source (one monotonic clock)")
    return t
