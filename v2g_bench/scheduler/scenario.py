"""Scenario files (TOML) -> scheduler inputs, validated strictly (every problem listed, unknown keys refused).

Layout (see docs/scheduler.md):
    [scenario]  name, kind, description, dt_s, start ("HH:MM", clock time of interval 0), hours
    [tariff]    import_price | import_price_by_hour, export_price | export_price_by_hour, demand_charge_per_kw
    [site]      load_kw | load_kw_by_hour, pv_peak_kw + pv_window = [h_on, h_off] | pv_kw, import_limit_kw,
                export_limit_kw
    [[ev]]      name, capacity_kwh, soc_pct|soc_kwh, target_pct|target_kwh, floor_pct|floor_kwh, arrival|arrival_s,
                departure|departure_s, max_charge_kw, max_discharge_kw, eta_charge, eta_discharge,
                degradation_per_kwh, reserve_kwh, backup = {load_kw, hours}
    [fleet]     count, seed, prefix, arrival = [earliest, latest], departure = [..], soc_pct = [lo, hi],
                template = {same keys as [[ev]] without name/arrival/departure/soc}
    [frequency_response]  nominal_hz, step_hz, step_at_s, droop_kw_per_hz, reserved_kw, endurance_min,
                full_activation_s, deadband_hz, hold_s, ev, activation_delay_max_s, droop_tolerance_pct
    [[tariff_update]]  at (clock time), import_price_by_hour | import_price, export_price_by_hour | ..:
                a dynamic tariff re-published mid-run (whole-horizon series; the runner re-plans at `at`)
    [grid_loss] at (clock time), duration_min, transfer_time_max_s, ev: the grid is lost (V2H backup test)
    [cycling]   fade_pct_per_full_cycle, source: the degradation figure reported for the energy throughput
    [expect]    free-form numbers a test may compare against (e.g. hand-computed costs)

Strict: every problem is listed with its line in the file (unknown keys, values in the wrong unit - a
percentage given as a fraction, W given as kW, a string with a unit - floor above target, a departure the
EV's charger cannot reach), before anything is planned or energized.
"""
from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v2g_bench.errors import BenchError

from v2g_bench.scheduler.model import EVRequest, Plan, ScheduleInputError, Site

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "scenarios"
KINDS = ("peak_shaving", "arbitrage", "frequency_response", "backup", "fleet", "cycling")


class ScenarioError(BenchError):
    """A scenario file is invalid; `errors` lists every problem found."""

    def __init__(self, errors: list[str], *, where: str):
        self.errors = list(errors)
        what = self.errors[0] if len(self.errors) == 1 else f"{len(self.errors)} problems:\n  " + "\n  ".join(self.errors)
        super().__init__(what, where=where, fix="see docs/scheduler.md for the scenario format")


_KEYS = {
    "scenario": {"name", "kind", "description", "dt_s", "start", "hours"},
    "tariff": {"import_price", "import_price_by_hour", "export_price", "export_price_by_hour", "demand_charge_per_kw"},
    "site": {"load_kw", "load_kw_by_hour", "pv_kw", "pv_peak_kw", "pv_window", "import_limit_kw", "export_limit_kw"},
    "ev": {"name", "capacity_kwh", "soc_pct", "soc_kwh", "target_pct", "target_kwh", "floor_pct", "floor_kwh",
           "arrival", "arrival_s", "departure", "departure_s", "max_charge_kw", "max_discharge_kw", "eta_charge",
           "eta_discharge", "degradation_per_kwh", "reserve_kwh", "backup", "charge_curve", "discharge_curve",
           "loss_model", "ceiling_pct", "ceiling_kwh"},
    "fleet": {"count", "seed", "prefix", "arrival", "departure", "soc_pct", "template"},
    "frequency_response": {"nominal_hz", "step_hz", "step_at_s", "droop_kw_per_hz", "reserved_kw", "endurance_min",
                           "full_activation_s", "deadband_hz", "hold_s", "ev", "activation_delay_max_s",
                           "droop_tolerance_pct"},
    "tariff_update": {"at", "import_price", "import_price_by_hour", "export_price", "export_price_by_hour"},
    "grid_loss": {"at", "duration_min", "transfer_time_max_s", "ev"},
    "cycling": {"fade_pct_per_full_cycle", "source"},
    "expect": None,  # free-form
}


