"""The stack's Java EXI codec (EXIficient jar inside `iso15118`) as a reference for tests/benchmarks.

One JVM per process (py4j gateway started on first use, shut down at exit). Only the differential
tests and the benchmark use it; the own codec never needs it.
"""
from __future__ import annotations

import atexit
import json
import threading

from v2g_bench.exi.codec import NAMESPACE_TO_SET
from v2g_bench.exi.errors import EXIDecodeError, EXIEncodeError, EXISchemaError
from v2g_bench.exi.grammar_gen import SCHEMA_SETS

_lock = threading.Lock()
_codec = None


def jar_codec():
    """The stack's ExificientEXICodec (starts the JVM once per process)."""
    global _codec
    with _lock:
        if _codec is None:
            try:
                from iso15118.shared.exificient_exi_codec import ExificientEXICodec
            except ImportError as exc:  # pragma: no cover - iso15118 is a dependency
                raise EXISchemaError(f"iso15118 is not installed ({exc})", fix="pip install iso15118") from exc
            _codec = ExificientEXICodec()
            atexit.register(shutdown)
        return _codec


def shutdown() -> None:
    global _codec
    with _lock:
        if _codec is not None:
            try:
                _codec.gateway.shutdown()
            except Exception:  # noqa: BLE001 - the JVM may already be gone at interpreter exit
                pass
            _codec = None


def _ns(schema: str) -> str:
    return SCHEMA_SETS[NAMESPACE_TO_SET.get(schema, schema)][1]


def jar_encode(message: dict, schema: str) -> bytes:
    c = jar_codec()
    try:
        out = c.encode(json.dumps(message), _ns(schema))
    except Exception as exc:  # py4j / jar errors come as plain Exceptions
        raise EXIEncodeError(f"jar refused the message: {exc}") from None
    return bytes(out)


def jar_decode(data: bytes, schema: str) -> dict:
    c = jar_codec()
    try:
        out = c.decode(bytes(data), _ns(schema))
    except Exception as exc:
        raise EXIDecodeError(f"jar refused the stream: {exc}", position=0) from None
    return json.loads(out)
