"""Reading values out of decoded ISO 15118 / DIN messages (the nested dicts our codec and the iso15118 stack's
decoders produce), in one place for the EV emulator, the conformance steps and the capture oracle."""
from __future__ import annotations

from typing import Any


def find_key(obj: Any, key: str) -> Any:
    """The first value of `key` anywhere inside a decoded message (depth first, lists included); None if absent."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            r = find_key(v, key)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find_key(v, key)
            if r is not None:
                return r
    return None


def rational(v: Any) -> float | None:
    """A -20 RationalNumber {Value, Exponent} or a -2/DIN PhysicalValue {Value, Multiplier} as a float; None if
    `v` is not one."""
    if isinstance(v, dict) and "Value" in v:
        return float(v["Value"]) * 10.0 ** int(v.get("Exponent", v.get("Multiplier", 0)))
    return None
