"""The hard stop: every open energy source registers here, so any test (or atexit) can stop them all.

`hard_stop_all()` turns every registered output off without ramping and verifies it; it never raises
(it returns the problems), because it runs from failure paths.
"""
from __future__ import annotations

import atexit
import threading
import weakref

_lock = threading.Lock()
_open_sources: "weakref.WeakSet" = weakref.WeakSet()


def register(source) -> None:
    with _lock:
        _open_sources.add(source)


def unregister(source) -> None:
    with _lock:
        _open_sources.discard(source)


def open_sources() -> list:
    with _lock:
        return list(_open_sources)


def hard_stop_all() -> list[str]:
    """Output off (no ramp) on every open source; returns the problems (empty = all verified off)."""
    problems = []
    for src in open_sources():
        try:
            src.hard_stop()
        except Exception as e:  # keep going: the next source must be stopped too
            problems.append(f"{getattr(src, 'name', src)}: {e}")
    return problems


atexit.register(hard_stop_all)
