"""Driver registry: name -> RoleDriver class.

Built-in drivers are listed in each package's `DRIVERS` table (`"name": "module:Class"`), so the
list is visible in the code next to the drivers; a lab ships its own drivers as a plugin package
that registers the same in the entry-point group `v2g_bench.drivers` (as python-can does with
`can.interface`), without forking the project.
"""
from __future__ import annotations

import importlib
from functools import lru_cache
from importlib.metadata import entry_points

from v2g_bench.errors import DriverNotFound

ENTRY_POINT_GROUP = "v2g_bench.drivers"
# Packages whose DRIVERS table holds built-in drivers.
_BUILTIN_PACKAGES = ("v2g_bench.instruments", "v2g_bench.ev", "v2g_bench.csms", "v2g_bench.lab", "v2g_bench.dut")


_RUNTIME: dict[str, type] = {}


def register_driver(name: str, cls: type) -> None:
    """Register a driver class at run time (e.g. from a lab's conftest.py)."""
    _RUNTIME[name] = cls


@lru_cache(maxsize=1)
def driver_table() -> dict[str, str]:
    """All known drivers: name -> 'module:Class' (built-ins, then entry points)."""
    table: dict[str, str] = {}
    for pkg in _BUILTIN_PACKAGES:
        try:
            mod = importlib.import_module(pkg)
        except ModuleNotFoundError as e:
            if e.name == pkg:
                continue
            raise
        table.update(getattr(mod, "DRIVERS", {}) or {})
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table.setdefault(ep.name, ep.value)
    return table


def get_driver(name: str):
    """The driver class for `name`; DriverNotFound names the known ones."""
    if name in _RUNTIME:
        return _RUNTIME[name]
    table = driver_table()
    target = table.get(name)
    if target is None:
        known = ", ".join(sorted(set(table) | set(_RUNTIME))) or "(none)"
        raise DriverNotFound(f"unknown driver {name!r}", fix=f"use one of: {known}; or install a plugin "
                             f"that registers it in the entry-point group {ENTRY_POINT_GROUP!r}")
    mod_name, _, cls_name = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
        return getattr(mod, cls_name)
    except (ImportError, AttributeError) as e:
        raise DriverNotFound(f"driver {name!r} ({target}) cannot be loaded: {e}",
                             fix="check that its package and dependencies are installed ('v2g-bench doctor')") from e
