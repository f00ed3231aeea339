"""The EXI codec the stack uses: one per process ("jar" = iso15118's EXIficient JVM, or "own").

One JVM per process, shared by every EVCC/SECC in it (iso15118's EXI() is a process singleton anyway).
Calls are serialised by a lock: py4j opens a new socket to the JVM only when its pooled one is busy,
and the EV's loop thread lives in another network namespace where 127.0.0.1 is not the JVM's. With
one call at a time the single pooled socket (opened from the root namespace) is always reused.
The lock costs nothing: py4j calls are synchronous and the jar is the bottleneck (10-30 ms/call).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from v2g_bench.errors import BenchError

_codecs: dict[str, "SerializedCodec"] = {}
_codecs_lock = threading.Lock()


@dataclass
class CodecStats:
    encode_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)


class SerializedCodec:
    """IEXICodec adapter around another IEXICodec: one call at a time, timings recorded."""

    def __init__(self, inner, kind: str):
        self.inner, self.kind = inner, kind
        self._lock = threading.Lock()
        self.stats = CodecStats()
        # per thread: what the last encode got / decode produced (the trace reads it; each EV or
        # SECC runs its own loop thread, so this is that side's own last message)
        self.last = threading.local()
        self.inner.get_version()  # opens py4j's pooled socket from THIS (root-namespace) thread

    def encode(self, message: str, namespace: str) -> bytes:
        with self._lock:
            t = time.perf_counter()
            out = self.inner.encode(message, namespace)
            self.stats.encode_s.append(time.perf_counter() - t)
        self.last.encoded = message
        return bytes(out)

    def decode(self, stream: bytes, namespace: str) -> str:
        with self._lock:
            t = time.perf_counter()
            out = self.inner.decode(stream, namespace)
            self.stats.decode_s.append(time.perf_counter() - t)
        self.last.decoded = out
        return out

    def get_version(self) -> str:
        with self._lock:
            return self.inner.get_version()


def _make(kind: str):
    from v2g_bench.ev import compat

    compat.import_stack()
    from iso15118.shared.iexi_codec import IEXICodec

    if kind == "jar":
        from iso15118.shared.exificient_exi_codec import ExificientEXICodec

        inner = ExificientEXICodec()
    elif kind == "own":
        try:
            from v2g_bench.exi import IEXICodecAdapter  # provided by the EXI helper (v2g_bench/exi)
        except ImportError as exc:
            raise BenchError("codec 'own' is not available yet", where="roles.ev.codec",
                             fix="use codec = \"jar\" until v2g_bench.exi provides IEXICodecAdapter") from exc
        inner = IEXICodecAdapter()
    else:
        raise BenchError(f"unknown codec {kind!r}", where="roles.ev.codec", fix='use "jar" or "own"')
    codec = SerializedCodec(inner, kind)
    IEXICodec.register(SerializedCodec)
    return codec


def shared_codec(kind: str = "jar") -> SerializedCodec:
    """The process-wide codec of that kind (the JVM starts on first use). Call it from a thread in
    the ROOT network namespace (the test's main thread), never from the EV's loop thread first."""
    with _codecs_lock:
        if kind not in _codecs:
            _codecs[kind] = _make(kind)
        return _codecs[kind]
