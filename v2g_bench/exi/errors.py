"""Typed errors of the EXI codec: every one names the element path and the bit position."""
from __future__ import annotations

from v2g_bench.errors import BenchError


class EXIError(BenchError):
    """Base of all EXI codec errors."""


class EXISchemaError(EXIError):
    """Grammar tables could not be built or loaded (missing package, unknown schema set)."""


class EXIEncodeError(EXIError):
    """A message (JSON/dict) does not fit the schema: names the element path, expected and got."""

    def __init__(self, what: str, *, path: str = "/", expected: str | None = None,
                 got: object = None, fix: str | None = None):
        self.path, self.expected, self.got = path, expected, got
        detail = what
        if expected is not None:
            detail += f"; expected {expected}"
        if got is not None:
            detail += f"; got {got!r}"
        super().__init__(detail, where=f"EXI encode at {path}", fix=fix)


class EXIDecodeError(EXIError):
    """An EXI stream could not be decoded (or, in strict mode, deviates from the schema).

    `position` is the bit offset in the stream (header included), `path` the element path.
    """

    def __init__(self, what: str, *, position: int, path: str = "/", expected: str | None = None,
                 got: object = None, fix: str | None = None):
        self.position, self.path, self.expected, self.got = position, path, expected, got
        detail = what
        if expected is not None:
            detail += f"; expected {expected}"
        if got is not None:
            detail += f"; got {got!r}"
        super().__init__(detail, where=f"EXI decode at bit {position} (byte {position // 8}) in {path}",
                         fix=fix)