@dataclass
class Scenario:
    name: str
    kind: str
    description: str
    site: Site
    evs: list[EVRequest]
    start_clock_h: float
    frequency_response: dict = field(default_factory=dict)
    expect: dict = field(default_factory=dict)
    source: str = "<scenario>"
    battery_kwh: dict = field(default_factory=dict)        # EV name -> its real capacity (the plan's may be lower:
    #                                                        a ceiling or the frequency reserve's absorb headroom)
    tariff_updates: list = field(default_factory=list)     # [(at_s, import_price array, export_price array)]
    grid_loss: dict = field(default_factory=dict)          # {"at_s", "duration_s", "transfer_time_max_s", "ev"}
    cycling: dict = field(default_factory=dict)
    hours: float = 24.0

    def plan(self, scheduler=None) -> Plan:
        from v2g_bench.scheduler.lp import Scheduler
        return (scheduler or Scheduler()).plan(self.site, self.evs)

    def clock(self, t_s: float) -> str:
        h = (self.start_clock_h + t_s / 3600.0) % 24
        return f"{int(h):02d}:{int(round((h % 1) * 60)) % 60:02d}"


def _clock_h(v, where: str, errs: list[str]) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            hh, mm = v.split(":")
            h, m = int(hh), int(mm)
            if 0 <= h < 24 and 0 <= m < 60:
                return h + m / 60
        except ValueError:
            pass
    errs.append(f"{where} = {v!r} is not a clock time 'HH:MM'")
    return None


def _series(tbl: dict, key: str, n: int, steps_per_hour: float, where: str, errs: list[str]):
    """A per-interval series, or a per-hour one expanded to intervals."""
    if key in tbl and f"{key}_by_hour" in tbl:
        errs.append(f"{where}: give {key} or {key}_by_hour, not both")
        return None
    if key in tbl:
        v = tbl[key]
        if not isinstance(v, list) or len(v) != n:
            errs.append(f"{where}.{key}: expected a list of {n} numbers (one per interval), got "
                        f"{len(v) if isinstance(v, list) else type(v).__name__}")
            return None
        return _numbers(v, f"{where}.{key}", errs)
    if f"{key}_by_hour" in tbl:
        v = tbl[f"{key}_by_hour"]
        hours = n / steps_per_hour
        if not isinstance(v, list) or len(v) != round(hours) or abs(hours - round(hours)) > 1e-9:
            errs.append(f"{where}.{key}_by_hour: expected {hours:g} hourly values, got "
                        f"{len(v) if isinstance(v, list) else type(v).__name__}")
            return None
        a = _numbers(v, f"{where}.{key}_by_hour", errs)
        return None if a is None else np.repeat(a, int(round(steps_per_hour)))
    return None


def _numbers(v, where: str, errs: list[str]):
    out = []
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(float(x)):
            errs.append(f"{where}[{i}] = {x!r} is not a finite number")
            return None
        out.append(float(x))
    return np.array(out)


def _unknown(tbl: dict, section: str, where: str, errs: list[str]):
    allowed = _KEYS[section]
    if allowed is None:
        return
    for k in tbl:
        if k not in allowed:
            errs.append(f"{where}.{k}: unknown key (allowed: {', '.join(sorted(allowed))})")


_PATH = re.compile(r"^\[?([a-z_]+)(?:\[(\d+)\])?\]?(?:\.([a-z_]+))?")
_ARRAYS = {"ev", "tariff_update"}


