"""Workarounds for defects of `ocpp` 2.1.0 (measured here, see shared/STACKS.md); each has a test
in tests/unit/csms/test_csms_compat.py that fails without it.

1. Outbound field names in OCPP 2.1: the library turns dataclass fields back into JSON keys with
   `snake_to_camel_case`, which mis-cases 43 of the 555 property names of the 2.1 schemas
   (`limit_l2` -> `limitL2` instead of `limit_L2`, `fixed_pf` -> `fixedPf` instead of `fixedPF`,
   `receipt_url` -> `receiptURL` instead of `receiptUrl` ...), so the frame breaks the schema
   (FormatViolation). We derive the exact exceptions FROM THE SCHEMAS THEMSELVES (every property
   name whose snake form does not round-trip) and patch the converter with that table.
2. No CALLERROR for an unhandled 2.1 action: `_raise_key_error` only knows 1.6 and 2.0.1, so an
   action without a handler in 2.1 is silently dropped and the peer waits for its timeout
   (upstream PR #744 unreleased, issue #777 open). We answer with a CALLERROR. The codes follow the
   OCPP-J error-code table (NotImplemented = "requested Action is not known by receiver",
   NotSupported = "recognized but not supported"); the library has these two the other way round
   for 1.6/2.0.1, so we apply the table's meaning to 2.0.1 and 2.1 alike.
3. Python 3.11 loses task cancellations inside `ChargePoint.call()` (71 of 200 in a probe); we run
   on 3.12 where it does not happen. `check_python()` warns if someone runs us on 3.11.

`install()` is idempotent and is called when this package's emulator/station modules are imported.
"""
from __future__ import annotations

import json
import sys
import warnings
from collections import Counter
from functools import lru_cache

import ocpp.charge_point as _cp
from ocpp.exceptions import NotImplementedError as OcppNotImplemented
from ocpp.exceptions import NotSupportedError

from v2g_bench.csms.validation import schema_dir, schemas_for

_ORIGINAL_SNAKE_TO_CAMEL = _cp.snake_to_camel_case
_ORIGINAL_RAISE_KEY_ERROR = _cp._raise_key_error
_installed = False


def _property_names(node, out: Counter) -> None:
    if isinstance(node, dict):
        for k in node.get("properties", {}):
            out[k] += 1
        for v in node.values():
            _property_names(v, out)
    elif isinstance(node, list):
        for v in node:
            _property_names(v, out)


@lru_cache(maxsize=1)
def field_name_exceptions() -> dict[str, str]:
    """snake_case key -> the schema's own JSON name, for every name the library converts wrongly.

    (The library's converter recurses through the module global we patch, so it is only ever
    called here on {key: 0}: a scalar value, which our version returns untouched.)"""
    names: Counter = Counter()
    for version in ("2.0.1", "2.1"):
        for f in schema_dir(version).glob("*.json"):
            _property_names(json.loads(f.read_text(encoding="utf-8-sig")), names)
    candidates: dict[str, list[str]] = {}
    for name in names:
        snake = next(iter(_cp.camel_to_snake_case({name: 0})))
        if next(iter(_ORIGINAL_SNAKE_TO_CAMEL({snake: 0}))) != name:
            candidates.setdefault(snake, []).append(name)
    # 'soc' is ambiguous (2.1 uses 'soC' in LimitAtSoC/BatterySwap; the library emits 'SoC'):
    # take the spelling the schemas use most often.
    return {snake: max(cands, key=lambda n: names[n]) for snake, cands in candidates.items()}


def snake_to_camel_case(data):
    """The library's converter, with the schema-derived exceptions applied first."""
    if isinstance(data, dict):
        exceptions = field_name_exceptions()
        out = {}
        for key, value in data.items():
            if key in exceptions:
                new_key = exceptions[key]
            else:
                new_key = next(iter(_ORIGINAL_SNAKE_TO_CAMEL({key: None})))
            out[new_key] = snake_to_camel_case(value)
        return out
    if isinstance(data, list):
        return [snake_to_camel_case(v) for v in data]
    return data


# OCPP-J error-code texts (2.0.1 Part 4 Table 8, 2.1 Table 9); the library's default descriptions
# of these two classes are each other's.
NOT_IMPLEMENTED_TEXT = "Requested Action is not known by receiver"
NOT_SUPPORTED_TEXT = "Requested Action is recognized but not supported by the receiver"


def _raise_key_error(action, version):
    if version in ("2.0.1", "2.1"):
        if action not in schemas_for(version).actions:
            raise OcppNotImplemented(NOT_IMPLEMENTED_TEXT, details={"cause": f"{action} is not an OCPP {version} action"})
        raise NotSupportedError(NOT_SUPPORTED_TEXT, details={"cause": f"{action} is not supported by this station"})
    return _ORIGINAL_RAISE_KEY_ERROR(action, version)


def check_python() -> None:
    if sys.version_info < (3, 12):
        warnings.warn("ocpp ChargePoint.call() loses task cancellations on Python 3.11; use Python >= 3.12",
                      RuntimeWarning, stacklevel=2)


def install() -> None:
    """Patch the library in place (module globals that ChargePoint looks up at call time)."""
    global _installed
    if _installed:
        return
    _cp.snake_to_camel_case = snake_to_camel_case
    _cp._raise_key_error = _raise_key_error
    check_python()
    _installed = True


def uninstall() -> None:
    """Restore the library's own functions (tests use it to show each defect)."""
    global _installed
    _cp.snake_to_camel_case = _ORIGINAL_SNAKE_TO_CAMEL
    _cp._raise_key_error = _ORIGINAL_RAISE_KEY_ERROR
    _installed = False
