"""Every OCPP frame as it crossed the wire: raw text, parsed form, direction, time.

Frames are appended to a JSONL file while the CSMS runs (one line per frame, flushed), so a crash
still leaves the trace; the same objects stay in memory for the test API (`expect`, reports).
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from v2g_bench.csms.ocpp_time import utc_now_iso  # noqa: F401 - re-exported (payloads, server)

CALL, CALLRESULT, CALLERROR = 2, 3, 4
TYPE_NAMES = {CALL: "CALL", CALLRESULT: "CALLRESULT", CALLERROR: "CALLERROR"}




@dataclass
class Frame:
    """One WebSocket text frame. `payload` is the parsed OCPP payload (None if unparsable).

    `frame["eventType"]` reads the payload, so `where=lambda msg: msg["eventType"] == "Started"` works.
    """

    seq: int
    t: float                          # time.monotonic()
    wall: str                         # UTC wall clock, for humans
    station: str
    direction: str                    # "in" (station -> CSMS) or "out" (CSMS -> station)
    raw: str
    msg_type: int | None = None
    unique_id: str | None = None
    action: str | None = None         # for CALLRESULT/CALLERROR: the action of the CALL it answers
    payload: Any = None
    error_code: str | None = None     # CALLERROR only
    problems: list[str] = field(default_factory=list)   # schema / protocol problems found by us
    note: str = ""

    def __getitem__(self, key):
        return self.payload[key]

    def get(self, key, default=None):
        return self.payload.get(key, default) if isinstance(self.payload, dict) else default

    @property
    def kind(self) -> str:
        return TYPE_NAMES.get(self.msg_type, "INVALID")

    def to_record(self) -> dict:
        return {"seq": self.seq, "t": round(self.t, 6), "wall": self.wall, "station": self.station,
                "dir": self.direction, "type": self.kind, "id": self.unique_id, "action": self.action,
                "payload": self.payload, "error_code": self.error_code, "problems": self.problems,
                "note": self.note, "raw": self.raw}

    def short(self) -> str:
        arrow = "->" if self.direction == "in" else "<-"
        text = self.raw if len(self.raw) <= 300 else self.raw[:300] + f"... ({len(self.raw)} chars)"
        extra = f"  !! {'; '.join(self.problems)}" if self.problems else ""
        return f"[{self.station} {arrow} CSMS] {self.kind} {self.action or ''} {text}{extra}"


class FrameRecorder:
    """Keeps frames in memory (optional) and streams them as JSONL to `path` (optional)."""

    def __init__(self, path: str | Path | None = None, *, retain: bool = True):
        self.path = Path(path) if path else None
        self.retain = retain
        self.frames: list[Frame] = []
        self.count = 0
        self._lock = threading.Lock()
        self._fh = None
        self.listeners: list[Callable[[Frame], None]] = []
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", buffering=1, encoding="utf-8")   # line-buffered

    def record(self, *, station: str, direction: str, raw: str | bytes, **parsed) -> Frame:
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", errors="replace")
        with self._lock:
            self.count += 1
            frame = Frame(seq=self.count, t=time.monotonic(), wall=utc_now_iso(), station=station,
                          direction=direction, raw=raw, **parsed)
            if self.retain:
                self.frames.append(frame)
        return frame

    def write(self, frame: Frame) -> None:
        """Persist (after the parsed fields and problems are filled in) and tell listeners."""
        if self._fh:
            with self._lock:
                self._fh.write(json.dumps(frame.to_record(), default=str) + "\n")
        for cb in list(self.listeners):
            cb(frame)

    def close(self) -> None:
        with self._lock:
            if self._fh:
                self._fh.close()
                self._fh = None
