"""Errors that name what went wrong, where, and how to fix it.

Every error the bench raises on purpose is a BenchError: the CLI prints `str(err)` as one line
and exits non-zero; the pytest plugin reports it as a bench error (Allure "broken"), never as a
DUT non-conformance.
"""
from __future__ import annotations


class BenchError(Exception):
    """Base class: `what` is wrong, `where` (file:key, instrument, command), and the `fix`."""

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.__str__())

    def __str__(self) -> str:
        s = f"{self.where}: {self.what}" if self.where else self.what
        return f"{s} (fix: {self.fix})" if self.fix else s


class ProfileError(BenchError):
    """A bench or DUT profile is invalid; `errors` lists every problem found, not just the first."""

    def __init__(self, errors: list[str], *, where: str | None = None):
        self.errors = list(errors)
        what = self.errors[0] if len(self.errors) == 1 else f"{len(self.errors)} problems:\n  " + "\n  ".join(self.errors)
        super().__init__(what, where=where)


class DriverNotFound(BenchError):
    pass


class RoleMissing(BenchError):
    """A test asked for a role that the bench profile does not define."""


class InstrumentError(BenchError):
    """An instrument answered garbage, late, not at all, or reported an error.

    `instrument` names it (role and identity/resource), `command` what was sent, `answer` what came back.
    """

    def __init__(self, what: str, *, instrument: str, command: str | None = None,
                 answer: str | None = None, fix: str | None = None):
        self.instrument, self.command, self.answer = instrument, command, answer
        where = instrument + (f" on {command!r}" if command else "")
        if answer is not None:
            what = f"{what} (answer: {answer!r})"
        super().__init__(what, where=where, fix=fix)


class InstrumentTimeout(InstrumentError):
    pass


class LimitViolation(BenchError):
    """A setpoint outside the configured limits was refused before anything was sent."""


class SafeStateError(BenchError):
    """A role could not be brought to (or verified in) its safe state. Always a bench error."""


class LabError(BenchError):
    """The virtual lab could not be started, reached or stopped."""


class CaseDefinitionError(BenchError):
    """A conformance case or one of its steps is wrong (unknown step, field, feature or ID; a predicate that
    raised; a bare assert). Refused at collection where it can be seen then; at run time a bench error, never
    a verdict against the charger."""


class Inconclusive(Exception):
    """The test could not reach a verdict (e.g. the DUT claimed nothing that could be checked).

    Reported as 'inconclusive': neither pass nor fail.
    """


class Nonconformance(AssertionError):
    """The DUT violated a requirement. `req` names the requirement/test-case ID(s)."""

    def __init__(self, message: str, *, req: str | tuple[str, ...] = ()):
        self.req = (req,) if isinstance(req, str) else tuple(req)
        prefix = f"[{', '.join(self.req)}] " if self.req else ""
        # re-raised with the message of another Nonconformance: its IDs are not prefixed twice
        super().__init__(message if prefix and message.startswith(prefix) else prefix + message)
