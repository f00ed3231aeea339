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
    """Yield the `--set key=value` overrides for the lab: the bench profile's [lab.set], plus the
    ISO 15118 wire ([lab.iso15118]: a veth pair, the EV end in its own namespace, the lab's SECC
    enabled on the other end). Without the capability the lab runs without its SECC and the
    ISO 15118 tests skip with the reason (the EV role finds no wire in the lab's ready file)."""
    from v2g_bench.ev.labnet import lab_network
    overrides: dict[str, object] = {k: _toml_value(v) for k, v in (opts.get("set") or {}).items()}
    with lab_network(opts.get("iso15118") or {}) as net:
        overrides.update(net.overrides)
        overrides["_iso15118_unavailable"] = net.unavailable
        yield overrides
