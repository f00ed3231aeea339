"""Errors of the conformance engine itself: never a verdict against the charger."""
from __future__ import annotations

from v2g_bench.errors import CaseDefinitionError

__all__ = ["CaseDefinitionError"]
