"""The EV emulator's own response timeouts, relaxed for conformance runs on a loaded machine.

The stack's EVCC gives up after its V2G_EVCC_Msg_Timeout (0.5 s in the charge loop, 2 s elsewhere).
When the bench judges the charger's response times from the capture's wire timestamps (the oracle),
the EV giving up early only turns a slow response into a lost session, hiding the measurement.
`set_floor(s)` makes every EVCC message timeout at least `s` (None: the stack's values again);
the SECC's states are untouched (wrapped only for modules under iso15118.evcc).
"""
from __future__ import annotations

_floor: float | None = None


def set_floor(seconds: float | None) -> None:
    global _floor
    if seconds is not None and not 0 < float(seconds) <= 120:
        raise ValueError(f"EV response timeout floor {seconds!r} out of (0, 120] s")
    _floor = None if seconds is None else float(seconds)
    _install()


def floor() -> float | None:
    return _floor


def _install() -> None:
    from v2g_bench.ev import compat

    compat.import_stack()
    from iso15118.shared.states import State

    if getattr(State.create_next_message, "_v2g_bench_ev_floor", False):
        return
    original = State.create_next_message

    def create_next_message(self, next_state, next_msg, next_msg_timeout, *args, **kwargs):
        if _floor is not None and type(self).__module__.startswith("iso15118.evcc"):
            try:
                if float(next_msg_timeout) < _floor:
                    next_msg_timeout = _floor
            except (TypeError, ValueError):
                pass
        return original(self, next_state, next_msg, next_msg_timeout, *args, **kwargs)

    create_next_message._v2g_bench_ev_floor = True
    State.create_next_message = create_next_message
