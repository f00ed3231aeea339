"""Our own check of every OCPP frame against the JSON schemas shipped in the `ocpp` package.

Independent of the library's validation (which runs jsonschema Draft4 in a thread executor and
overloads at 5,000 stations): we load the same schema files ourselves and compile them with
jsonschema-rs (~1 us per TransactionEvent), with `format` (date-time, uri) checked too.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jsonschema_rs
import ocpp

# The WebSocket subprotocol names and the schema folder of each OCPP version we speak.
SUBPROTOCOLS = {"2.0.1": "ocpp2.0.1", "2.1": "ocpp2.1"}
VERSION_OF_SUBPROTOCOL = {v: k for k, v in SUBPROTOCOLS.items()}
_SCHEMA_DIRS = {"2.0.1": "v201", "2.1": "v21"}


def schema_dir(version: str) -> Path:
    if version not in _SCHEMA_DIRS:
        raise ValueError(f"unsupported OCPP version {version!r}; supported: {sorted(_SCHEMA_DIRS)}")
    return Path(os.path.dirname(ocpp.__file__)) / _SCHEMA_DIRS[version] / "schemas"


@dataclass(frozen=True)
class SchemaProblem:
    """One way a payload breaks its schema, with the OCPP-J error code it maps to."""

    path: str        # JSON pointer-ish path in the payload, '' = the payload itself
    message: str
    kind: str        # jsonschema-rs error kind (Type, Required, Enum, Format, ...)

    @property
    def ocpp_error_code(self) -> str:
        # OCPP-J 2.0.1 part 4 section 4.3: which CALLERROR a payload problem deserves.
        if self.kind in ("Required", "AdditionalProperties", "MinItems", "MaxItems"):
            return "OccurrenceConstraintViolation"
        if self.kind in ("Type",):
            return "TypeConstraintViolation"
        if self.kind in ("Enum", "Minimum", "Maximum", "MinLength", "MaxLength", "Format", "Pattern",
                         "MultipleOf", "ExclusiveMinimum", "ExclusiveMaximum"):
            return "PropertyConstraintViolation"
        return "FormatViolation"

    def __str__(self) -> str:
        return f"{self.path or '<payload>'}: {self.message}"


class OcppSchemas:
    """Compiled request/response validators of one OCPP version, built lazily per action."""

    def __init__(self, version: str):
        self.version = version
        self.dir = schema_dir(version)
        self.actions = frozenset(p.name[: -len("Request.json")] for p in self.dir.glob("*Request.json"))
        self._validators: dict[str, object] = {}

    def schema(self, action: str, kind: str) -> dict:
        return json.loads((self.dir / f"{action}{kind}.json").read_text(encoding="utf-8-sig"))

    def validator(self, action: str, kind: str):
        key = action + kind
        v = self._validators.get(key)
        if v is None:
            v = self._validators[key] = jsonschema_rs.validator_for(self.schema(action, kind), validate_formats=True)
        return v

    def check(self, action: str, kind: str, payload) -> list[SchemaProblem]:
        """Problems of `payload` as the `kind` ("Request"/"Response") of `action`; [] = valid."""
        if action not in self.actions:
            return [SchemaProblem("", f"{action!r} is not an OCPP {self.version} action", "UnknownAction")]
        v = self.validator(action, kind)
        if v.is_valid(payload):      # fast path: the common case costs one call
            return []
        return [SchemaProblem("/".join(str(p) for p in e.instance_path), e.message, type(e.kind).__name__)
                for e in v.iter_errors(payload)]


@lru_cache(maxsize=None)
def schemas_for(version: str) -> OcppSchemas:
    return OcppSchemas(version)
