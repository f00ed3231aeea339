"""Grammar-driven random messages (for differential tests against the jar, fuzzing, benchmarks).

Walks the same grammar tables the codec uses: in each state it picks one production (ending the
element more likely the bigger the message gets), draws a value inside its datatype's facets, and
builds the stack's JSON shape. Works with a `random.Random` or a Hypothesis `draw` (shrinkable).
"""
from __future__ import annotations

import base64
import random
import string

from v2g_bench.exi.codec import Grammar
from v2g_bench.exi.grammar_gen import AT, CH, DSIG, EE, SE, SE_ANY

_ALNUM = string.ascii_letters + string.digits
# non-abstract substitution-group heads with empty types: valid EXI, but the jar's JAXB layer
# cannot map them ("Missing class indicator field"), so the differential tests leave them out
JAR_UNSUPPORTED = ("CLReqControlMode", "CLResControlMode", "EVChargeParameter", "EVSEChargeParameter",
                   "EVSEStatus", "EVStatus", "SASchedules", "Entry", "TimeInterval",
                   "EVPowerDeliveryParameter", "BodyElement")
# roots the jar maps (its JAXB layer knows whole messages only for -2 and DIN)
JAR_ROOTS = {"iso2": ("V2G_Message",), "din": ("V2G_Message",)}


class _Rng:
    """Choice source backed by random.Random."""

    def __init__(self, rng: random.Random):
        self.r = rng

    def int(self, lo: int, hi: int) -> int:
        return self.r.randint(lo, hi)

    def bool(self, p_true: float = 0.5) -> bool:
        return self.r.random() < p_true


class _Draw:
    """Choice source backed by Hypothesis (so failures shrink)."""

    def __init__(self, draw):
        from hypothesis import strategies as st

        self.d, self.st = draw, st

    def int(self, lo: int, hi: int) -> int:
        return self.d(self.st.integers(lo, hi))

    def bool(self, p_true: float = 0.5) -> bool:
        return self.d(self.st.integers(0, 999)) < p_true * 1000


