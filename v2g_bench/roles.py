"""The contract every role driver (instrument, emulator, DUT adapter) implements.

A bench profile role entry names a driver; the Bench opens it with `open(cfg, ctx)` and, on any
exit, calls `safe_state()` then `close()` in reverse opening order.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:   # only for the types: the contract module imports nothing heavy
    from v2g_bench.harness.bench import Bench
    from v2g_bench.harness.evidence import Evidence
    from v2g_bench.harness.labproc import LabHandle
    from v2g_bench.profiles import BenchProfile, DutProfile

# Roles a bench profile may define. A driver declares which of these it can play.
KNOWN_ROLES: dict[str, str] = {
    "ev": "EV emulator (ISO 15118 EVCC / DIN 70121)",
    "csms": "CSMS emulator (OCPP back-end the DUT connects to)",
    "dut": "the charger under test (its local control/inspection adapter)",
    "battery": "regenerative DC source/load emulating the EV battery",
    "analyzer": "power analyzer (DC link and AC side)",
    "meter": "energy meter (Modbus)",
    "charger": "charger local control over Modbus",
    "can": "CAN bus node(s) (battery emulator / BMS / CHAdeMO)",
    "grid": "grid simulator (AC source)",
    "ev_io": "EV-side interface board (IEC 61851 control pilot/proximity, plug relay, E-stop)",
    "chademo": "CHAdeMO EV emulator (CAN, V2H)",
    "plc": "the EV's HomePlug Green PHY link (ISO 15118-3 SLAC before SDP)",
}


@dataclass
class RoleConfig:
    """One `[roles.<name>]` table of a bench profile, after placeholder substitution."""

    role: str
    driver: str
    resource: str | None = None
    options: dict[str, Any] = field(default_factory=dict)   # every other key of the table
    limits: dict[str, float] = field(default_factory=dict)  # [roles.<name>.limits]
    timeout_s: float = 2.0
    source: str = "<profile>"                                 # file the role came from (for errors)

    def where(self, key: str | None = None) -> str:
        return f"{self.source}: roles.{self.role}" + (f".{key}" if key else "")


@dataclass
class BenchContext:
    """What a driver may need beyond its own config: the DUT profile, the lab, the evidence dir."""

    bench: BenchProfile | None = None
    dut: DutProfile | None = None
    lab: LabHandle | None = None          # None on a real bench
    evidence: Evidence | None = None      # None outside a test
    roles: Bench | None = None            # to reach other roles (e.g. the EV reads the analyzer)
    workdir: Path = Path("reports")


class RoleDriver(ABC):
    """Base class of every role driver (as python-can's BusABC: the Bench only ever uses this API)."""

    roles: ClassVar[tuple[str, ...]] = ()
    transport: ClassVar[str] = "none"
    required_limits: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    name: str = "role"              # the role it plays in this bench (set by open)

    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        """Driver-specific checks of its config; return human-readable problems (empty = OK)."""
        return []

    @classmethod
    @abstractmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext) -> "RoleDriver":
        """Open the transport, check identity and limits; the returned driver plays `cfg.role`."""

    @abstractmethod
    def identify(self) -> str:
        """The instrument's identity (*IDN? or the protocol's equivalent)."""

    @abstractmethod
    def safe_state(self) -> None:
        """Bring the role to its safe state and verify it (raise SafeStateError if unverifiable)."""

    @abstractmethod
    def close(self) -> None:
        """Release the transport. Idempotent."""

    def self_test(self) -> str:
        """A quick, harmless check for `v2g-bench instruments identify`; returns a short result."""
        return "ok: " + self.identify()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.safe_state()
        finally:
            self.close()