def locate(text: str, path: str) -> int | None:
    """The 1-based line in the TOML text that an error path ("ev[1].floor_pct", "scenario.kind", "[foo]",
    "fleet[3].x" -> the fleet's template) points at: the key's line, else its table's header line."""
    m = _PATH.match(path)
    if not m:
        return None
    sec, idx, key = m.group(1), m.group(2), m.group(3)
    if sec == "fleet" and idx is not None:
        idx, key = None, "template"
    lines = text.splitlines()
    header = re.compile(r"^\s*\[\[\s*%s\s*\]\]" % sec if sec in _ARRAYS else r"^\s*\[\s*%s\s*\]" % sec)
    hits = [i for i, ln in enumerate(lines) if header.match(ln)]
    want = int(idx) if (idx is not None and sec in _ARRAYS) else 0
    if len(hits) <= want:
        return None
    start = hits[want]
    if key is None:
        return start + 1
    keyre = re.compile(r"^\s*%s\s*=" % re.escape(key))
    for i in range(start + 1, len(lines)):
        if re.match(r"^\s*\[", lines[i]):
            break
        if keyre.match(lines[i]):
            return i + 1
    return start + 1


def _with_lines(errs: list[str], text: str | None) -> list[str]:
    if not text:
        return errs
    out = []
    for e in errs:
        n = locate(text, e)
        out.append(f"line {n}: {e}" if n else e)
    return out


# numeric [[ev]] keys: (unit, plausible range); a value outside it is most likely in another unit
_EV_UNITS = {
    "capacity_kwh": ("kWh", 1.0, 2000.0, "Wh given as kWh?"),
    "max_charge_kw": ("kW", 0.0, 1000.0, "W given as kW?"),
    "max_discharge_kw": ("kW", 0.0, 1000.0, "W given as kW?"),
    "eta_charge": ("fraction", 0.5, 1.0, "a percentage given as a fraction? write 0.95, not 95"),
    "eta_discharge": ("fraction", 0.5, 1.0, "a percentage given as a fraction? write 0.95, not 95"),
    "soc_kwh": ("kWh", 0.0, 2000.0, "Wh given as kWh?"),
    "target_kwh": ("kWh", 0.0, 2000.0, "Wh given as kWh?"),
    "floor_kwh": ("kWh", 0.0, 2000.0, "Wh given as kWh?"),
    "ceiling_kwh": ("kWh", 0.0, 2000.0, "Wh given as kWh?"),
    "reserve_kwh": ("kWh", 0.0, 2000.0, "Wh given as kWh?"),
    "degradation_per_kwh": ("currency/kWh", 0.0, 5.0, "a price per MWh given per kWh?"),
}


