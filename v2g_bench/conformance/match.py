"""Expected fields: a case says what it wants as a (partial, nested) dict; a mismatch prints each wanted
field next to what came, so a failed verdict reads like a lab's deviation note.

    check_fields(frame.payload, {"status": "Accepted", "chargingSchedule.chargingRateUnit": one_of("W", "A")},
                 req="K01.FR.07", what="SetChargingProfileResponse")

Values are literals (compared with ==; numbers compare as numbers), nested dicts (partial match), lists (element
by element, same length) or matchers. A predicate that raises is the case's bug, never the charger's: it becomes a
CaseDefinitionError (a bench error).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from v2g_bench.conformance.errors import CaseDefinitionError
from v2g_bench.errors import Nonconformance

_MISSING = object()


class Matcher:
    """A value test with a description (shown as what was wanted)."""

    description = "?"

    def matches(self, value: Any) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def wants_presence(self) -> bool:
        """False for `absent`: a missing field is what it wants."""
        return True

    def __repr__(self) -> str:
        return self.description


class _Any(Matcher):
    description = "anything (present)"

    def matches(self, value):
        return True


class _Absent(Matcher):
    description = "absent"

    def matches(self, value):
        return value is _MISSING

    def wants_presence(self):
        return False


ANY = _Any()
present = ANY
absent = _Absent()


@dataclass(repr=False)
class one_of(Matcher):  # noqa: N801 - reads as English in a case table
    options: tuple

    def __init__(self, *options):
        self.options = options
        self.description = "one of " + ", ".join(map(repr, options))

    def matches(self, value):
        return any(_equal(value, o) for o in self.options)


class approx(Matcher):  # noqa: N801
    def __init__(self, expected: float, *, abs: float = 0.0, rel: float = 1e-6):  # noqa: A002 - pytest's names
        if not (math.isfinite(expected) and abs >= 0 and rel >= 0):
            raise CaseDefinitionError(f"approx({expected!r}, abs={abs!r}, rel={rel!r}): not a usable tolerance")
        self.expected, self.abs, self.rel = float(expected), float(abs), float(rel)
        self.description = f"{expected:g} ± {max(abs, rel * builtins_abs(expected)):g}"

    def matches(self, value):
        return _number(value) and builtins_abs(float(value) - self.expected) <= max(self.abs, self.rel * builtins_abs(self.expected))


class between(Matcher):  # noqa: N801
    def __init__(self, lo: float | None, hi: float | None):
        if lo is not None and hi is not None and lo > hi:
            raise CaseDefinitionError(f"between({lo!r}, {hi!r}): lower bound above upper bound")
        self.lo, self.hi = lo, hi
        self.description = f"between {lo if lo is not None else '-inf'} and {hi if hi is not None else '+inf'}"

    def matches(self, value):
        if not _number(value):
            return False
        v = float(value)
        return (self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi)


class where(Matcher):  # noqa: N801
    """A predicate with the words to say what it wants: `where(lambda v: v % 2 == 0, "an even number")`."""

    def __init__(self, predicate: Callable[[Any], bool], description: str):
        if not callable(predicate) or not description:
            raise CaseDefinitionError("where(predicate, description): both are needed")
        self.predicate, self.description = predicate, description

    def matches(self, value):
        if value is _MISSING:
            return False
        try:
            return bool(self.predicate(value))
        except Exception as e:  # noqa: BLE001 - the case's own predicate failed: the bench's fault
            raise CaseDefinitionError(f"the predicate for {self.description!r} raised {type(e).__name__}: {e} "
                                      f"on the value {value!r}", fix="fix the case's where(...) predicate") from e


def builtins_abs(x):
    return x if x >= 0 else -x


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _equal(got, want) -> bool:
    if isinstance(want, Matcher):
        return want.matches(got)
    if _number(got) and _number(want):
        return float(got) == float(want)
    return got == want


def expand_dotted(want: dict) -> dict:
    """{"a.b": 1, "a": {"c": 2}} -> {"a": {"b": 1, "c": 2}}."""
    out: dict = {}
    for key, value in want.items():
        if not isinstance(key, str) or not key:
            raise CaseDefinitionError(f"expected-field key {key!r} is not a field name")
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise CaseDefinitionError(f"expected field {key!r} conflicts with another entry")
        leaf = parts[-1]
        if isinstance(value, dict):
            value = expand_dotted(value)
            if isinstance(node.get(leaf), dict):
                node[leaf].update(value)
                continue
        node[leaf] = value
    return out


def mismatches(got: Any, want: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """Every (field path, wanted, got) that does not match; empty = all good."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [(path or "(message)", "an object with " + ", ".join(want), got)]
        out = []
        for k, w in want.items():
            g = got.get(k, _MISSING)
            p = f"{path}.{k}" if path else k
            if g is _MISSING:
                if isinstance(w, Matcher) and not w.wants_presence():
                    continue
                out.append((p, w, _MISSING))
                continue
            out += mismatches(g, w, p)
        return out
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [(path, want, got)]
        out = []
        for i, (g, w) in enumerate(zip(got, want)):
            out += mismatches(g, w, f"{path}[{i}]")
        return out
    return [] if _equal(got, want) else [(path, want, got)]


def describe(value: Any) -> str:
    if value is _MISSING:
        return "(missing)"
    if isinstance(value, Matcher):
        return value.description
    try:
        s = json.dumps(value, default=str)
    except (TypeError, ValueError):
        s = repr(value)
    return s if len(s) <= 200 else s[:197] + "..."


def check_fields(got: Any, want: dict, *, req: str | tuple[str, ...] = (), what: str = "the message") -> None:
    """Raise Nonconformance listing every wanted field next to what came."""
    bad = mismatches(got, expand_dotted(want))
    if bad:
        lines = "; ".join(f"{p}: wanted {describe(w)}, got {describe(g)}" for p, w, g in bad)
        raise Nonconformance(f"{what}: {lines}", req=req)


def matches(got: Any, want: dict) -> bool:
    return not mismatches(got, expand_dotted(want))