class MessageGenerator:
    def __init__(self, grammar: Grammar, *, budget: int = 40, max_bytes: int = 48,
                 allow_signature: bool = False, signature_roots: bool = False,
                 skip: frozenset = frozenset(JAR_UNSUPPORTED)):
        self.g = grammar
        self.budget = budget          # element count after which optional content stops
        self.max_bytes = max_bytes    # cap for binary values (certificates are drawn up to this)
        self.allow_signature = allow_signature
        self.skip = skip
        self._blocked = {}            # type index -> True if it needs unsupported content
        # xmldsig's globals are roots of every set, but as a document root the jar writes them with
        # the set's namespace (SE(*)); they are exercised inside Header/Signature and as fragments
        self.roots = [self.g.elements[e][0] for e in self.g.doc if self._root_ok(e)
                      and (signature_roots or self.g.elements[e][1] != DSIG or self.g.set_name == "xmldsig")]

    def _root_ok(self, el: int) -> bool:
        name, ns, tidx = self.g.elements[el]
        if (ns == DSIG and not self.allow_signature) or name in self.skip:
            return False
        return not self._needs_blocked(tidx, set())

    def _needs_blocked(self, tidx: int, seen: set) -> bool:
        """True if every path through the type needs a wildcard / xmldsig content we skip."""
        if tidx in self._blocked:
            return self._blocked[tidx]
        if tidx in seen:
            return False
        seen.add(tidx)
        t = self.g.types[tidx]
        # walk required-only productions: a state whose every choice is blocked blocks the type
        blocked = False
        state, steps = 0, 0
        while steps < 10000:
            steps += 1
            prods = t.states[state].prods
            if any(k == EE for k, _, _ in prods):
                break
            ok = [(k, a, n) for k, a, n in prods if self._prod_ok(k, a, seen) and not (k == CH and t.mixed)]
            if not ok:
                blocked = True
                break
            state = ok[0][2]
        self._blocked[tidx] = blocked
        return blocked

    def _prod_ok(self, kind: int, arg: int, seen: set) -> bool:
        if kind == SE_ANY:
            return False
        if kind == SE:
            name, ns, tidx = self.g.elements[arg]
            if (ns == DSIG and not self.allow_signature) or name in self.skip:
                return False
            return not self._needs_blocked(tidx, seen)
        return True

    # ------------------------------------------------------------------------------------------
    def random(self, rng: random.Random, root: str | None = None) -> dict:
        return self._message(_Rng(rng), root)

    def strategy(self, root: str | None = None):
        from hypothesis import strategies as st

        @st.composite
        def _s(draw):
            return self._message(_Draw(draw), root)

        return _s()

    def _message(self, c, root: str | None) -> dict:
        if root is None:
            root = self.roots[c.int(0, len(self.roots) - 1)]
        hit = self.g.doc_by_name.get(root) or self.g.frag_by_name[root]  # fragment roots too
        el = hit[1]
        self._count = 0
        return {root: self._element(c, self.g.elements[el][2], 0)}

    def _element(self, c, tidx: int, depth: int):
        self._count += 1
        t = self.g.types[tidx]
        if t.is_simple_type:
            return self._value(c, t.simple)
        out: dict = {}
        text = None
        closed: set[str] = set()
        last = None
        state = t.states[0]
        while True:
            opts = []
            for k, a, n in state.prods:
                if k == EE:
                    opts.append((k, a, n))
                elif k == SE:
                    name = self.g.elements[a][0]
                    if name in closed or (name in out and name not in t.multi) or not self._prod_ok(k, a, set()):
                        continue
                    opts.append((k, a, n))
                elif k == AT or (k == CH and not t.mixed):
                    opts.append((k, a, n))  # mixed text: the jar's JSON has no place for it
            if not opts:
                raise RuntimeError(f"generator stuck in type {t.name}")
            has_ee = any(k == EE for k, _, _ in opts)
            over = self._count > self.budget or depth > 12
            if has_ee and (over or c.bool(0.3)):
                break
            cand = [o for o in opts if o[0] != EE] or opts
            k, a, n = cand[c.int(0, len(cand) - 1)] if not over else cand[0]
            if k == EE:
                break
            if k == SE:
                name = self.g.elements[a][0]
                if last is not None and last != name:
                    closed.add(last)  # the dict-of-lists shape cannot interleave names
                last = name
                v = self._element(c, self.g.elements[a][2], depth + 1)
                if name in t.multi:
                    out.setdefault(name, []).append(v)
                else:
                    out[name] = v
            elif k == AT:
                out[self.g.attributes[a][0]] = self._value(c, self.g.attributes[a][2])
            else:
                text = self._value(c, a)
            state = t.states[n]
        if t.simple is not None:
            if t.attr_names:
                out["value"] = text
                return out
            return text
        return out

    def _value(self, c, dt: int):
        d = self.g.datatypes[dt]
        k = d[0]
        if k == "nbit":
            return c.int(d[1], d[2])
        if k == "uint":
            hi = d[2] if d[2] is not None else 2**64 - 1
            return self._edgy(c, d[1], hi)
        if k == "int":
            lo = d[1] if d[1] is not None else -(2**63)
            hi = d[2] if d[2] is not None else 2**63 - 1
            return self._edgy(c, lo, hi)
        if k == "bool":
            return c.bool()
        if k == "enum":
            return d[1][c.int(0, len(d[1]) - 1)]
        if k == "str":
            lo = d[1] or 0
            hi = min(d[2] if d[2] is not None else 24, 24)
            lo = min(lo, hi)
            n = c.int(max(lo, 1), max(hi, 1))
            return "".join(_ALNUM[c.int(0, len(_ALNUM) - 1)] for _ in range(n))
        if k in ("hex", "b64"):
            lo = d[1] or 0
            hi = min(d[2] if d[2] is not None else self.max_bytes, self.max_bytes)
            lo = min(lo, hi)
            n = c.int(max(lo, 1), max(hi, 1))
            raw = bytes(c.int(0, 255) for _ in range(n))
            return raw.hex().upper() if k == "hex" else base64.b64encode(raw).decode()
        if k == "list":
            return [self._value(c, d[1]) for _ in range(c.int(1, 3))]
        raise RuntimeError(f"no generator for datatype {k}")

    @staticmethod
    def _edgy(c, lo: int, hi: int) -> int:
        """Mostly small numbers, sometimes the facet edges (where codecs break)."""
        r = c.int(0, 9)
        if r == 0:
            return lo
        if r == 1:
            return hi
        if r < 5:
            return c.int(lo, hi)
        return max(lo, min(hi, c.int(-300, 3000)))


def diff_budget(per_set_default: float = 5.0) -> tuple[int, float]:
    """(max messages, seconds) per schema set for the differential tests.

    `V2G_EXI_DIFF_N` fixes the count (e.g. 1000 for the full run; the time budget is then not
    applied); otherwise `V2G_EXI_DIFF_SECONDS` (default `per_set_default`) is a time budget per set
    and the count adapts to the machine (the jar costs 15-40 ms a call on a loaded box)."""
    import os

    n = os.environ.get("V2G_EXI_DIFF_N")
    if n:
        return int(n), float("inf")
    return 100_000, float(os.environ.get("V2G_EXI_DIFF_SECONDS", per_set_default))
