"""What the harness prepares before it starts the virtual lab, and the `--set` overrides it passes.

Kept apart from labproc (which only starts a process): the ISO 15118 network (a veth pair, the EV
end in its own namespace) needs root-level set-up owned by the EV emulator; the lab gets the
names through `--set` overrides and the EV role gets its end through the lab handle.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator


def _toml_value(v: object) -> str:
    """`--set` values are TOML literals: true, 1.5, "text"."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


@contextmanager
def lab_overrides(opts: dict) -> Iterator[dict]:
    """Yield the `--set key=value` overrides for the lab (from the bench profile's [lab.set])."""
    overrides: dict[str, object] = {k: _toml_value(v) for k, v in (opts.get("set") or {}).items()}
    yield overrides
