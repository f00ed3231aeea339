"""The schema of bench and DUT profiles (pydantic, every table closed to unknown keys), and its errors as
one line each: the key path, what is wrong, what was given, and a "did you mean" for a misspelt key.

profiles.py loads the TOML, validates it against these models, then adds the checks a schema cannot
make (drivers, resource strings, instrument ratings, DUT vs bench). Other helpers extend the schema by
a field in the model that owns it (e.g. a DUT tolerance in `Tolerances`, a [lab] option in `LabOptions`).
"""
from __future__ import annotations

import difflib
import math
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, Extra, StrictBool, StrictInt, StrictStr, ValidationError, validator

# ------------------------------------------------------------------------------ value types ---


def _type_name(v: Any) -> str:
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return type(v).__name__


def _number_type(name: str, *, gt: float | None = None, ge: float | None = None, le: float | None = None):
    """A float field that takes only TOML numbers (not true, not "5"), never NaN/inf, within bounds."""

    class Number(float):
        @classmethod
        def __get_validators__(cls):
            yield cls.validate

        @classmethod
        def validate(cls, v: Any) -> float:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"must be a number, got {_type_name(v)} {v!r}"[:200])
            v = float(v)
            if not math.isfinite(v):
                raise ValueError(f"must be a finite number, got {v!r}")
            if gt is not None and not v > gt:
                raise ValueError(f"must be > {gt:g}, got {v:g}")
            if ge is not None and not v >= ge:
                raise ValueError(f"must be >= {ge:g}, got {v:g}")
            if le is not None and not v <= le:
                raise ValueError(f"must be <= {le:g}, got {v:g}")
            return v

    Number.__name__ = name
    return Number


Finite = _number_type("Finite")
NonNegative = _number_type("NonNegative", ge=0)
Positive = _number_type("Positive", gt=0)
Fraction = _number_type("Fraction", ge=0, le=1)


class NonEmptyStr(StrictStr):
    @classmethod
    def __get_validators__(cls):
        yield cls.validate

    @classmethod
    def validate(cls, v: Any) -> str:
        if not isinstance(v, str):
            raise TypeError(f"must be a string, got {_type_name(v)} {v!r}"[:200])
        if not v.strip():
            raise ValueError("must not be empty")
        return v


Scalar = Union[StrictBool, StrictInt, Finite, StrictStr]   # bool before int: TOML true is not 1


class Closed(BaseModel):
    """A table that refuses keys it does not know (the typo that would otherwise judge by a default)."""

    class Config:
        extra = Extra.forbid


# ------------------------------------------------------------------------------ bench profile ---


class BenchSection(Closed):
    name: NonEmptyStr
    description: StrictStr = ""
    lab: Optional[Literal["builtin"]] = None
    laboratory: StrictStr = ""            # named in the test report
    operator: StrictStr = ""


class SeccOptions(Closed):
    """[lab.iso15118.secc]: the simulated charger's SECC (keys as ev.labnet.SECC_KEYS)."""
    protocols: Optional[List[NonEmptyStr]] = None
    tls: Optional[StrictBool] = None
    tls13: Optional[StrictBool] = None
    enforce_tls: Optional[StrictBool] = None
    auth: Optional[List[NonEmptyStr]] = None
    max_charge_w: Optional[Positive] = None
    max_discharge_w: Optional[Positive] = None
    codec: Optional[Literal["own", "jar"]] = None
    pki_path: Optional[NonEmptyStr] = None
    sequence_timeout_s: Optional[Positive] = None


class Iso15118Options(Closed):
    enabled: StrictBool = True
    secc: Optional[SeccOptions] = None


class LabOptions(Closed):
    """[lab]: how the harness starts the built-in virtual lab."""
    seed: StrictInt = 1
    time_scale: Positive = 1.0
    start_timeout_s: Positive = 60.0
    config: Optional[NonEmptyStr] = None
    set: Dict[StrictStr, Union[Scalar, List[Scalar]]] = {}
    iso15118: Optional[Iso15118Options] = None

    @validator("seed")
    def _seed(cls, v):
        if v < 0:
            raise ValueError(f"must be >= 0, got {v}")
        return v


class RoleEntry(BaseModel):
    """[roles.<role>]: the keys every role has; any other key is a driver option (checked by the driver,
    and against `option_keys` when the driver declares them)."""
    driver: NonEmptyStr
    resource: Optional[NonEmptyStr] = None
    timeout_s: Positive = 2.0
    description: StrictStr = ""
    limits: Dict[StrictStr, NonNegative] = {}
    serial: Optional[Union[StrictStr, StrictInt]] = None   # the instrument's, for the report
    calibration_due: Optional[Any] = None                   # a TOML date (checked in profiles.py)

    class Config:
        extra = Extra.allow