def _unit_problems(e: dict, where: str) -> list[str]:
    errs = []
    for k, v in e.items():
        if isinstance(v, str) and k not in ("name", "arrival", "departure"):
            errs.append(f"{where}.{k} = {v!r}: a string; give a bare number in the key's unit "
                        f"({_EV_UNITS.get(k, ('see the key suffix',))[0]})")
            continue
        if k in _EV_UNITS and isinstance(v, (int, float)) and not isinstance(v, bool):
            unit, lo, hi, hint = _EV_UNITS[k]
            if v > hi:         # too small / negative values get their own message further on
                errs.append(f"{where}.{k} = {v!r} {unit} is above the plausible {lo:g}..{hi:g} {unit}: {hint}")
        if k.endswith("_pct") and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1:
            errs.append(f"{where}.{k} = {v!r}: percent, not a fraction (write {v * 100:g} for {v * 100:g} %)")
    return errs


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario file; a bare name is looked up in the project's scenarios/ folder."""
    p = Path(path)
    if not p.exists() and not p.suffix:
        p = SCENARIO_DIR / f"{p.name}.toml"
    if not p.exists():
        known = ", ".join(sorted(x.stem for x in SCENARIO_DIR.glob("*.toml")))
        raise ScenarioError([f"no such scenario file (known: {known})"], where=str(path))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ScenarioError([f"not a text file ({e})"], where=str(p)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError([f"not valid TOML: {e}"], where=str(p)) from None
    return scenario_from_dict(data, source=str(p), text=text)


def scenario_from_dict(data: dict, *, source: str = "<scenario>", text: str | None = None) -> Scenario:
    """Validate and build; with the file's `text`, every problem names its line."""
    try:
        return _scenario_from_dict(data, source)
    except ScenarioError as e:
        if text is None:
            raise
        raise ScenarioError(_with_lines(e.errors, text), where=source) from None
    except (ValueError, TypeError, OverflowError, AttributeError, KeyError) as e:
        # a value the checks above let through (nan/inf seed or hours, a table or a string where a
        # number belongs: found by the fuzz campaign) must still be a clear error, not a traceback
        raise ScenarioError([f"a value has the wrong type or is out of range ({type(e).__name__}: {e})"],
                            where=source) from None


def _scenario_from_dict(data: dict, source: str) -> Scenario:
    errs: list[str] = []
    for k in data:
        if k not in _KEYS:
            errs.append(f"[{k}]: unknown section (allowed: {', '.join(sorted(_KEYS))})")
    sc = data.get("scenario")
    if not isinstance(sc, dict):
        raise ScenarioError(["missing [scenario] table"] + errs, where=source)
    _unknown(sc, "scenario", "scenario", errs)
    name = sc.get("name")
    if not isinstance(name, str) or not name:
        errs.append("scenario.name: missing")
    kind = sc.get("kind")
    if kind not in KINDS:
        errs.append(f"scenario.kind = {kind!r}: expected one of {', '.join(KINDS)}")
    dt_s = sc.get("dt_s", 900)
    if isinstance(dt_s, bool) or not isinstance(dt_s, (int, float)) or dt_s <= 0 or 3600 % dt_s:
        errs.append(f"scenario.dt_s = {dt_s!r}: must divide an hour (e.g. 900)")
        dt_s = 900
    hours = sc.get("hours", 24)
    if isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours <= 0:
        errs.append(f"scenario.hours = {hours!r}: must be > 0")
        hours = 24
    n = int(round(hours * 3600 / dt_s))
    sph = 3600 / dt_s
    start_h = _clock_h(sc.get("start", "00:00"), "scenario.start", errs) or 0.0

    def rel_s(v, where):  # clock time -> seconds from start (next day if earlier than start)
        h = _clock_h(v, where, errs)
        if h is None:
            return None
        return ((h - start_h) % 24) * 3600.0

    tariff = data.get("tariff", {})
    _unknown(tariff, "tariff", "tariff", errs)
    imp = _series(tariff, "import_price", n, sph, "tariff", errs)
    if imp is None and not any(e.startswith("tariff.import_price") for e in errs):
        errs.append(f"tariff.import_price: missing (give {n} values or import_price_by_hour with {hours:g})")
    exp = _series(tariff, "export_price", n, sph, "tariff", errs)
    site_t = data.get("site", {})
    _unknown(site_t, "site", "site", errs)
    load = _series(site_t, "load_kw", n, sph, "site", errs)
    pv = _series(site_t, "pv_kw", n, sph, "site", errs)
    if "pv_peak_kw" in site_t:
        win = site_t.get("pv_window", [6.0, 20.0])
        if pv is not None:
            errs.append("site: give pv_kw or pv_peak_kw, not both")
        elif not (isinstance(win, list) and len(win) == 2):
            errs.append(f"site.pv_window = {win!r}: expected [hour_on, hour_off]")
        else:
            on, off = (_clock_h(w, "site.pv_window", errs) for w in win)
            if on is not None and off is not None:
                mid_h = start_h + (np.arange(n) + 0.5) / sph
                x = ((mid_h % 24) - on) / (off - on)
                pv = float(site_t["pv_peak_kw"]) * np.where((x > 0) & (x < 1), np.sin(np.pi * np.clip(x, 0, 1)), 0.0)
    evs: list[EVRequest] = []
    raw_evs = data.get("ev", [])
    if not isinstance(raw_evs, list):
        errs.append("ev: must be an array of tables [[ev]]")
        raw_evs = []
    fr = data.get("frequency_response", {})
    _unknown(fr, "frequency_response", "frequency_response", errs)
    reserved_kw = float(fr.get("reserved_kw", 0.0)) if fr else 0.0
    endurance_h = float(fr.get("endurance_min", 0.0)) / 60 if fr else 0.0

    battery_kwh: dict[str, float] = {}

    def make_ev(e: dict, where: str):
        _unknown(e, "ev", where, errs)
        unit_errs = _unit_problems(e, where)
        if unit_errs:
            errs.extend(unit_errs)
            return
        cap = e.get("capacity_kwh")
        if isinstance(cap, bool) or not isinstance(cap, (int, float)):
            errs.append(f"{where}.capacity_kwh: missing or not a number")
            return
        if cap <= 0:
            errs.append(f"{where}.capacity_kwh = {cap}: must be > 0")
            return

        def energy(key, default=None):
            if f"{key}_pct" in e and f"{key}_kwh" in e:
                errs.append(f"{where}: give {key}_pct or {key}_kwh, not both")
            if f"{key}_pct" in e:
                v = e[f"{key}_pct"]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
                    errs.append(f"{where}.{key}_pct = {v!r}: must be 0..100")
                    return None
                return cap * v / 100
            if f"{key}_kwh" in e:
                return e[f"{key}_kwh"]
            if default is None:
                errs.append(f"{where}: {key}_pct or {key}_kwh is required")
            return default

        soc, target, floor = energy("soc"), energy("target"), energy("floor", 0.0)
        ceiling = energy("ceiling", float(cap))
        arr = rel_s(e["arrival"], f"{where}.arrival") if "arrival" in e else e.get("arrival_s", 0.0)
        if "departure" in e:
            dep = rel_s(e["departure"], f"{where}.departure")
            if dep is not None and arr is not None and dep <= arr:
                dep += 86400.0
        elif "departure_s" in e:
            dep = e["departure_s"]
        else:
            errs.append(f"{where}: departure or departure_s is required")
            return
        reserve = e.get("reserve_kwh", 0.0)
        eta_d = e.get("eta_discharge", 0.95)
        if "backup" in e:
            b = e["backup"]
            if not (isinstance(b, dict) and set(b) == {"load_kw", "hours"}):
                errs.append(f"{where}.backup: expected {{load_kw = .., hours = ..}}")
            else:
                # energy in the cells to island the household load for N hours through the inverter
                reserve = max(float(reserve), float(b["load_kw"]) * float(b["hours"]) / float(eta_d))
        pc, pd = e.get("max_charge_kw"), e.get("max_discharge_kw", 0.0)
        if None in (soc, target, arr, dep, pc, floor, ceiling):
            if pc is None:
                errs.append(f"{where}.max_charge_kw: missing")
            return
        eta_c = float(e.get("eta_charge", 0.95))
        n_before = len(errs)
        if floor > target + 1e-9:
            errs.append(f"{where}.floor_{'pct' if 'floor_pct' in e else 'kwh'}: the floor ({floor:g} kWh) is above "
                        f"the departure target ({target:g} kWh)")
        if max(floor, float(reserve)) > soc + 1e-9:
            errs.append(f"{where}.soc_{'pct' if 'soc_pct' in e else 'kwh'}: the EV arrives with {soc:g} kWh, below "
                        f"its floor/reserve of {max(floor, float(reserve)):g} kWh")
        if target > ceiling + 1e-9:
            errs.append(f"{where}.target_{'pct' if 'target_pct' in e else 'kwh'}: the target ({target:g} kWh) is above "
                        f"the ceiling ({ceiling:g} kWh)")
        if dep > hours * 3600 + 1e-6:
            errs.append(f"{where}.departure: {dep / 3600:g} h after the start, beyond the scenario's {hours:g} h")
        elif isinstance(pc, (int, float)) and target > soc and dep > max(arr, 0.0):
            window_h = (dep - arr) / 3600.0
            reach = pc * eta_c * window_h
            if target - soc > reach + 1e-9:
                errs.append(f"{where}.departure: unreachable - {target - soc:g} kWh to add in {window_h:g} h at "
                            f"<= {pc:g} kW x eta {eta_c:g} = {reach:g} kWh at most")
        if len(errs) > n_before:
            return
        battery_kwh[str(e.get("name", where))] = float(cap)
        plan_cap = float(ceiling)
        if reserved_kw:
            # frequency response: keep +-reserved_kw of power headroom and endurance_min of energy both ways
            pc, pd = pc - reserved_kw, pd - reserved_kw
            floor = floor + reserved_kw * endurance_h / float(eta_d)
            # ... and room to ABSORB it: endurance_min of full up-regulation into the battery
            plan_cap = plan_cap - reserved_kw * endurance_h * eta_c
            if target > plan_cap + 1e-9:
                errs.append(f"{where}: target {target:g} kWh leaves no room to absorb the frequency reserve "
                            f"({reserved_kw:g} kW for {endurance_h * 60:g} min) below {plan_cap:g} kWh")
                return
            if soc > plan_cap + 1e-9:
                errs.append(f"{where}: arrives with {soc:g} kWh, above {plan_cap:g} kWh: no room to absorb the "
                            f"frequency reserve ({reserved_kw:g} kW for {endurance_h * 60:g} min)")
                return
            if pc < 0 or pd < 0:
                errs.append(f"{where}: frequency_response.reserved_kw = {reserved_kw} exceeds the EV's power limits")
                return
        curves = {"charge_curve": e.get("charge_curve"), "discharge_curve": e.get("discharge_curve")}
        lm = e.get("loss_model")
        if lm is not None:
            # loss_model = {charge = [a_W, b, c_per_W], discharge = [...], segments = 4}: part-load segments
            if not isinstance(lm, dict) or not set(lm) <= {"charge", "discharge", "segments"}:
                errs.append(f"{where}.loss_model: expected {{charge = [a, b, c], discharge = [a, b, c], segments = n}}")
                return
            from v2g_bench.scheduler.model import part_load_curve
            for key, pmax, direction in (("charge", pc, "charge"), ("discharge", pd, "discharge")):
                if key in lm and pmax > 0:
                    curves[f"{key}_curve"] = part_load_curve(pmax, tuple(lm[key]), segments=int(lm.get("segments", 4)),
                                                             direction=direction)
        try:
            evs.append(EVRequest(**curves,
                name=str(e.get("name", where)), capacity_kwh=plan_cap, soc_kwh=soc, target_kwh=target,
                departure_s=dep, max_charge_kw=pc, max_discharge_kw=pd, floor_kwh=floor, reserve_kwh=reserve,
                arrival_s=arr, eta_charge=e.get("eta_charge", 0.95), eta_discharge=eta_d,
                degradation_per_kwh=e.get("degradation_per_kwh", 0.0)))
        except ScheduleInputError as x:
            errs.append(f"{where}: {x.what}")

    for i, e in enumerate(raw_evs):
        if not isinstance(e, dict):
            errs.append(f"ev[{i}]: must be a table")
            continue
        make_ev(e, f"ev[{i}]")
    fleet = data.get("fleet")
    if fleet is not None:
        _unknown(fleet, "fleet", "fleet", errs)
        count = fleet.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
            errs.append(f"fleet.count = {count!r}: must be a positive integer")
        else:
            rng = np.random.default_rng(int(fleet.get("seed", 0)))
            tmpl = dict(fleet.get("template", {}))
            arr_w, dep_w, soc_w = fleet.get("arrival"), fleet.get("departure"), fleet.get("soc_pct")
            for key, w in (("arrival", arr_w), ("departure", dep_w), ("soc_pct", soc_w)):
                if not (isinstance(w, list) and len(w) == 2):
                    errs.append(f"fleet.{key} = {w!r}: expected [low, high]")
            if not errs:
                a0, a1 = (_clock_h(x, "fleet.arrival", errs) for x in arr_w)
                d0, d1 = (_clock_h(x, "fleet.departure", errs) for x in dep_w)
                step_h = dt_s / 3600
                for i in range(count):
                    # arrival/departure on the interval grid so hand checks stay simple
                    ah = a0 + round(rng.uniform(0, (a1 - a0) % 24) / step_h) * step_h
                    dh = d0 + round(rng.uniform(0, (d1 - d0) % 24) / step_h) * step_h
                    e = dict(tmpl, name=f"{fleet.get('prefix', 'ev')}-{i + 1:03d}",
                             arrival=f"{int(ah) % 24:02d}:{int(round((ah % 1) * 60)):02d}",
                             departure=f"{int(dh) % 24:02d}:{int(round((dh % 1) * 60)):02d}",
                             soc_pct=float(rng.uniform(*soc_w)))
                    make_ev(e, f"fleet[{i}]")
    if not evs and not errs:
        errs.append("no EV: give [[ev]] tables or a [fleet] table")
    names = {e.name for e in evs}
    updates = []
    raw_up = data.get("tariff_update", [])
    if not isinstance(raw_up, list):
        errs.append("tariff_update: must be an array of tables [[tariff_update]]")
        raw_up = []
    for i, u in enumerate(raw_up):
        w = f"tariff_update[{i}]"
        _unknown(u, "tariff_update", w, errs)
        at = rel_s(u.get("at"), f"{w}.at") if "at" in u else None
        if "at" not in u:
            errs.append(f"{w}.at: missing (the clock time the new prices are published)")
        ui = _series(u, "import_price", n, sph, w, errs)
        if ui is None and not any(x.startswith(f"{w}.import_price") for x in errs):
            errs.append(f"{w}.import_price: missing")
        ue = _series(u, "export_price", n, sph, w, errs)
        if at is not None and not 0 < at < hours * 3600:
            errs.append(f"{w}.at: {at / 3600:g} h after the start is outside the scenario's {hours:g} h")
        if at is not None and ui is not None:
            updates.append((float(at), ui, ui.copy() if ue is None else ue))
    loss = data.get("grid_loss", {})
    grid_loss = {}
    if loss:
        _unknown(loss, "grid_loss", "grid_loss", errs)
        at = rel_s(loss.get("at", "00:00"), "grid_loss.at") if "at" in loss else None
        dur = loss.get("duration_min")
        tt = loss.get("transfer_time_max_s")
        if at is None:
            errs.append("grid_loss.at: missing (clock time of the grid loss)")
        for key, v in (("duration_min", dur), ("transfer_time_max_s", tt)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                errs.append(f"grid_loss.{key} = {v!r}: must be a number > 0")
        if loss.get("ev") not in names:
            errs.append(f"grid_loss.ev = {loss.get('ev')!r}: not one of the scenario's EVs ({', '.join(sorted(names))})")
        if not errs:
            grid_loss = {"at_s": float(at), "duration_s": 60.0 * float(dur), "transfer_time_max_s": float(tt),
                         "ev": loss["ev"]}
    cyc = data.get("cycling", {})
    if cyc:
        _unknown(cyc, "cycling", "cycling", errs)
        v = cyc.get("fade_pct_per_full_cycle")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            errs.append(f"cycling.fade_pct_per_full_cycle = {v!r}: a percentage per full cycle, 0 <= x < 1")
        if not isinstance(cyc.get("source"), str):
            errs.append("cycling.source: missing (where the fade rate comes from)")
    if fr and fr.get("ev") is not None and fr.get("ev") not in names and evs:
        errs.append(f"frequency_response.ev = {fr.get('ev')!r}: not one of the scenario's EVs")
    expect = data.get("expect", {})
    if errs:
        raise ScenarioError(errs, where=source)
    try:
        site = Site(import_price=imp, export_price=exp, dt_s=float(dt_s), load_kw=load, pv_kw=pv,
                    import_limit_kw=site_t.get("import_limit_kw"), export_limit_kw=site_t.get("export_limit_kw"),
                    demand_charge_per_kw=tariff.get("demand_charge_per_kw", 0.0), name=name)
    except ScheduleInputError as x:
        raise ScenarioError([str(x)], where=source) from None
    return Scenario(name=name, kind=kind, description=str(sc.get("description", "")), site=site, evs=evs,
                    start_clock_h=start_h, frequency_response=dict(fr), expect=dict(expect), source=source,
                    battery_kwh=battery_kwh, tariff_updates=updates, grid_loss=grid_loss, cycling=dict(cyc),
                    hours=float(hours))


def list_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.toml"))
