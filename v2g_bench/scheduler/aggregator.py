"""The aggregator scenario: a fleet of simulated stations (light mode, their own process) under one CSMS, the
reference plan's profiles sent to every station, and the aggregate *measured* power judged against the plan.

    r = run_aggregator(1000)          # or: python -m benchmarks.aggregator --stations 1000
    r.verdict, r.max_deviation_kw, r.report()

Flow: a seeded fleet (one EV per station) behind a site limit -> `plan_fleet_decomposed` -> the CSMS
(`CsmsServer`, every frame schema-validated) accepts the stations, sends each its TxProfile (W, Absolute, the
plan's periods) before plan time 0 -> the stations follow on a scaled plan clock and report their energy
registers every interval -> per interval, the measured net energy of every station (register deltas, as the
CSMS received them) is summed and compared with the plan's aggregate.

Verdicts: a station that did not follow its profile (aggregate off by more than the tolerance, or the site
limit exceeded) raises `Nonconformance` naming the interval and the worst stations; anything the bench
caused (a profile not delivered before plan time 0, a station that never reported) is a `BenchError` or
`Inconclusive`, never blamed on the stations.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v2g_bench.errors import BenchError, Inconclusive, Nonconformance
from v2g_bench.scheduler.fleet import FleetResult, plan_fleet_decomposed
from v2g_bench.scheduler.model import EVRequest, Site

PASSWORD = "aggregator-bench-password"
EPOCH = dt.datetime(2026, 1, 5, 17, 0, tzinfo=dt.timezone.utc)


@dataclass
class AggregatorResult:
    stations: int
    plan: FleetResult
    planned_kw: np.ndarray               # (T,) aggregate of the plan
    measured_kw: np.ndarray              # (T,) aggregate of what the stations reported
    per_station_kw: np.ndarray           # (N, T)
    limit_kw: float
    base_kw: np.ndarray
    tolerance_kw: float
    frames: int
    violations: int
    timings: dict = field(default_factory=dict)

    @property
    def deviation_kw(self) -> np.ndarray:
        return self.measured_kw - self.planned_kw

    @property
    def max_deviation_kw(self) -> float:
        return float(np.abs(self.deviation_kw).max())

    def judge(self) -> None:
        """Raise Nonconformance when the fleet's measured aggregate leaves the plan or the site limit."""
        dev = self.deviation_kw
        k = int(np.argmax(np.abs(dev)))
        if abs(dev[k]) > self.tolerance_kw:
            worst = np.argsort(-np.abs(self.per_station_kw[:, k] - self.plan.power_kw[:, k]))[:3]
            who = ", ".join(f"{self.plan.names[j]} ({self.per_station_kw[j, k]:.2f} kW vs plan "
                            f"{self.plan.power_kw[j, k]:.2f})" for j in worst)
            raise Nonconformance(f"interval {k}: the fleet drew {self.measured_kw[k]:.1f} kW against a planned "
                                 f"{self.planned_kw[k]:.1f} kW (tolerance {self.tolerance_kw:.1f} kW); worst: {who}",
                                 req="fleet aggregate follows its TxProfiles")
        site = self.measured_kw + self.base_kw
        if site.max() > self.limit_kw + self.tolerance_kw:
            k = int(np.argmax(site))
            raise Nonconformance(f"interval {k}: site import {site[k]:.1f} kW over the {self.limit_kw:.0f} kW limit",
                                 req="site limit")

    def report(self) -> str:
        return (f"{self.stations} stations: planned vs measured aggregate, max deviation {self.max_deviation_kw:.3f} kW "
                f"(tolerance {self.tolerance_kw:.1f}), site peak {(self.measured_kw + self.base_kw).max():.0f} / "
                f"{self.limit_kw:.0f} kW; {self.frames} frames, {self.violations} schema violations; "
                + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items()))