class BenchFile(Closed):
    bench: BenchSection
    lab: Optional[LabOptions] = None
    roles: Dict[StrictStr, Dict[StrictStr, Any]]


ROLE_KEYS = tuple(RoleEntry.__fields__)

# ------------------------------------------------------------------------------ DUT profile ---


class DutSection(Closed):
    vendor: NonEmptyStr
    model: NonEmptyStr
    serial: NonEmptyStr
    firmware: NonEmptyStr


class Claims(Closed):
    energy_services: List[NonEmptyStr]
    control_modes: List[NonEmptyStr] = ["scheduled"]
    protocols: List[NonEmptyStr] = []
    auth: List[NonEmptyStr] = ["EIM"]
    tls: StrictBool = False
    ocpp_versions: List[NonEmptyStr] = []
    security_profile: Optional[Literal[1, 2, 3]] = None
    features: List[NonEmptyStr] = []

    @validator("security_profile", pre=True)
    def _sp_int(cls, v):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise TypeError(f"must be 1, 2 or 3 (an OCPP security profile), got {_type_name(v)} {v!r}")
        return v


class Rating(Closed):
    voltage_min_v: NonNegative
    voltage_max_v: Positive
    current_max_a: Positive
    power_max_w: Positive


class Ratings(Closed):
    charge: Rating
    discharge: Optional[Rating] = None


class Tolerances(Closed):
    """[tolerances]: what each judge reads (verification.compliance and the efficiency/energy judges).
    A new judge adds its key here."""
    power_abs_w: Optional[NonNegative] = None
    power_rel: Optional[Fraction] = None
    settle_s: Optional[NonNegative] = None
    dead_time_max_s: Optional[NonNegative] = None
    t90_max_s: Optional[NonNegative] = None
    energy_rel: Optional[Fraction] = None
    current_abs_a: Optional[NonNegative] = None
    round_trip_efficiency_min: Optional[Fraction] = None


class DutFile(Closed):
    dut: DutSection
    claims: Claims
    ratings: Ratings
    tolerances: Tolerances = Tolerances()
    pixit: Dict[StrictStr, Union[Scalar, List[Scalar]]] = {}   # PIXIT names belong to the cases that read them


# ------------------------------------------------------------------------------ errors ---


def did_you_mean(key: str, known: Any) -> str:
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _fields_at(model: Any, loc: tuple) -> list[str] | None:
    """The keys a table at `loc` (inside `model`) may have, for the "did you mean"."""
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.__fields__.get(part)
        if field is None:
            return None
        model = field.type_
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.__fields__)
    return None


def _given(data: Any, loc: tuple) -> Any:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return None
    return data


def _messages(model: type[BaseModel], data: dict, err: ValidationError) -> list[str]:
    out, seen = [], set()
    for e in err.errors():
        loc = tuple(p for p in e["loc"] if p != "__root__")
        path = ".".join(str(p) for p in loc) or "(file)"
        kind, msg = e["type"], e["msg"]
        if kind == "value_error.extra":
            known = _fields_at(model, loc[:-1]) or []
            line = (f"{path}: unknown key{did_you_mean(loc[-1], known)} "
                    f"(known: {', '.join(known) or 'none'})")
        elif kind == "value_error.missing":
            line = f"{path}: missing (fix: add {loc[-1]} = <value>)"
        elif kind.startswith("value_error.const") or kind == "value_error.literal" or "permitted" in msg:
            given = _given(data, loc)
            line = f"{path}: {given!r} is not allowed ({msg})"
        elif msg.startswith(("must ", "value is not", "str type", "value could not")) or kind.startswith("type_error"):
            given = _given(data, loc)
            if msg.startswith("must "):
                line = f"{path}: {msg}"
            else:
                line = f"{path}: {msg} (got {_type_name(given)} {given!r})"[:300]
        else:
            line = f"{path}: {msg}"
        # a Union tries every member: keep the first message per key
        if path in seen:
            continue
        seen.add(path)
        out.append(line)
    return out


def validate(model: type[BaseModel], data: dict) -> tuple[BaseModel | None, list[str]]:
    """(the model, []) or (None, one message per problem)."""
    try:
        return model.parse_obj(data), []
    except ValidationError as e:
        return None, _messages(model, data, e)
