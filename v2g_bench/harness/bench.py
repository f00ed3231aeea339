"""The Bench: opens the roles a test asks for and unwinds them to a safe state, always.

Roles open on demand, in the order the test asks for them; on any exit (end of test, exception,
KeyboardInterrupt, a role failing to open) every opened role gets `safe_state()` then `close()`
in reverse order. Errors during the unwind are collected, never allowed to skip another role.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from v2g_bench.drivers import get_driver
from v2g_bench.errors import RoleMissing, SafeStateError
from v2g_bench.profiles import BenchProfile, DutProfile
from v2g_bench.roles import BenchContext, RoleDriver

log = logging.getLogger(__name__)

# Every Bench alive in this process, so a hard stop (signal, plugin emergency) reaches them all.
_OPEN_BENCHES: "list[Bench]" = []


@dataclass
class UnwindRecord:
    role: str
    step: str             # "safe_state" or "close"
    ok: bool
    error: str = ""
    seconds: float = 0.0


@dataclass
class Bench:
    profile: BenchProfile
    dut: DutProfile | None = None
    lab: object | None = None          # labproc.LabHandle when the built-in lab runs
    evidence: object | None = None
    opened: list[tuple[str, RoleDriver]] = field(default_factory=list)
    unwind_log: list[UnwindRecord] = field(default_factory=list)

    def __post_init__(self):
        lab_info = getattr(self.lab, "info", None)
        self._resolved = self.profile.resolved(lab_info) if (lab_info or not self.profile.uses_builtin_lab) else self.profile
        _OPEN_BENCHES.append(self)

    @property
    def resolved_profile(self) -> BenchProfile:
        """The bench profile with `{lab.…}` placeholders filled in from the running lab."""
        return self._resolved

    # -- roles -------------------------------------------------------------------------------
    def has_role(self, name: str) -> bool:
        return name in self.profile.roles

    def role(self, name: str) -> RoleDriver:
        """The opened driver for role `name` (opening it on first use)."""
        for n, drv in self.opened:
            if n == name:
                return drv
        return self.open_role(name)

    def open_role(self, name: str) -> RoleDriver:
        cfg = self._resolved.roles.get(name)
        if cfg is None:
            raise RoleMissing(f"this test needs role {name!r}, which bench profile {self.profile.name!r} does not define",
                              where=str(self.profile.path),
                              fix=f"add a [roles.{name}] table (driver, resource, limits) to the bench profile")
        cls = get_driver(cfg.driver)
        ctx = BenchContext(bench=self.profile, dut=self.dut, lab=self.lab, evidence=self.evidence, roles=self)
        drv = cls.open(cfg, ctx)
        drv.name = name
        self.opened.append((name, drv))
        return drv

    # -- unwind ------------------------------------------------------------------------------
    def close(self) -> list[UnwindRecord]:
        """Safe state + close for every opened role, newest first. Returns the records; raises
        SafeStateError afterwards if any role could not be made safe (the bench is then unsafe)."""
        failures = []
        while self.opened:
            name, drv = self.opened.pop()
            for step in ("safe_state", "close"):
                t0 = time.monotonic()
                try:
                    getattr(drv, step)()
                    rec = UnwindRecord(name, step, True, seconds=time.monotonic() - t0)
                except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt must not skip the rest either
                    rec = UnwindRecord(name, step, False, f"{type(e).__name__}: {e}", time.monotonic() - t0)
                    if step == "safe_state":
                        failures.append(rec)
                    log.error("unwinding role %s: %s failed: %s", name, step, rec.error)
                self.unwind_log.append(rec)
        if self in _OPEN_BENCHES:
            _OPEN_BENCHES.remove(self)
        if failures:
            raise SafeStateError("; ".join(f"role {r.role}: {r.error}" for r in failures),
                                 fix="check the instruments by hand: their outputs may still be on")
        return self.unwind_log

    def __enter__(self) -> "Bench":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def hard_stop_all() -> list[str]:
    """Emergency: unwind every open bench in this process. Returns the errors, never raises."""
    errors = []
    for b in list(_OPEN_BENCHES):
        try:
            b.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(str(e))
    return errors
