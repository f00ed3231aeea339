"""What the harness prepares before it starts the virtual lab (e.g. the veth pair for ISO 15118).

Kept apart from labproc (which only starts a process) because it needs root-level network set-up
that the EV emulator owns; the lab gets the names through `--set` overrides.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def lab_overrides(opts: dict) -> Iterator[dict]:
    """Yield the `--set key=value` overrides for the lab; undo any set-up on exit."""
    overrides: dict[str, object] = {}
    for k, v in (opts.get("set") or {}).items():
        overrides[k] = v
    yield overrides
