"""A real SCPI parser and instrument core for the lab's simulated instruments (no I/O in here).

Implements what IEEE 488.2 and SCPI-1999 require of a device's parser, so that a driver written from
a vendor manual is exercised as it would be by the instrument:

- headers: short form (upper-case part) or long form, case-insensitive, optional nodes in `[...]`,
  numeric suffixes (`ITEM<n>` written `ITEM#` in patterns), queries with `?`;
- program messages: `;` separates message units, a following header without a leading `:` is
  relative to the previous header's path (SCPI-99 vol. 1, 6.2.4), a leading `:` resets to the root,
  common commands (`*XXX`) never change the path;
- program data: NRf numbers with optional multiplier/unit suffix, MIN/MAX/DEF, booleans ON/OFF/1/0,
  character data (short/long forms), quoted strings;
- status: error/event queue (max 20, overflow -> -350), `SYST:ERR?`, `*ESR?` bits set from the error
  class, `*STB?` (EAV, QUES, MAV, ESB, OPER summary bits), `*CLS`, `*OPC`, `*OPC?`, `*WAI`, `*ESE`,
  `*SRE`, `*RST` (dialect hook), `*IDN?`, `*TST?`;
- standard errors: -100 Command error, -102 Syntax error, -104 Data type error, -108 Parameter not
  allowed, -109 Missing parameter, -113 Undefined header, -222 Data out of range, -224 Illegal
  parameter value, -350 Queue overflow, -363 Input buffer overrun (line too long), -410 Query
  INTERRUPTED, -420 Query UNTERMINATED.

Hand-written on purpose: the Python SCPI server libraries on PyPI are either client-side (pyvisa,
pymeasure) or exact-string matchers (pyvisa-sim) that cannot couple values to a model nor parse
short/long forms, optional nodes, suffixes and compound messages as an instrument does.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

ERROR_TEXT = {
    0: "No error",
    -100: "Command error",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
    -410: "Query INTERRUPTED",
    -420: "Query UNTERMINATED",
}

QUEUE_MAX = 20

# *ESR bits (IEEE 488.2 11.5.1.1)
ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME, ESR_PON = 1, 4, 8, 16, 32, 128
# *STB bits
STB_EAV, STB_QUES, STB_MAV, STB_ESB, STB_OPER = 4, 8, 16, 32, 128


class ScpiError(Exception):
    """Raised by handlers and parameter converters; becomes an entry in the error queue."""

    def __init__(self, code: int, detail: str = ""):
        self.code, self.detail = code, detail
        super().__init__(f"{code},{ERROR_TEXT.get(code, 'Error')}{'; ' + detail if detail else ''}")


# ------------------------------------------------------------------------------ header patterns

_MNEMONIC = re.compile(r"^([A-Za-z][A-Za-z_]*?)(\d*)$")
_HEADER_CHARS = re.compile(r"^[A-Za-z0-9_:*?]+$")


@dataclass(frozen=True)
class _Node:
    short: str          # upper-case short form
    long: str           # upper-case long form
    optional: bool
    suffix: bool        # accepts a numeric suffix

    def matches(self, name: str, digits: str) -> int | None:
        """Return the suffix value (1 if absent) when `name`+`digits` matches, else None."""
        if name != self.short and name != self.long:
            return None
        if digits and not self.suffix:
            return None
        return int(digits) if digits else 1


def parse_pattern(pattern: str) -> tuple[_Node, ...]:
    """`[SOURce:]VOLTage[:LEVel]` -> nodes. `#` after a mnemonic marks a numeric suffix."""
    nodes: list[_Node] = []
    for m in re.finditer(r"\[:?([A-Za-z#]+):?\]|:?([A-Za-z#]+)", pattern):
        text = m.group(1) or m.group(2)
        optional = m.group(1) is not None
        suffix = text.endswith("#")
        text = text.rstrip("#")
        short = "".join(c for c in text if c.isupper())
        nodes.append(_Node(short or text.upper(), text.upper(), optional, suffix))
    return tuple(nodes)


def _match(nodes: Sequence[_Node], parts: Sequence[tuple[str, str]]) -> list[int] | None:
    """Match typed mnemonics against nodes (optional nodes may be skipped); return suffixes."""
    def rec(i: int, j: int, acc: list[int]) -> list[int] | None:
        if j == len(parts):
            return acc if all(n.optional for n in nodes[i:]) else None
        if i == len(nodes):
            return None
        n = nodes[i]
        s = n.matches(*parts[j])
        if s is not None:
            r = rec(i + 1, j + 1, acc + [s])
            if r is not None:
                return r
        if n.optional:
            return rec(i + 1, j, acc)
        return None
    return rec(0, 0, [])


# ------------------------------------------------------------------------------ parameters

_NRF = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")
_MULT = {"EX": 1e18, "PE": 1e15, "T": 1e12, "G": 1e9, "MA": 1e6, "K": 1e3, "M": 1e-3, "U": 1e-6,
         "N": 1e-9, "P": 1e-12, "F": 1e-15}


@dataclass
class Num:
    """Numeric parameter: NRf with optional multiplier+unit, MIN/MAX/DEF; range-checked (-222)."""
    lo: float = -math.inf
    hi: float = math.inf
    unit: str = ""
    default: float | None = None
    integer: bool = False

    def convert(self, text: str) -> float:
        t = text.strip()
        u = t.upper()
        if u in ("MIN", "MINIMUM"):
            return self.lo
        if u in ("MAX", "MAXIMUM"):
            return self.hi
        if u in ("DEF", "DEFAULT") and self.default is not None:
            return self.default
        if u in ("INF", "+INF", "NINF", "-INF", "NAN"):
            raise ScpiError(-222, text)
        m = _NRF.match(t)
        if not m:
            raise ScpiError(-104, f"expected a number, got {text!r}")
        value = float(m.group(1))
        suf = m.group(2).upper()
        if suf:
            unit = self.unit.upper()
            if unit and suf.endswith(unit):
                suf = suf[: -len(unit)]
            if suf:
                if unit == "A" and suf == "MA":       # SCPI: MA means milli for ampere
                    mult = 1e-3
                elif suf in _MULT:
                    mult = _MULT[suf]
                else:
                    raise ScpiError(-104, f"bad unit/suffix {m.group(2)!r}")
                value *= mult
        if not math.isfinite(value):
            raise ScpiError(-222, text)
        if value < self.lo - 1e-12 * max(1.0, abs(self.lo)) or value > self.hi + 1e-12 * max(1.0, abs(self.hi)):
            raise ScpiError(-222, f"{value:g} outside {self.lo:g}..{self.hi:g}")
        if self.integer:
            value = float(round(value))
        return value


@dataclass
class Bool:
    def convert(self, text: str) -> bool:
        u = text.strip().upper()
        if u == "ON":
            return True
        if u == "OFF":
            return False
        try:
            return round(float(u)) != 0
        except ValueError:
            raise ScpiError(-224, f"expected ON|OFF|1|0, got {text!r}") from None


@dataclass
class Choice:
    """Character data, e.g. Choice("PS4Q|PS2Q|BATTery"): returns the long form, upper case."""
    spec: str

    def __post_init__(self):
        self._opts = []
        for o in self.spec.split("|"):
            short = "".join(c for c in o if c.isupper() or c.isdigit()) if any(c.islower() for c in o) else o.upper()
            self._opts.append((short.upper(), o.upper()))

    def convert(self, text: str) -> str:
        u = text.strip().upper()
        for short, long in self._opts:
            if u == short or u == long:
                return long
        raise ScpiError(-224, f"{text!r} is not one of {self.spec}")


@dataclass
class Text:
    def convert(self, text: str) -> str:
        t = text.strip()
        if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'":
            return t[1:-1].replace(t[0] * 2, t[0])
        raise ScpiError(-104, "expected a quoted string")


@dataclass
class Any_:
    """Raw text (the handler converts), e.g. Yokogawa `<function>` names."""
    def convert(self, text: str) -> str:
        return text.strip()


def split_outside_quotes(text: str, sep: str) -> list[str]:
    """Split at `sep` outside '…' / "…" strings (SCPI program units at ';', parameters at ',').
    Raises -102 on an unterminated string."""
    out, cur, quote = [], [], None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if quote:
        raise ScpiError(-102, "unterminated string")
    out.append("".join(cur))
    return out


def split_params(data: str) -> list[str]:
    """Split program data at commas outside quotes. Raises -102 on an unterminated string."""
    out = [p.strip() for p in split_outside_quotes(data, ",")]
    if out == [""]:
        out = []
    if any(p == "" for p in out):
        raise ScpiError(-102, "empty parameter")
    return out


# ------------------------------------------------------------------------------ commands


@dataclass
class Command:
    pattern: str
    set: Callable[..., Any] | None = None         # set(ctx, *params)
    query: Callable[..., Any] | None = None       # query(ctx, *params) -> str
    params: tuple = ()                            # converters for set
    query_params: tuple = ()                      # converters for query (optional params)
    min_params: int | None = None                 # default: all set params required
    header: bool = True                           # prefix answers with the header (if enabled)
    nodes: tuple[_Node, ...] = field(default=(), init=False)

    def __post_init__(self):
        self.nodes = parse_pattern(self.pattern)


@dataclass
class Call:
    """What a handler receives: the suffixes, the resolved header, and the instrument."""
    suffixes: list[int]
    header: str
    inst: "ScpiInstrument"

    def suffix(self, i: int = -1) -> int:
        return self.suffixes[i]


class ScpiInstrument:
    """One simulated instrument: its commands, status registers and error queue.

    A dialect subclasses it, adds `Command`s and overrides `idn`, `reset()`, `ques_condition()`.
    The error queue is per instrument (as on the real thing), shared by all its connections.
    """

    idn = "v2g-bench,SCPI-CORE,0,0"
    max_line = 4096

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.errors: list[tuple[int, str]] = []
        self.esr = 0
        self.ese = 0
        self.sre = 0
        self._cache: dict[str, tuple[Command, list[int]] | None] = {}
        self.add_commands([
            Command("SYSTem:ERRor[:NEXT]", query=lambda c: self.pop_error()),
            Command("SYSTem:ERRor:COUNt", query=lambda c: str(len(self.errors))),
            Command("SYSTem:VERSion", query=lambda c: "1999.0"),
        ])

    # -- configuration -----------------------------------------------------------------------

    def add_commands(self, cmds: Iterable[Command]) -> None:
        self.commands.extend(cmds)
        self._cache.clear()

    # -- error queue --------------------------------------------------------------------------

    def push_error(self, code: int, detail: str = "") -> None:
        if -199 <= code <= -100:
            self.esr |= ESR_CME
        elif -299 <= code <= -200:
            self.esr |= ESR_EXE
        elif -399 <= code <= -300 or code > 0:
            self.esr |= ESR_DDE
        elif -499 <= code <= -400:
            self.esr |= ESR_QYE
        if len(self.errors) >= QUEUE_MAX:
            self.errors[-1] = (-350, ERROR_TEXT[-350])
            return
        text = ERROR_TEXT.get(code, "Error")
        if detail:
            text = f"{text};{detail}"[:255]
        self.errors.append((code, text))

    def pop_error(self) -> str:
        code, text = self.errors.pop(0) if self.errors else (0, ERROR_TEXT[0])
        return self.format_error(code, text)

    def format_error(self, code: int, text: str) -> str:
        return f'{code:+d},"{text}"'

    # -- dialect hooks -----------------------------------------------------------------------

    def reset(self) -> None:
        """*RST: the dialect restores its documented reset state."""

    def ques_condition(self) -> int:
        return 0

    def oper_condition(self) -> int:
        return 0

    def fmt_header(self, cmd: Command, suffixes: list[int]) -> str:
        """Prefix for query responses (Yokogawa COMM:HEAD ON); SCPI default: none."""
        return ""

    # -- status -------------------------------------------------------------------------------

    def stb(self, mav: bool = False) -> int:
        s = 0
        if self.errors:
            s |= STB_EAV
        if self.ques_condition():
            s |= STB_QUES
        if mav:
            s |= STB_MAV
        if self.esr & self.ese:
            s |= STB_ESB
        if self.oper_condition():
            s |= STB_OPER
        if s & self.sre:
            s |= 64
        return s

    def _common(self, name: str, query: bool, params: list[str]) -> str | None:
        def no_params():
            if params:
                raise ScpiError(-108)

        def one_int() -> int:
            if not params:
                raise ScpiError(-109)
            if len(params) > 1:
                raise ScpiError(-108)
            return int(Num(0, 255, integer=True).convert(params[0]))

        if query:
            no_params()
            if name == "*IDN":
                return self.idn
            if name == "*OPC":
                return "1"
            if name == "*ESR":
                v, self.esr = self.esr, 0
                return str(v)
            if name == "*STB":
                return str(self.stb())
            if name == "*ESE":
                return str(self.ese)
            if name == "*SRE":
                return str(self.sre)
            if name == "*TST":
                return "0"
            if name == "*OPT":
                return "0"
            raise ScpiError(-113, name + "?")
        if name == "*RST":
            no_params()
            self.reset()
            return None
        if name == "*CLS":
            no_params()
            self.errors.clear()
            self.esr = 0
            return None
        if name == "*OPC":
            no_params()
            self.esr |= ESR_OPC
            return None
        if name == "*WAI":
            no_params()
            return None
        if name == "*ESE":
            self.ese = one_int()
            return None
        if name == "*SRE":
            self.sre = one_int()
            return None
        raise ScpiError(-113, name)

    # -- execution ----------------------------------------------------------------------------

    def _resolve(self, parts: list[tuple[str, str]], key: str) -> tuple[Command, list[int]] | None:
        if key in self._cache:
            return self._cache[key]
        found = None
        for cmd in self.commands:
            s = _match(cmd.nodes, parts)
            if s is not None:
                found = (cmd, s)
                break
        if len(self._cache) < 4096:
            self._cache[key] = found
        return found

    def execute(self, line: str, *, output_pending: bool = False) -> str | None:
        """Execute one program message (one line, terminator stripped).

        Returns the response message (query answers joined by `;`) or None if nothing to send.
        `output_pending=True` says the previous response was not read yet: IEEE 488.2 6.3.2.3
        makes that -410 Query INTERRUPTED (the old output is discarded by the caller).
        """
        if output_pending:
            self.push_error(-410)
        if len(line) > self.max_line:
            self.push_error(-363, f"line longer than {self.max_line} characters")
            return None
        responses: list[str] = []
        path: list[tuple[str, str]] = []
        try:
            units = self._split_units(line)
        except ScpiError as e:
            self.push_error(e.code, e.detail)
            return None
        for unit in units:
            unit = unit.strip()
            if not unit:
                continue
            try:
                out, path = self._execute_unit(unit, path)
            except ScpiError as e:
                self.push_error(e.code, e.detail)
                # SCPI: a parse error aborts the rest of the message
                if e.code in (-100, -102, -113):
                    break
                continue
            except Exception as e:          # a handler bug must not kill the server
                self.push_error(-200, f"{type(e).__name__}: {e}")
                continue
            if out is not None:
                responses.append(out)
        return ";".join(responses) if responses else None

    @staticmethod
    def _split_units(line: str) -> list[str]:
        return split_outside_quotes(line, ";")

    def _execute_unit(self, unit: str, path: list[tuple[str, str]]):
        # header / data separation: header ends at the first whitespace
        m = re.match(r"^(\S+)(?:\s+(.*))?$", unit, re.S)
        if not m:
            raise ScpiError(-102)
        header, data = m.group(1), (m.group(2) or "").strip()
        if any(ord(c) < 32 or ord(c) > 126 for c in unit):
            raise ScpiError(-102, "illegal character")
        if not _HEADER_CHARS.match(header):
            raise ScpiError(-102, f"illegal header {header!r}")
        query = header.endswith("?")
        if query:
            header = header[:-1]
        if "?" in header:
            raise ScpiError(-102, "misplaced '?'")
        params = split_params(data) if data else []
        if header.startswith("*"):
            if not re.match(r"^\*[A-Za-z]+$", header):
                raise ScpiError(-102, header)
            return self._common(header.upper(), query, params), path
        absolute = header.startswith(":")
        raw = header.lstrip(":") if absolute else header
        if raw == "" or "::" in raw or raw.endswith(":"):
            raise ScpiError(-102, f"bad header {header!r}")
        parts: list[tuple[str, str]] = []
        for mn in raw.split(":"):
            mm = _MNEMONIC.match(mn)
            if not mm or len(mn) > 12 + 3:
                raise ScpiError(-102 if not mm else -113, f"bad mnemonic {mn!r}")
            parts.append((mm.group(1).upper(), mm.group(2)))
        full = parts if absolute else path + parts
        key = ":".join(n + d for n, d in full)
        found = self._resolve(full, key)
        if found is None and not absolute and path:
            found = self._resolve(parts, ":".join(n + d for n, d in parts))   # lenient: from root
            full = parts
        if found is None:
            raise ScpiError(-113, header)
        cmd, suffixes = found
        new_path = full[:-1]
        call = Call(suffixes, header, self)
        if query:
            if cmd.query is None:
                raise ScpiError(-113, header + "? (no query form)")
            conv = cmd.query_params
            if len(params) > len(conv):
                raise ScpiError(-108)
            vals = [c.convert(p) for c, p in zip(conv, params)]
            out = cmd.query(call, *vals)
            prefix = self.fmt_header(cmd, suffixes) if cmd.header else ""
            return prefix + str(out), new_path
        if cmd.set is None:
            raise ScpiError(-113, header + " (query only)")
        need = len(cmd.params) if cmd.min_params is None else cmd.min_params
        if len(params) < need:
            raise ScpiError(-109)
        if len(params) > len(cmd.params):
            raise ScpiError(-108)
        vals = [c.convert(p) for c, p in zip(cmd.params, params)]
        cmd.set(call, *vals)
        return None, new_path


def nr3(x: float, digits: int = 6) -> str:
    """Keysight-style NR3: +4.000000E+02."""
    return f"{x:+.{digits}E}"
