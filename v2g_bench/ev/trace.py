"""V2GTP message trace: every message with direction, time, decoded body and raw EXI, as JSONL.

Written line by line WHILE the session runs (flushed), so a crash still leaves the evidence; goes to
`Evidence.current().path("v2gtp-trace.jsonl")` inside a test, else to the path given.
"""
from __future__ import annotations

import collections
import json
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAYLOAD_TYPES = {
    0x8001: "EXI", 0x9000: "SDP request", 0x9001: "SDP response",
    0x8002: "-20 mainstream", 0x8003: "-20 AC", 0x8004: "-20 DC", 0x8005: "-20 ACDP", 0x8006: "-20 WPT",
    0x8007: "-20 SDP request wireless", 0x8008: "-20 SDP response wireless",
}


def message_name(decoded: Any) -> str:
    """Root element name of a decoded message (JSON dict from the codec), e.g. 'DCChargeLoopReq'."""
    if isinstance(decoded, dict) and decoded:
        key = next(iter(decoded))
        if key == "V2G_Message":   # -2 / DIN: the name is the body's element
            body = decoded[key].get("Body", {}) if isinstance(decoded[key], dict) else {}
            return next(iter(body), "V2G_Message")
        return key
    return "?"


@dataclass
class TraceEntry:
    t: float                  # time.monotonic()
    direction: str            # "tx" (EV -> charger) | "rx"
    name: str
    payload_type: int | None
    v2gtp_hex: str            # the whole V2GTP frame (header + EXI)
    exi_hex: str
    decoded: Any
    note: str = ""

    def as_dict(self) -> dict:
        return {"t": round(self.t, 6), "dir": self.direction, "name": self.name,
                "payload_type": self.payload_type, "v2gtp": self.v2gtp_hex, "exi": self.exi_hex,
                "decoded": self.decoded, **({"note": self.note} if self.note else {})}


class Trace:
    def __init__(self, path: str | Path | None = None, keep_last: int = 2000, mode: str = "a"):
        self.path = Path(path) if path else None
        self._fh = open(self.path, mode, encoding="utf-8") if self.path else None
        self.entries: collections.deque[TraceEntry] = collections.deque(maxlen=keep_last)
        self._lock = threading.Lock()

    @classmethod
    def for_current_test(cls, fallback: str | Path | None = None) -> "Trace":
        try:
            from v2g_bench.harness.evidence import Evidence

            ev = Evidence.current()
            if ev is not None:
                # one file per session of this test (v2gtp-trace.jsonl, v2gtp-trace-2.jsonl, ...),
                # truncated: a re-run of the same test must not append to the last run's file
                n = getattr(ev, "_v2gtp_traces", 0) + 1
                ev._v2gtp_traces = n
                return cls(ev.path("v2gtp-trace.jsonl" if n == 1 else f"v2gtp-trace-{n}.jsonl"), mode="w")
        except ImportError:
            pass
        return cls(fallback)

    def record(self, direction: str, frame: bytes, decoded: Any = None, note: str = "",
               t: float | None = None) -> TraceEntry:
        ptype = None
        exi = frame
        if len(frame) >= 8:
            _v, _i, ptype, _n = struct.unpack(">BBHI", frame[:8])
            exi = frame[8:]
        if isinstance(decoded, str):
            try:
                decoded = json.loads(decoded)
            except ValueError:
                pass
        entry = TraceEntry(time.monotonic() if t is None else t, direction, message_name(decoded),
                           ptype, frame.hex(), exi.hex(), decoded, note)
        with self._lock:
            self.entries.append(entry)
            if self._fh:
                self._fh.write(json.dumps(entry.as_dict(), default=str) + "\n")
                self._fh.flush()
        return entry

    def note(self, text: str) -> None:
        """A free-text line (e.g. injected misbehaviour) in the same stream."""
        with self._lock:
            if self._fh:
                self._fh.write(json.dumps({"t": round(time.monotonic(), 6), "dir": "note", "note": text}) + "\n")
                self._fh.flush()

    def last(self, n: int = 6) -> list[str]:
        out = []
        for e in list(self.entries)[-n:]:
            out.append(f"{e.direction} {e.name}" + (f" ({e.note})" if e.note else ""))
        return out

    def names(self, direction: str | None = None) -> list[str]:
        return [e.name for e in self.entries if direction is None or e.direction == direction]

    def close(self) -> None:
        with self._lock:
            if self._fh:
                self._fh.close()
                self._fh = None

    @staticmethod
    def load(path: str | Path) -> list[dict]:
        return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
