"""A multi-EVSE site in the virtual lab: N bidirectional chargers behind one grid connection with a building load.

Enabled by lab config (a lab service):

    [services.site]
    module = "v2g_bench.lab.site"
    evses = 4                 # EVSE 1 is the lab's own plant (its SCPI/Modbus/CAN front-ends and its station);
                              # EVSEs 2..N get their own Plant on the same clock and their own OCPP station
                              # (control ops prefixed "evse<i>.", e.g. "evse2.station.connect")

Every plant shares the lab's clock (so `time_scale` compresses the whole site) and the grid (frequency and
voltage profiles go to all of them). The site meter sums the building load, the PV and each charger's AC power:
grid_w = load - pv + sum(ac_i) (+ = import). While the grid is lost the site is islanded: nothing is imported,
the chargers with backup enabled serve the home load and `unserved_w` is what nobody serves.

The charger's local functions run on plant time inside the plant's integration (Plant.local_functions), so a
frequency step or a grid loss is answered at the same plant instant whatever the time compression:
- FrequencySupport: FCR-style droop around the station's setpoint (OCPP 2.1 Q08 local frequency support);
- Islanding (V2H backup): after the grid is lost and the stated transfer time has passed, the stage discharges
  to serve the home load (its losses included) until the battery's soc_min stops it.
These are the simulated charger's behaviour, not the bench's judgement: the judges live in v2g_bench.verification
and share no code with this module.

Control ops: site.info, site.battery, site.building, site.grid, site.frequency_support, site.backup,
site.measure, site.record / site.samples (the analyzer's memory on plant time), site.lag (the lab's event-loop
stalls: a stalled virtual DUT is late for the machine's reasons), site.reset.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from v2g_bench.errors import LabError
from v2g_bench.lab.plant import Plant, PlantConfig
from v2g_bench.lab.plant.measurement import seeded_gauss

# The local functions read the plant's present grid state (plant._grid_f / _grid_v) directly: they run inside
# its integration with its lock held, once per sub-step, where a full state() snapshot would recurse.

GRID_LOST_BELOW_V = 0.5        # fraction of the nominal voltage under which the grid counts as lost


def _finite(name: str, v: Any, *, lo: float | None = None) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise LabError(f"{name} = {v!r} is not a number", where="site") from None
    if not math.isfinite(x) or (lo is not None and x < lo):
        raise LabError(f"{name} = {v!r} must be a finite number{'' if lo is None else f' >= {lo:g}'}", where="site")
    return x


@dataclass
class StepSeries:
    """A step profile on plant time: value[k] from t[k] on (before the first point: the first value)."""
    t: list[float] = field(default_factory=lambda: [0.0])
    v: list[float] = field(default_factory=lambda: [0.0])

    def at(self, t: float) -> float:
        val = self.v[0]
        for ts, x in zip(self.t, self.v):
            if ts <= t:
                val = x
            else:
                break
        return val


@dataclass
class FrequencySupport:
    """Droop around the station's setpoint: dP = droop x (f - f0) beyond the deadband, within +-reserve_w
    (under-frequency: less charging / more discharge; sign + = into the EV)."""
    nominal_hz: float
    droop_w_per_hz: float
    deadband_hz: float = 0.0
    reserve_w: float = math.inf

    def __call__(self, plant: Plant, t: float, setpoint_w: float) -> float:
        df = plant._grid_f - self.nominal_hz
        eff = math.copysign(max(abs(df) - self.deadband_hz, 0.0), df)
        return setpoint_w + max(-self.reserve_w, min(self.reserve_w, self.droop_w_per_hz * eff))


@dataclass
class Islanding:
    """V2H backup: the grid lost for `transfer_s` (plant time) -> the stage serves the home load."""
    site: "Site"
    transfer_s: float
    lost_at: float | None = None

    def __call__(self, plant: Plant, t: float, setpoint_w: float) -> float:
        if plant._grid_v >= GRID_LOST_BELOW_V * self.site.nominal_v:
            self.lost_at = None
            return setpoint_w
        if self.lost_at is None:
            self.lost_at = t
            plant._p = 0.0                       # the inverter trips at once on the loss (anti-islanding)
        if t - self.lost_at < self.transfer_s:
            return 0.0                           # switching over: the house is dark, the stage idles
        share = self.site.home_load_w(t) / max(1, len(self.site.backup))
        return -dc_for_ac(plant, share)


@dataclass
class Recorder:
    """The site analyzer's memory: a row every `period_s` of PLANT time, taken inside the plant's integration, so a
    bench (or lab) stall of any length loses no sample - the bench reads the memory out (op site.samples).
    Row: (t, dc_w, ac_w, dc_import_wh, dc_export_wh, ac_import_wh, ac_export_wh, freq_hz, grid_v)."""
    period_s: float
    next_t: float
    rows: list = field(default_factory=list)
    max_rows: int = 2_000_000

    def __call__(self, plant: Plant, t: float, setpoint_w: float) -> float:
        if t >= self.next_t and len(self.rows) < self.max_rows:
            p = plant._p
            # the analyzer's power readings carry the lab's measurement noise; its integrators are exact
            k = len(self.rows)
            rel = plant.cfg.measurement.noise_rel
            dc = p * (1.0 + rel * seeded_gauss(plant.seed, 5, k))
            ac = (p + plant._loss(p)) * (1.0 + rel * seeded_gauss(plant.seed, 6, k))
            self.rows.append((t, dc, ac, plant._dc_imp, plant._dc_exp, plant._ac_imp, plant._ac_exp,
                              plant._grid_f, plant._grid_v))
            self.next_t += self.period_s * max(1.0, math.floor((t - self.next_t) / self.period_s) + 1.0)
        return setpoint_w


def dc_for_ac(plant: Plant, ac_out_w: float) -> float:
    """DC power out of the battery that delivers `ac_out_w` on the AC side through the discharge losses."""
    a, b, c = plant.cfg.stage.discharge.loss
    p = ac_out_w
    for _ in range(4):                           # P_dc = P_ac + loss(P_dc), a fixed point: converges fast
        p = ac_out_w + a + b * p + c * p * p
    return p


class Site:
    """N plants on one clock and one grid connection; see the module doc."""

    def __init__(self, plants: list[Plant], *, nominal_v: float):
        self.plants = plants
        self.nominal_v = nominal_v
        self.load = StepSeries()
        self.pv = StepSeries()
        self.backup: dict[int, Islanding] = {}
        self.freq: dict[int, FrequencySupport] = {}

    @property
    def clock(self):
        return self.plants[0].clock

    def plant(self, evse: int) -> Plant:
        if not isinstance(evse, int) or not 1 <= evse <= len(self.plants):
            raise LabError(f"evse {evse!r} is not on this site (1..{len(self.plants)})", where="site")
        return self.plants[evse - 1]

    def home_load_w(self, t: float) -> float:
        return self.load.at(t)

    def islanded(self) -> bool:
        return self.plants[0]._grid_v < GRID_LOST_BELOW_V * self.nominal_v

    def _set_local(self, plant: Plant, kind: type, fn) -> None:
        plant.local_functions[:] = [f for f in plant.local_functions if not isinstance(f, kind)]
        if fn is not None:
            plant.local_functions.append(fn)

    # -- ops ---------------------------------------------------------------------------------------
    def info(self) -> dict:
        return {"evses": len(self.plants), "t": self.clock.now(), "time_scale": self.clock.time_scale}

    def battery(self, evse: int, soc: float | None = None, output_on: bool | None = None, **params: Any) -> dict:
        """An EVSE's battery (the EV it plays) and its emulator's output: the emulators power up off, and only
        EVSE 1's has an instrument front-end (RP7900 SCPI), so a site runner switches the others on here."""
        p = self.plant(evse)
        if params:
            p.configure_battery(**params)
        if soc is not None:
            p.set_battery_soc(_finite("soc", soc, lo=0.0))
        if output_on is not None:
            if not isinstance(output_on, bool):
                raise LabError(f"site.battery: output_on must be true or false, got {output_on!r}", where="site.battery")
            p.set_battery_output(output_on)
        s = p.state()
        return {"soc": s.soc, "battery_energy_wh": s.battery_energy_wh, "capacity_wh": p.cfg.battery.capacity_wh,
                "output_on": s.battery_output_on}

    def building(self, points: list, start_t: float | None = None) -> dict:
        """Building load and PV: points [dt_s, load_w, pv_w] (step), dt_s in plant seconds from `start_t` (plant
        time; default now)."""
        now = self.clock.now() if start_t is None else _finite("start_t", start_t)
        if not isinstance(points, list) or not points:
            raise LabError("site.building needs points [[dt_s, load_w, pv_w], ...]", where="site.building")
        ts, loads, pvs = [], [], []
        for i, pt in enumerate(points):
            if not isinstance(pt, (list, tuple)) or len(pt) != 3:
                raise LabError(f"points[{i}] = {pt!r}: expected [dt_s, load_w, pv_w]", where="site.building")
            ts.append(now + _finite(f"points[{i}].dt_s", pt[0], lo=0.0))
            loads.append(_finite(f"points[{i}].load_w", pt[1], lo=0.0))
            pvs.append(_finite(f"points[{i}].pv_w", pt[2], lo=0.0))
        if any(b < a for a, b in zip(ts, ts[1:])):
            raise LabError("site.building points must be in time order", where="site.building")
        self.load, self.pv = StepSeries(ts, loads), StepSeries(ts, pvs)
        return {"t": now, "points": len(ts)}

    def grid(self, points: list | None = None, freq_hz: float | None = None, voltage_v: float | None = None,
             start_t: float | None = None) -> dict:
        """The grid of every charger: at once (freq_hz / voltage_v) or a step profile [dt_s, f, v] from `start_t`
        (plant time; default now) - exact on the plant clock whatever the time compression."""
        for p in self.plants:
            if points is not None:
                shift = 0.0 if start_t is None else _finite("start_t", start_t) - self.clock.now()
                if any(float(pt[0]) + shift < 0 for pt in points):
                    raise LabError("site.grid: a point lies in the past", where="site.grid",
                                   fix="send grid events ahead of time")
                p.set_grid_profile([[float(pt[0]) + shift, *pt[1:]] for pt in points], mode="step")
            else:
                p.set_grid(freq_hz=freq_hz, voltage_v=voltage_v)
        return {"t": self.clock.now()}

    def frequency_support(self, evse: int, enabled: bool = True, nominal_hz: float = 50.0,
                          droop_w_per_hz: float = 0.0, deadband_hz: float = 0.0,
                          reserve_w: float | None = None) -> dict:
        p = self.plant(evse)
        fn = None
        if enabled:
            fn = FrequencySupport(_finite("nominal_hz", nominal_hz, lo=1.0), _finite("droop_w_per_hz", droop_w_per_hz),
                                  _finite("deadband_hz", deadband_hz, lo=0.0),
                                  math.inf if reserve_w is None else _finite("reserve_w", reserve_w, lo=0.0))
        with p._lock:
            p._sync()
            self._set_local(p, FrequencySupport, fn)
        return {"evse": evse, "enabled": bool(enabled)}

    def backup_op(self, evse: int, enabled: bool = True, transfer_s: float = 0.0) -> dict:
        p = self.plant(evse)
        fn = Islanding(self, _finite("transfer_s", transfer_s, lo=0.0)) if enabled else None
        with p._lock:
            p._sync()
            self._set_local(p, Islanding, fn)
            if fn is None:
                self.backup.pop(evse, None)
            else:
                self.backup[evse] = fn
        return {"evse": evse, "enabled": bool(enabled)}

    def measure(self) -> dict:
        """The site meter and every charger's measurement path (noisy, quantised, with plant time)."""
        rows = []
        for p in self.plants:
            m = p.measure("analyzer")
            s = p.state()
            rows.append({"t": m.t, "dc_w": m.dc_power_w, "ac_w": m.ac_power_w, "freq_hz": m.freq_hz,
                         "dc_v": m.dc_voltage_v,
                         "ac_v": m.ac_voltage_v, "soc": s.soc, "dc_import_wh": s.dc_import_wh,
                         "dc_export_wh": s.dc_export_wh, "ac_import_wh": s.ac_import_wh,
                         "ac_export_wh": s.ac_export_wh})
        t = rows[0]["t"]
        load, pv = self.load.at(t), self.pv.at(t)
        ev_ac = sum(r["ac_w"] for r in rows)
        island = self.islanded()
        return {"t": t, "load_w": load, "pv_w": pv, "islanded": island,
                "grid_w": 0.0 if island else load - pv + ev_ac,
                "unserved_w": max(0.0, load + ev_ac) if island else 0.0, "evse": rows}

    def record(self, period_s: float, start_t: float | None = None) -> dict:
        """Start the analyzer memory on every charger: a row every period_s plant seconds from start_t."""
        period = _finite("period_s", period_s)
        if period <= 0:
            raise LabError("site.record: period_s must be > 0", where="site.record")
        t0 = self.clock.now() if start_t is None else _finite("start_t", start_t)
        for p in self.plants:
            with p._lock:
                p._sync()
                self._set_local(p, Recorder, Recorder(period, t0))
        return {"t": self.clock.now(), "period_s": period}

    def samples(self, since: int = 0, limit: int = 20000) -> dict:
        """Rows [since, since + limit) of every charger's memory, aligned by index (the site meter from EVSE 1's
        time): {"next": k, "t": [...], "load_w", "pv_w", "grid_w", "unserved_w", "evse": [[row...] per EVSE]}."""
        recs = []
        for p in self.plants:
            with p._lock:
                p._sync()
                recs.append(next((f for f in p.local_functions if isinstance(f, Recorder)), None))
        if any(r is None for r in recs):
            raise LabError("site.samples before site.record", where="site.samples", fix="call site.record first")
        n = min(len(r.rows) for r in recs)
        hi = min(n, int(since) + int(limit))
        ts = [r[0] for r in recs[0].rows[since:hi]]
        evse = [r.rows[since:hi] for r in recs]
        load = [self.load.at(t) for t in ts]
        pv = [self.pv.at(t) for t in ts]
        lost = [row[8] < GRID_LOST_BELOW_V * self.nominal_v for row in evse[0]]
        ev_ac = [sum(e[j][2] for e in evse) for j in range(len(ts))]
        return {"next": hi, "t": ts, "load_w": load, "pv_w": pv,
                "grid_w": [0.0 if lost[j] else load[j] - pv[j] + ev_ac[j] for j in range(len(ts))],
                "unserved_w": [max(0.0, load[j] + ev_ac[j]) if lost[j] else 0.0 for j in range(len(ts))],
                "evse": evse}

    def reset(self) -> dict:
        for p in self.plants:
            p.local_functions.clear()
            p.set_grid(freq_hz=p.cfg.grid.freq_hz, voltage_v=p.cfg.grid.voltage_v)
        self.backup.clear()
        self.freq.clear()
        self.load, self.pv = StepSeries(), StepSeries()
        return {"evses": len(self.plants)}