def make_fleet(n: int, T: int, dt_s: float, seed: int = 0) -> tuple[Site, list[EVRequest]]:
    """A seeded evening fleet: every EV plugged in for the whole horizon, a site limit that binds."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    price = 0.22 + 0.12 * np.sin(t / T * np.pi) + 0.02 * rng.random(T)
    evs = []
    for i in range(n):
        cap = float(rng.choice([40.0, 60.0, 77.0]))
        soc = float(rng.uniform(0.3, 0.6)) * cap
        evs.append(EVRequest(f"CS{i:05d}", cap, soc, min(cap * 0.8, soc + 2.0 * T * dt_s / 3600), T * dt_s,
                             11.0, 11.0, floor_kwh=0.2 * cap, eta_charge=0.95, eta_discharge=0.95,
                             degradation_per_kwh=0.02))
    base = 0.8 * n * (1 + 0.3 * np.sin(t / T * np.pi))
    return Site(import_price=price, export_price=price - 0.03, dt_s=dt_s, load_kw=base,
                import_limit_kw=float(base.max() + 4.0 * n)), evs


def _periods(power_kw: np.ndarray, dt_s: float) -> list[tuple[int, float]]:
    out: list[tuple[int, float]] = []
    for k, kw in enumerate(power_kw):
        w = round(float(kw) * 1000, 1)
        if not out or out[-1][1] != w:
            out.append((int(k * dt_s), w))
    return out


def run_aggregator(n_stations: int = 1000, *, intervals: int = 8, dt_s: float = 900.0, interval_wall_s: float = 3.0,
                   seed: int = 0, defective: int = 0, tolerance_kw: float | None = None, workers: int = 1,
                   timeout_s: float = 900.0) -> AggregatorResult:
    """Run the scenario and return the result (call `.judge()` for the verdict). `defective` stations ignore
    their profile (to show the judge fails)."""
    from v2g_bench.csms import payloads as P
    from v2g_bench.csms.server import CsmsOptions, CsmsServer
    from v2g_bench.harness.asyncrt import LoopThread
    from v2g_bench.lab.charger.station_light import iso

    timings: dict[str, float] = {}
    t_start = time.monotonic()
    site, evs = make_fleet(n_stations, intervals, dt_s, seed)
    plan = plan_fleet_decomposed(site, evs, workers=workers)
    timings["plan"] = time.monotonic() - t_start
    T, N = intervals, n_stations
    # registers: station -> {plan second: (import Wh, export Wh)}
    registers: dict[str, dict[float, tuple[float, float]]] = {e.name: {} for e in evs}
    started: set[str] = set()     # stations whose transaction the CSMS has seen start

    def on_frame(frame):
        if frame.direction != "in" or frame.action != "TransactionEvent" or not isinstance(frame.payload, dict):
            return
        if frame.payload.get("eventType") == "Started":
            started.add(frame.station)
        for mv in frame.payload.get("meterValue") or ():
            sv = {s.get("measurand"): s.get("value") for s in mv.get("sampledValue", ())}
            if "Energy.Active.Import.Register" in sv:
                at = (dt.datetime.fromisoformat(mv["timestamp"].replace("Z", "+00:00")) - EPOCH).total_seconds()
                registers.setdefault(frame.station, {})[round(at, 3)] = (
                    float(sv["Energy.Active.Import.Register"]), float(sv.get("Energy.Active.Export.Register", 0.0)))

    loop = LoopThread("aggregator-csms")
    work = Path(tempfile.mkdtemp(prefix="aggregator-"))
    fleet_proc = srv = None
    try:
        async def start():
            srv = CsmsServer(CsmsOptions.from_dict({"security_profile": 1, "password": PASSWORD,
                                                    "ocpp_versions": ["2.0.1"], "retain_frames": False,
                                                    "record_path": str(work / "frames.jsonl")}))
            srv.recorder.listeners.append(on_frame)
            await srv.start()
            return srv
        srv = loop.run(start(), 30)
        scale = dt_s / interval_wall_s
        boot_budget = 15.0 + 0.03 * N          # connect + boot + one profile per station, before plan time 0
        t0 = time.monotonic() + boot_budget
        spec = {"url": f"ws://127.0.0.1:{srv.port}/ocpp", "password": PASSWORD, "epoch": iso(EPOCH), "scale": scale,
                "t0": t0, "horizon_s": T * dt_s, "meter_interval_s": dt_s,
                "stations": [{"id": e.name, "defect": "ignore_profile" if j < defective else None,
                              "ev": {"capacity_kwh": e.capacity_kwh, "soc_kwh": e.soc_kwh,
                                     "max_charge_kw": e.max_charge_kw, "max_discharge_kw": e.max_discharge_kw,
                                     "floor_kwh": e.floor_kwh, "eta_charge": e.eta_charge,
                                     "eta_discharge": e.eta_discharge}} for j, e in enumerate(evs)]}
        (work / "fleet.json").write_text(json.dumps(spec))
        t_fleet = time.monotonic()
        fleet_proc = subprocess.Popen([sys.executable, "-m", "v2g_bench.lab.charger.station_light",
                                       str(work / "fleet.json"), str(work / "fleet.out.json")], stdin=subprocess.DEVNULL)

        async def send_profiles():
            names = {e.name for e in evs}
            while not names <= started:
                if time.monotonic() > t0 - 1 or fleet_proc.poll() is not None:
                    missing = len(names - started)
                    raise BenchError(f"{missing} of {N} stations not connected and booted before plan time 0",
                                     where="aggregator", fix="raise the boot budget or lower the station count")
                await asyncio.sleep(0.1)
            t_sent = time.monotonic()
            timings["boot"] = t_sent - t_fleet
            sem = asyncio.Semaphore(200)

            async def one(j, e):
                prof = P.charging_profile(1, "TxProfile", _periods(plan.power_kw[j], dt_s), version="2.0.1",
                                          start_schedule=iso(EPOCH), transaction_id=f"TX-{e.name}")
                async with sem:
                    f = await srv.sessions[e.name].call("SetChargingProfile", {"evseId": 1, "chargingProfile": prof},
                                                        timeout=60)
                return f.payload.get("status") if isinstance(f.payload, dict) else None
            status = await asyncio.gather(*(one(j, e) for j, e in enumerate(evs)))
            return status, time.monotonic() - t_sent
        status, timings["profiles sent"] = loop.run(send_profiles(), boot_budget + 120)
        if time.monotonic() > t0:
            raise Inconclusive(f"profiles reached the stations {time.monotonic() - t0:.1f} s after plan time 0 "
                               "(machine too slow for this fleet size): no verdict")
        refused = [evs[j].name for j, s in enumerate(status) if s != "Accepted"]
        if refused:
            raise Nonconformance(f"{len(refused)} station(s) refused their TxProfile: {refused[:5]}", req="SetChargingProfile accepted")
        fleet_proc.wait(timeout=max(10.0, t0 + T * interval_wall_s - time.monotonic() + 120))
        timings["run"] = time.monotonic() - t0
        out = json.loads((work / "fleet.out.json").read_text())
        if out["n_errors"]:
            raise BenchError(f"{out['n_errors']} light station(s) failed: {out['errors'][:3]}", where="aggregator")
        srv_frames, srv_viol = srv.recorder.count, len(srv.violations)
    except subprocess.TimeoutExpired as e:
        raise BenchError("the station fleet did not finish in time", where="aggregator") from e
    finally:
        if fleet_proc is not None and fleet_proc.poll() is None:
            fleet_proc.kill()
            fleet_proc.wait(5)
        try:
            if srv is not None:
                loop.run(srv.stop(), 30)
        finally:
            loop.stop()
    per = np.full((N, T), np.nan)
    for j, e in enumerate(evs):
        reg = registers.get(e.name, {})
        for k in range(T):
            a, b = reg.get(round(k * dt_s, 3)), reg.get(round((k + 1) * dt_s, 3))
            if a is not None and b is not None:
                per[j, k] = ((b[0] - a[0]) - (b[1] - a[1])) / 1000 / (dt_s / 3600)
    missing = np.argwhere(np.isnan(per))
    if missing.size:
        j, k = missing[0]
        raise Inconclusive(f"{len(missing)} station-interval(s) without energy registers at both ends "
                           f"(first: {evs[j].name}, interval {k}): no verdict on them")
    tol = tolerance_kw if tolerance_kw is not None else max(1.0, 0.001 * float(np.abs(plan.power_kw.sum(axis=0)).max()))
    return AggregatorResult(N, plan, plan.power_kw.sum(axis=0), per.sum(axis=0), per, float(site.import_limit_kw),
                            site.base_kw(), tol, srv_frames, srv_viol, timings)
