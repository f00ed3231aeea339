"""Power analyzer: Yokogawa WT5000 / WT1800 family, communication-command dialect.

Sources: Yokogawa "WT1800 Precision Power Analyzer Communication Interface User's Manual"
(IM WT1801-17EN), chapter "Commands": COMMunicate group (HEADer, VERBose), NUMeric group
(FORMat, NORMal:NUMber, NORMal:ITEM<x>, NORMal:VALue?, "Numeric Data Formats": ASCII <NR3> with
5 significant digits (6 for integrated values and the sum of powers), TIME as <NR1> seconds, error
data "NAN" (data does not exist, FLOAT 0x7E951BEE = 9.91E+37) and "INF" (over-range/overflow,
FLOAT 0x7E94F56A = 9.9E+37)), INTEGrate group (MODE, TIMer, STARt, STOP, RESet, STATe?), RATE;
the WT5000 manual (IM WT5000-17EN) uses the same groups and the function names WP, WPP, WPM.

How the lab's analyzer is wired (say so in test reports):
- element 1 = DC link between the charger's power stage and the battery emulator; its source side
  is the charger, so P1 > 0 when power flows INTO the EV battery (charging), WP+ counts charge
  energy, WP- discharge energy;
- element 2 = AC side (three-phase, the element reports the line-to-neutral voltage U, the line
  current I and the TOTAL active power P), wired from the grid to the charger: P2 > 0 = import.

Integrated values: WP = WPP + WPM, with WPM reported as a NEGATIVE number (the sum of negative
power, as displayed by the instrument). Ampere-hour functions (q, q+, q-) are not simulated (NAN).
Over-range: |U| or |I| above 140 % of the element's range gives INF for U/I/P/S/Q/LAMBda.
The error queue uses the standard SCPI codes of v2g_bench.lab.frontends.scpi (the real WT prints its own
positive codes via :STATus:ERRor?; both queries are accepted here).
Power-on defaults chosen here: HEADer OFF, VERBose ON, FORMat ASCii, NUMber 15, RATE 500 ms.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

from v2g_bench.lab.plant import Plant
from v2g_bench.lab.frontends.scpi import Any_, Bool, Choice, Command, Num, ScpiError, ScpiInstrument

NAN_F = 9.91e37
INF_F = 9.9e37

FUNCTIONS = {
    # name -> canonical; accepted aliases (older WT names) map to the same quantity
    "U": "U", "I": "I", "P": "P", "S": "S", "Q": "Q", "LAMBDA": "LAMBDA", "LAMB": "LAMBDA",
    "PHI": "PHI", "FU": "FU", "FI": "FI", "WP": "WP", "WH": "WP", "WPP": "WPP", "WHP": "WPP",
    "WPM": "WPM", "WHM": "WPM", "TIME": "TIME", "NONE": "NONE",
}
INTEGRATED = {"WP", "WPP", "WPM"}
ELEMENTS = 7                 # WT5000 has up to 7 input elements; 1 and 2 are wired here
RATES = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)


@dataclass
class _Integrator:
    state: str = "RESET"            # RESET | START | STOP | TIMEUP
    acc: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)   # dc+, dc-, ac+, ac- (Wh)
    base: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    t_acc: float = 0.0
    t_base: float = 0.0


class YokogawaWT(ScpiInstrument):
    def __init__(self, plant: Plant, *, model: str = "WT5000", serial: str = "VLAB00001",
                 firmware: str = "F1.01", u_range_v: float = 1000.0, i_range_a: float = 50.0,
                 ac_u_range_v: float = 300.0, ac_i_range_a: float = 50.0):
        super().__init__()
        self.plant = plant
        self.idn = f"YOKOGAWA,{model},{serial},{firmware}"
        self._init_ranges = {1: (u_range_v, i_range_a), 2: (ac_u_range_v, ac_i_range_a)}
        self._defaults()
        self.add_commands([
            Command("COMMunicate:HEADer", set=lambda c, on: setattr(self, "header_on", on),
                    query=lambda c: "1" if self.header_on else "0", params=(Bool(),)),
            Command("COMMunicate:VERBose", set=lambda c, on: setattr(self, "verbose", on),
                    query=lambda c: "1" if self.verbose else "0", params=(Bool(),)),
            Command("NUMeric:FORMat", set=lambda c, f: setattr(self, "fmt", f),
                    query=lambda c: self._word("ASCii" if self.fmt == "ASCII" else "FLOat"),
                    params=(Choice("ASCii|FLOat"),)),
            Command("NUMeric[:NORMal]:NUMber", set=self._set_number,
                    query=lambda c: str(self.number), params=(Num(1, 255, integer=True),)),
            Command("NUMeric[:NORMal]:ITEM#", set=self._set_item, query=self._get_item,
                    params=(Any_(), Any_(), Any_()), min_params=1),
            Command("NUMeric[:NORMal]:VALue", query=self._values, header=False,
                    query_params=(Num(1, 255, integer=True),)),
            Command("INTEGrate:MODE", set=lambda c, m: setattr(self, "integ_mode", m),
                    query=lambda c: self._word(self.integ_mode),
                    params=(Choice("NORMal|CONTinuous|RNORmal|RCONtinuous"),)),
            Command("INTEGrate:TIMer#", set=self._set_timer, query=self._get_timer,
                    params=(Num(0, 10000, integer=True), Num(0, 59, integer=True), Num(0, 59, integer=True))),
            Command("INTEGrate:STARt", set=self._start),
            Command("INTEGrate:STOP", set=self._stop),
            Command("INTEGrate:RESet", set=self._reset_integ),
            Command("INTEGrate:STATe", query=self._integ_state),
            Command("RATE", set=self._set_rate, query=lambda c: f"{self.rate_s:.3E}",
                    params=(Num(0.001, 20, "S"),)),
            Command("INPut:VOLTage:RANGe[:ALL]", set=lambda c, v: self._set_range(None, 0, v),
                    params=(Num(1.5, 1500, "V"),)),
            Command("INPut:VOLTage:RANGe:ELEMent#", set=lambda c, v: self._set_range(c.suffix(), 0, v),
                    query=lambda c: f"{self._range(c.suffix())[0]:.4E}", params=(Num(1.5, 1500, "V"),)),
            Command("INPut:CURRent:RANGe[:ALL]", set=lambda c, v: self._set_range(None, 1, v),
                    params=(Num(0.005, 50, "A"),)),
            Command("INPut:CURRent:RANGe:ELEMent#", set=lambda c, v: self._set_range(c.suffix(), 1, v),
                    query=lambda c: f"{self._range(c.suffix())[1]:.4E}", params=(Num(0.005, 50, "A"),)),
            Command("STATus:ERRor", query=lambda c: self.pop_error()),
        ])

    # -- state ----------------------------------------------------------------------------------

    def _defaults(self) -> None:
        self.header_on = False
        self.verbose = True
        self.fmt = "ASCII"
        self.number = 15
        self.rate_s = 0.5
        self.integ_mode = "NORMAL"
        self.timer_s = 0.0
        self.integ = _Integrator()
        self.ranges = dict(self._init_ranges)
        self.items: dict[int, tuple[str, int]] = {}
        default = [("U", 1), ("I", 1), ("P", 1), ("WPP", 1), ("WPM", 1),
                   ("U", 2), ("I", 2), ("P", 2), ("S", 2), ("LAMBDA", 2), ("FU", 2),
                   ("WPP", 2), ("WPM", 2), ("WP", 1), ("TIME", 1)]
        for n, it in enumerate(default, 1):
            self.items[n] = it

    def reset(self) -> None:
        self._defaults()

    def _word(self, long_form: str) -> str:
        up = long_form.upper()
        if self.verbose:
            return up
        for spec in ("ASCii", "FLOat", "NORMal", "CONTinuous", "RNORmal", "RCONtinuous",
                     "RESet", "READy", "STARt", "STOP", "ERRor", "TIMEup"):
            if spec.upper() == up:
                return "".join(ch for ch in spec if ch.isupper())
        return up

    def fmt_header(self, cmd: Command, suffixes: list[int]) -> str:
        if not self.header_on:
            return ""
        it = iter(suffixes)
        parts = []
        for n in cmd.nodes:
            s = next(it, 1)
            if n.optional and n.long in ("NORMAL", "ALL"):
                continue
            name = n.long if self.verbose else n.short
            parts.append(name + (str(s) if n.suffix else ""))
        return ":" + ":".join(parts) + " "

    # -- items --------------------------------------------------------------------------------

    def _set_number(self, c, n: float) -> None:
        self.number = int(n)

    def _parse_element(self, text: str) -> int:
        t = text.strip().upper()
        if t in ("SIGMA", "SIGMAA", "SIGMAB", "SIGMAC"):
            return 0
        try:
            e = int(t)
        except ValueError:
            raise ScpiError(-224, f"element {text!r}") from None
        if not 1 <= e <= ELEMENTS:
            raise ScpiError(-222, f"element {e} outside 1..{ELEMENTS}")
        return e

    def _set_item(self, c, func: str, element: str | None = None, order: str | None = None) -> None:
        n = c.suffix()
        if not 1 <= n <= 255:
            raise ScpiError(-113, f"ITEM{n}")
        f = FUNCTIONS.get(func.strip().upper())
        if f is None:
            raise ScpiError(-224, f"function {func!r}")
        if f == "NONE" or f == "TIME":
            self.items[n] = (f, 1)
            return
        if element is None:
            raise ScpiError(-109, "element")
        self.items[n] = (f, self._parse_element(element))

    def _get_item(self, c) -> str:
        f, e = self.items.get(c.suffix(), ("NONE", 1))
        name = "LAMBda" if f == "LAMBDA" else f
        if f in ("NONE", "TIME"):
            return name.upper()
        return f"{name.upper()},{e}"

    # -- integration ----------------------------------------------------------------------------

    def _counters(self) -> tuple[tuple[float, float, float, float], float]:
        s = self.plant.state()
        return (s.dc_import_wh, s.dc_export_wh, s.ac_import_wh, s.ac_export_wh), s.t

    def _integ_now(self) -> tuple[tuple[float, ...], float]:
        g = self.integ
        if g.state != "START":
            return g.acc, g.t_acc
        cnt, t = self._counters()
        vals = tuple(a + (x - b) for a, x, b in zip(g.acc, cnt, g.base))
        el = g.t_acc + (t - g.t_base)
        if self.integ_mode in ("NORMAL", "RNORMAL") and self.timer_s > 0 and el >= self.timer_s:
            # timer reached: hold (noticed lazily; values are those at the time of the check)
            g.acc, g.t_acc, g.state = vals, self.timer_s, "TIMEUP"
            return vals, self.timer_s
        return vals, el

    def _start(self, c) -> None:
        g = self.integ
        if g.state == "START":
            return
        if g.state == "TIMEUP":
            raise ScpiError(-221, "integration timed out; reset first")
        g.base, g.t_base = self._counters()
        g.state = "START"

    def _stop(self, c) -> None:
        g = self.integ
        if g.state != "START":
            return
        g.acc, g.t_acc = self._integ_now()
        if g.state == "START":
            g.state = "STOP"

    def _reset_integ(self, c) -> None:
        self.integ = _Integrator()

    def _integ_state(self, c) -> str:
        self._integ_now()
        return self._word({"RESET": "RESet", "START": "STARt", "STOP": "STOP",
                           "TIMEUP": "TIMEup"}[self.integ.state])

    def _set_timer(self, c, h: float, m: float, s: float) -> None:
        self.timer_s = h * 3600 + m * 60 + s

    def _get_timer(self, c) -> str:
        t = int(self.timer_s)
        return f"{t // 3600},{t % 3600 // 60},{t % 60}"

    # -- rate / ranges ----------------------------------------------------------------------------

    def _set_rate(self, c, s: float) -> None:
        best = min(RATES, key=lambda r: abs(r - s))
        if abs(best - s) > 1e-9 * max(1, s):
            raise ScpiError(-224, f"update rate {s:g} s is not one of {', '.join(f'{r:g}' for r in RATES)}")
        self.rate_s = best

    def _range(self, e: int) -> tuple[float, float]:
        return self.ranges.get(e, (1000.0, 50.0))

    def _set_range(self, element: int | None, which: int, v: float) -> None:
        els = range(1, ELEMENTS + 1) if element is None else [element]
        for e in els:
            if not 1 <= e <= ELEMENTS:
                raise ScpiError(-113, f"ELEMent{e}")
            r = list(self._range(e))
            r[which] = v
            self.ranges[e] = (r[0], r[1])

    # -- values -----------------------------------------------------------------------------------

    def _value(self, func: str, e: int, m, integ) -> float:
        """One numeric value; NAN_F = no data, INF_F = over-range."""
        if func == "NONE":
            return NAN_F
        if func == "TIME":
            return float(int(integ[1]))
        if e not in (1, 2):
            return NAN_F                       # element not wired in the lab
        vals, _ = integ
        if func in INTEGRATED:
            pos, neg = (vals[0], vals[1]) if e == 1 else (vals[2], vals[3])
            return {"WP": pos - neg, "WPP": pos, "WPM": -neg}[func]
        if e == 1:
            u, i, p = m.dc_voltage_v, m.dc_current_a, m.dc_power_w
            s = abs(u * i)
            q, freq = 0.0, None
        else:
            u, i, p = m.ac_voltage_v, m.ac_current_a, m.ac_power_w
            s, q, freq = m.ac_apparent_va, m.ac_reactive_var, m.freq_hz
        ur, ir = self._range(e)
        over = abs(u) > 1.4 * ur or abs(i) > 1.4 * ir
        if func in ("U", "I", "P", "S", "Q", "LAMBDA") and over:
            return INF_F
        if func == "U":
            return u
        if func == "I":
            return i
        if func == "P":
            return p
        if func == "S":
            return s
        if func == "Q":
            return q
        if func == "LAMBDA":
            return p / s if s > 0 else NAN_F
        if func == "PHI":
            if freq is None or s <= 0:
                return NAN_F
            return math.degrees(math.acos(max(-1.0, min(1.0, p / s))))
        if func in ("FU", "FI"):
            return NAN_F if freq is None or (func == "FI" and i == 0) else freq
        return NAN_F

    def _values(self, c, item: float | None = None) -> str:
        m = self.plant.measure("analyzer", rate_hz=1.0 / self.rate_s)
        frozen = self.plant.fault("frozen", "analyzer") or self.plant.fault("frozen", "all")
        if frozen and getattr(self, "_frozen_integ", None) is not None:
            integ = self._frozen_integ
        else:
            integ = self._integ_now()
            self._frozen_integ = integ if frozen else None
        idx = [int(item)] if item is not None else list(range(1, self.number + 1))
        out = []
        for n in idx:
            f, e = self.items.get(n, ("NONE", 1))
            out.append((f, self._value(f, e, m, integ)))
        if self.fmt == "FLOAT":
            data = b"".join(struct.pack(">f", v) for _, v in out)
            return (f"#4{len(data):04d}".encode() + data).decode("latin-1")
        return ",".join(_ascii(f, v) for f, v in out)


def _ascii(func: str, v: float) -> str:
    if v == NAN_F:
        return "NAN"
    if v == INF_F:
        return "INF"
    if func == "TIME":
        return str(int(v))
    return eng(v, 6 if func in INTEGRATED else 5)


def eng(x: float, digits: int = 5) -> str:
    """Yokogawa ASCII <NR3>: engineering exponent (multiple of 3), `digits` significant digits."""
    if x == 0 or not math.isfinite(x):
        return f"{0.0:.{digits - 1}f}E+00"
    e3 = int(math.floor(math.log10(abs(x)) / 3) * 3)
    mant = x / 10 ** e3
    intd = len(str(int(abs(mant))))
    dec = max(digits - intd, 0)
    txt = f"{mant:.{dec}f}"
    if abs(float(txt)) >= 1000:                     # rounding carried into the next group
        e3 += 3
        mant = x / 10 ** e3
        txt = f"{mant:.{digits - 1}f}"
    return f"{txt}E{e3:+03d}"


def create(plant: Plant, cfg: dict[str, Any] | None = None) -> YokogawaWT:
    cfg = dict(cfg or {})
    allowed = {"model", "serial", "firmware", "u_range_v", "i_range_a", "ac_u_range_v", "ac_i_range_a"}
    return YokogawaWT(plant, **{k: v for k, v in cfg.items() if k in allowed})