class LoopLagProbe:
    """How late the lab's event loop runs (the simulated chargers' control ticks live on it): on 2 shared cores it
    stalls, and a stalled virtual DUT is late for the machine's reasons - the bench must not blame the DUT for it."""

    def __init__(self, clock, period_s: float = 0.01, threshold_s: float = 0.05):
        self.clock, self.period_s, self.threshold_s = clock, period_s, threshold_s
        self.max_lag_s = 0.0
        self.stalls: list[list[float]] = []            # [plant t, lag s], lags above the threshold (bounded)

    async def run(self) -> None:
        import asyncio
        import time
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.period_s)
            lag = time.monotonic() - t - self.period_s
            self.max_lag_s = max(self.max_lag_s, lag)
            if lag > self.threshold_s and len(self.stalls) < 10_000:
                self.stalls.append([self.clock.now(), lag])

    def op(self, reset: bool = False) -> dict:
        out = {"max_lag_s": self.max_lag_s, "stalls": list(self.stalls)}
        if reset:
            self.max_lag_s, self.stalls = 0.0, []
        return out


class SiteService:
    def __init__(self, site: Site, stations: list, probe: LoopLagProbe | None = None, task=None):
        self.site, self.stations, self.probe, self.task = site, stations, probe, task

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        for st in reversed(self.stations):
            try:
                await st.stop()
            except Exception:                    # one station's trouble must not keep the others running
                pass
        for p in self.site.plants[1:]:
            p.outputs_off()


