"""SCPI drivers on pymeasure: command tables (TOML) become pymeasure `control`/`measurement` properties.

Why pymeasure: its declarative properties make a driver read like the manual's command table and its
`expected_protocol` tests the exact strings without I/O. What we add on top:
  * strict parsing: an answer that is not a number raises InstrumentError naming the instrument,
    the command and the answer (pymeasure would silently return the string);
  * transport failures (timeouts, closed sockets) become InstrumentTimeout / InstrumentError;
  * after every set, the model's error query (`SYST:ERR?`) is read and a non-zero entry raises.
"""
from __future__ import annotations

import threading

import re
from typing import Any, Callable

from pymeasure.instruments import Instrument

from v2g_bench.errors import InstrumentError, InstrumentTimeout

_NUM = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]*)\s*$")
_TRUE = {"1", "ON", "TRUE"}
_FALSE = {"0", "OFF", "FALSE"}


def parse_number(text: str, *, strip_units: bool = False) -> float:
    """'1.5E+01' -> 15.0; with strip_units also '48.00 V' -> 48.0 (EA replies carry units)."""
    m = _NUM.match(text)
    if not m or (m.group(2) and not strip_units):
        raise ValueError(text)
    return float(m.group(1))


def parse_bool(text: str) -> bool:
    t = text.strip().upper()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(text)


class ScpiInstrument(Instrument):
    """pymeasure Instrument with strict parsing, typed errors and a per-model error query."""

    error_query: str | None = "SYST:ERR?"   # None: the model has no error queue
    strip_units = False                      # answers like '48.00 V'
    max_error_reads = 16                     # bound the error-queue drain (never loop forever)

    def __init__(self, adapter, name: str = "scpi instrument", **kwargs):
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        self.last_command: str | None = None
        # One query at a time on the wire: a sampling thread, a watchdog keep-alive and a hard stop
        # may share the instrument with the test; a query's write and read must not interleave.
        self.io_lock = threading.RLock()

    def ask(self, command: str, query_delay=None) -> str:
        with self.io_lock:
            return super().ask(command, query_delay)

    # --- transport with typed errors -------------------------------------------------------
    def _io_error(self, e: Exception, command: str | None) -> InstrumentError:
        text = f"{type(e).__name__}: {e}"
        if "timeout" in text.lower() or isinstance(e, TimeoutError):
            return InstrumentTimeout("no answer within the timeout", instrument=self.name, command=command,
                                     fix="check the instrument is on, the resource string and the termination")
        return InstrumentError(f"transport failed ({text})", instrument=self.name, command=command,
                               fix="check the connection (cable/socket) and that the instrument is powered")

    def write(self, command: str, **kwargs) -> None:
        self.last_command = command
        try:
            with self.io_lock:
                super().write(command, **kwargs)
        except (AssertionError, InstrumentError):
            raise
        except Exception as e:  # pyvisa VisaIOError, OSError, ConnectionError ...
            raise self._io_error(e, command) from e

    def read(self, **kwargs) -> str:
        try:
            with self.io_lock:
                return super().read(**kwargs)
        except (AssertionError, InstrumentError):
            raise
        except Exception as e:
            raise self._io_error(e, self.last_command) from e

    def values(self, command: str, separator: str = ",", cast: Callable = float,
               preprocess_reply=None, maxsplit: int = -1, **kwargs) -> list:
        """pymeasure's values(), but garbage raises instead of coming back as a string."""
        response = self.ask(command, **kwargs).strip()
        if callable(preprocess_reply):
            response = preprocess_reply(response)
        out = []
        for part in response.split(separator, maxsplit=maxsplit):
            try:
                if cast is float:
                    out.append(parse_number(part, strip_units=self.strip_units))
                elif cast is bool:
                    out.append(parse_bool(part))
                else:
                    out.append(cast(part.strip()))
            except (ValueError, TypeError):
                raise InstrumentError("answer is not what the command returns", instrument=self.name,
                                      command=command, answer=response) from None
        return out

    def query_float(self, command: str) -> float:
        return self.values(command)[0]

    # --- error queue -----------------------------------------------------------------------
    def check_errors(self) -> list:
        """Drain the error queue; raise on the first real error, naming the command that caused it."""
        if not self.error_query:
            return []
        culprit = self.last_command
        errors = []
        for _ in range(self.max_error_reads):
            answer = self.ask(self.error_query).strip()
            code_text = answer.split(",", 1)[0].strip()
            try:
                code = int(float(code_text))
            except ValueError:
                raise InstrumentError("error query returned garbage", instrument=self.name,
                                      command=self.error_query, answer=answer) from None
            if code == 0:
                break
            errors.append(answer)
        if errors:
            raise InstrumentError(f"instrument reported {errors[0]}", instrument=self.name, command=culprit,
                                  answer="; ".join(errors), fix="see the programming manual for that error code")
        return errors

    check_set_errors = check_errors
    def check_get_errors(self) -> list:
        return self.check_errors()


def _control(name: str, spec: dict[str, Any]):
    """One command-table entry -> a pymeasure property."""
    get, set_ = spec.get("get"), spec.get("set")
    doc = spec.get("doc", name)
    kind = spec.get("kind", "float")
    kw: dict[str, Any] = {}
    if kind == "bool":
        on, off = spec.get("true", "1"), spec.get("false", "0")
        kw["cast"] = bool
        kw["set_process"] = lambda v, on=on, off=off: on if v else off
    elif kind == "str":
        kw["cast"] = str
    if "separator" in spec:
        kw["separator"] = spec["separator"]
    check = bool(spec.get("check_errors", True))
    if get and set_:
        return Instrument.control(get, set_, doc, check_set_errors=check, **kw)
    if get:
        return Instrument.measurement(get, doc, **{k: v for k, v in kw.items() if k != "set_process"})
    if set_:
        return Instrument.setting(set_, doc, check_set_errors=check,
                                  **{k: v for k, v in kw.items() if k == "set_process"})
    raise ValueError(f"command {name!r} has neither get nor set")


def build_instrument_class(class_name: str, profile: dict[str, Any],
                           base: type[ScpiInstrument] = ScpiInstrument) -> type[ScpiInstrument]:
    """Make a pymeasure Instrument subclass whose properties are the profile's [commands] table.

    Entries with `get`/`set` become properties; entries with `write` (actions such as
    `OUTP:PROT:CLE`) stay in `cls.actions` and are sent with `inst.do(name)`.
    """
    attrs: dict[str, Any] = {"actions": {}, "__doc__": profile.get("model", {}).get("family", class_name)}
    sess = profile.get("session", {})
    if "error_query" in sess:
        attrs["error_query"] = sess["error_query"] or None
    if "strip_units" in sess:
        attrs["strip_units"] = bool(sess["strip_units"])
    for name, spec in profile.get("commands", {}).items():
        if "write" in spec:
            attrs["actions"][name] = spec
        else:
            attrs[name] = _control(name, spec)
    return type(class_name, (base,), attrs)


def do(inst: ScpiInstrument, action: str, **fmt) -> None:
    """Send an action command from the table (`write = "OUTP:PROT:CLE"`), then check errors."""
    spec = type(inst).actions[action]
    inst.write(spec["write"].format(**fmt))
    if spec.get("check_errors", True):
        inst.check_errors()
