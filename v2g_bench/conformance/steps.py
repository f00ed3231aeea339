"""Steps: the words a case is written in. A step is a small object with a `name` (its Allure step title), the
requirement `req` it checks and `run(ctx)`. The vocabularies (ocpp.py, iso15118.py, judge.py) are subclasses;
`step(name, fn, req=)` wraps a plain function for what they cannot say."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from v2g_bench.errors import CaseDefinitionError

if TYPE_CHECKING:
    from v2g_bench.conformance.context import CaseContext

# the kinds a step may be: the report groups and colours by them
KINDS = ("given", "stimulus", "expect", "judge", "action", "step")


class Step:
    """Base class of every step word."""

    kind: str = "step"
    name: str = "step"
    req: str | tuple[str, ...] | None = None

    def run(self, ctx: CaseContext) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def reqs(self) -> tuple[str, ...]:
        if not self.req:
            return ()
        return (self.req,) if isinstance(self.req, str) else tuple(self.req)

    def title(self) -> str:
        r = self.reqs()
        return (f"[{', '.join(r)}] " if r else "") + self.name

    def check(self) -> list[str]:
        """Problems visible at collection (bad arguments): listed, with the row, before anything runs."""
        return []


class FnStep(Step):
    """A plain-function step: `fn(ctx)` does what the vocabulary cannot say."""

    def __init__(self, name: str, fn: Callable[[CaseContext], Any], req: str | tuple[str, ...] | None = None,
                 kind: str = "step"):
        self.name, self.fn, self.req, self.kind = name, fn, req, kind

    def __repr__(self) -> str:
        return f"step({self.name!r})"

    def run(self, ctx):
        return self.fn(ctx)

    def check(self):
        return [] if callable(self.fn) else [f"step {self.name!r}: {self.fn!r} is not callable"]


def step(name: str, fn: Callable[[CaseContext], Any], *, req: str | tuple[str, ...] | None = None,
         kind: str = "step") -> FnStep:
    if kind not in KINDS:
        raise CaseDefinitionError(f"step {name!r}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    return FnStep(name=name, fn=fn, req=req, kind=kind)


@dataclass(frozen=True)
class V:
    """A reference to a value saved by an earlier step: `V("started.transactionInfo.transactionId")` reads
    ctx.vars["started"]["transactionInfo"]["transactionId"] when the step runs."""

    path: str

    def __repr__(self) -> str:
        return f"<{self.path}>"

    def get(self, vars_: dict) -> Any:
        head, *rest = self.path.split(".")
        if head not in vars_:
            raise CaseDefinitionError(f"V({self.path!r}): no earlier step saved {head!r} "
                                      f"(saved: {', '.join(sorted(vars_)) or 'nothing'})")
        node = vars_[head]
        for i, part in enumerate(rest):
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, TypeError, ValueError):
                # a mandatory field is caught by schema validation before this; so it is the case's path
                raise CaseDefinitionError(f"V({self.path!r}): the saved value has no "
                                          f"{head}.{'.'.join(rest[:i + 1])}",
                                          fix="check the path, or expect the field first") from None
        return node
