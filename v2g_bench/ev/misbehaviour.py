"""Misbehaviour on demand: one armed fault per call, applied when the EV SENDS a named message.

Used by EVEmulator.misbehave(kind, at="DCChargeLoopReq", nth=1, ...). Each kind says what reaches
the charger instead of the correct frame, so conformance tests can check the charger's reaction.
"""
from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field


class Misbehaviour(str, enum.Enum):
    DELAY = "delay"                        # send `seconds` late (probe the charger's timeouts)
    OUT_OF_SEQUENCE = "out_of_sequence"    # replay an earlier request instead (replay="SessionSetupReq"|"previous"|name)
    WRONG_SESSION_ID = "wrong_session_id"  # this request with another SessionID in its header
    MALFORMED_HEADER = "malformed_header"  # V2GTP version byte wrong (0x02/0xFD)
    CORRUPT_EXI = "corrupt_exi"            # EXI body bytes inverted after the header byte
    ABRUPT_CLOSE = "abrupt_close"          # TCP RST instead of this request
    STOP_ANSWERING = "stop_answering"      # send nothing, keep TCP open until the charger closes it
    MUTATE = "mutate"                      # this request with field `path` (dotted attributes) set to `value`
    RAW_HEADER = "raw_header"              # V2GTP header fields replaced: version=, inverse=, payload_type=, length=
    OVERSIZED = "oversized"                # `extra` bytes appended to the payload, the length field counts them


@dataclass
class Armed:
    kind: Misbehaviour
    at: str
    nth: int = 1
    params: dict = field(default_factory=dict)
    seen: int = 0
    fired: bool = False


class Injector:
    def __init__(self) -> None:
        self._armed: list[Armed] = []
        self._lock = threading.Lock()
        self.fired: list[Armed] = []

    def arm(self, kind: Misbehaviour, at: str, nth: int = 1, **params) -> None:
        if nth < 1:
            raise ValueError("nth counts from 1")
        if kind is Misbehaviour.DELAY and float(params.get("seconds", -1)) < 0:
            raise ValueError("delay needs seconds >= 0")
        with self._lock:
            self._armed.append(Armed(kind, at, nth, params))

    def disarm_all(self) -> None:
        with self._lock:
            self._armed.clear()

    def take(self, name: str) -> Armed | None:
        """Count a message about to be sent; return the fault to apply to it, if any."""
        with self._lock:
            for a in self._armed:
                if not a.fired and (a.at == name or name.replace("_", "") == a.at.replace("_", "")):
                    a.seen += 1
                    if a.seen == a.nth:
                        a.fired = True
                        self.fired.append(a)
                        return a
        return None


def raw_header(frame: bytes, version: int | None = None, inverse: int | None = None,
               payload_type: int | None = None, length: int | None = None) -> bytes:
    """The frame with chosen V2GTP header fields (the -4 V2GTP cases: wrong version, unknown payload type,
    a length that runs past the data)."""
    v, i = frame[0], frame[1]
    pt, n = int.from_bytes(frame[2:4], "big"), int.from_bytes(frame[4:8], "big")
    v = v if version is None else int(version)
    i = i if inverse is None else int(inverse)
    pt = pt if payload_type is None else int(payload_type)
    n = n if length is None else int(length)
    return bytes([v & 0xFF, i & 0xFF]) + pt.to_bytes(2, "big") + (n & 0xFFFFFFFF).to_bytes(4, "big") + frame[8:]


def oversized(frame: bytes, extra: int) -> bytes:
    body = frame[8:] + bytes(int(extra))
    return frame[:4] + len(body).to_bytes(4, "big") + body


def malform_header(frame: bytes) -> bytes:
    return bytes([0x02, 0xFD]) + frame[2:]


def corrupt_exi(frame: bytes) -> bytes:
    header, body = frame[:8], frame[8:]
    if len(body) < 2:
        return header + bytes(b ^ 0xFF for b in body)
    return header + body[:1] + bytes(b ^ 0xFF for b in body[1:])