async def start_service(plant: Plant, cfg: dict, ctx) -> SiteService:
    """Lab service entry point: EVSEs 2..N (plant + station each) and the site's control ops."""
    from v2g_bench.lab.charger import station as station_mod

    n = cfg.get("evses", 1)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 200:
        raise LabError(f"services.site.evses = {n!r}: must be an integer 1..200", where="lab config [services.site]")
    unknown = sorted(set(cfg) - {"evses", "start_timeout_s"})
    if unknown:
        raise LabError(f"unknown site option(s) {unknown}", where="lab config [services.site]", fix="use evses")
    plant_cfg = PlantConfig.from_dict(ctx.config.get("plant", {}))
    plants = [plant] + [Plant(plant_cfg, ctx.clock, seed=plant.seed + i) for i in range(1, n)]
    station_cfg = dict(ctx.config.get("services", {}).get("station", {}))
    stations = []
    if station_cfg.get("enabled", False):
        base = str(station_cfg.get("station_id", "LAB-CS-001"))
        stem = base.rstrip("0123456789")
        for i in range(2, n + 1):
            scfg = {k: v for k, v in station_cfg.items() if k not in ("enabled", "module")}
            scfg["station_id"] = f"{stem}{i:03d}" if stem != base else f"{base}-{i}"

            def prefixed(name, fn, _i=i):
                ctx.register_op(f"evse{_i}.{name}", fn)
            sub = type(ctx)(plant=plants[i - 1], clock=ctx.clock, log=ctx.log, host=ctx.host, register_op=prefixed,
                            ports=ctx.ports, ready={}, config=ctx.config)
            stations.append(await station_mod.start_service(plants[i - 1], scfg, sub))
    site = Site(plants, nominal_v=plant_cfg.grid.voltage_v)
    for name, fn in {"site.info": site.info, "site.battery": site.battery, "site.building": site.building,
                     "site.grid": site.grid, "site.frequency_support": site.frequency_support,
                     "site.backup": site.backup_op, "site.measure": site.measure, "site.reset": site.reset,
                     "site.record": site.record, "site.samples": site.samples}.items():
        ctx.register_op(name, fn)
    import asyncio
    probe = LoopLagProbe(ctx.clock)
    task = asyncio.ensure_future(probe.run())
    ctx.register_op("site.lag", probe.op)
    ctx.ready["site"] = {"evses": n, "stations": [getattr(s, "cfg", None) and s.cfg.station_id for s in stations]}
    return SiteService(site, stations, probe, task)
