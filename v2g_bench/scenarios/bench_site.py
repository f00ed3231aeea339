"""The scenario runner's plant on a REAL bench: wall clock (time scale 1), instruments through the bench's roles.

The runner drives its plant through one op contract, the lab's site service ops (v2g_bench.lab.site):

    set_time_scale(time_scale)            the plant clock's speed            (bench: 1 only - the wall clock)
    site.measure()                        {"t", "evse": [{"dc_v", "dc_import_wh", "dc_export_wh", ...}], ...}
    site.building(points, start_t)        building load / PV step profile on the plant clock
    site.record(period_s, start_t)        start the analyzer memory: a row per EVSE every period_s
    site.samples(since, limit)            rows [t, dc_w, ac_w, dc_in_wh, dc_out_wh, ac_in_wh, ac_out_wh, f_hz, ac_v]
                                          + the site meter (grid = load - PV + sum AC)
    site.lag(reset)                       how late the sampling ran (the bench's own lateness)
    site.battery / site.frequency_support / site.grid / site.backup / fault / station.defects

Two implementations: the virtual lab's control port (`LabControl`, compressed plant clock, the memory inside the
plant's integration) and `BenchOps` here: time.monotonic() is the plant clock, a sampling thread reads the bench's
`analyzer` role (element 1 = DC link, element 2 = AC, one acquisition per row, the instrument's own WP+/WP-
integrators as the counters) and the `battery` role (its own V x I: the independent second path the analyzer
cross-check compares with), the building is emulated by the bench (a virtual site meter on the measured AC), the
EV is the bench's `ev` role (the ISO 15118 EV emulator) and the CSMS the bench's `csms` role. One charger (the
DUT), no grid simulator role: grid events (frequency steps, grid loss) are refused before anything is energized.
"""
from __future__ import annotations

import math
import threading
import time

from v2g_bench.errors import BenchError


class _Series:
    def __init__(self):
        self.t, self.load, self.pv = [0.0], [0.0], [0.0]

    def set(self, points, start_t: float) -> None:
        self.t = [start_t + float(p[0]) for p in points] or [0.0]
        self.load = [float(p[1]) for p in points] or [0.0]
        self.pv = [float(p[2]) for p in points] or [0.0]

    def at(self, t: float) -> tuple[float, float]:
        k = 0
        for j, tj in enumerate(self.t):
            if tj <= t:
                k = j
        return self.load[k], self.pv[k]


class BenchOps:
    """The site op contract on a real bench (see module doc); `call(op, **kw)` like LabControl.call."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.analyzer = ctx.role("analyzer")
        self.battery = ctx.dc_link            # the battery emulator holding the DC link at the EV's voltage
        self.building = _Series()
        self.rows: list[list] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._th: threading.Thread | None = None
        self.max_lag_s, self.stalls = 0.0, []
        self._batt = [0.0, 0.0, None]         # battery emulator's own integral (in, out Wh) and last (t, P)
        self.error: BaseException | None = None
        # the analyzer's own integrators are the memory's counters: from zero, running (before the EV's session)
        self.analyzer.integration_reset()
        self.analyzer.integration_start()

    # --- the op contract -------------------------------------------------------------------------------------------
    def call(self, op: str, **kw):
        fn = {"set_time_scale": self.set_time_scale, "site.measure": self.measure, "site.building": self.set_building,
              "site.record": self.record, "site.samples": self.samples, "site.lag": self.lag,
              "site.reset": self.reset, "site.battery": self.set_battery}.get(op)
        if fn is None:
            raise BenchError(f"op {op} needs the virtual lab (a real bench has no {op.split('.')[-1]} control)",
                             where="scenario runner on a real bench",
                             fix="scenarios with grid events need a grid simulator role; faults and defects are "
                                 "virtual-lab only")
        return fn(**kw)

    def set_time_scale(self, time_scale: float) -> dict:
        if abs(float(time_scale) - 1.0) > 1e-9:
            raise BenchError(f"a real bench runs at time scale 1, not {time_scale:g}", where="scenario runner",
                             fix="--real-time plays the plan's slots at their own length")
        return {"time_scale": 1.0}

    def _read(self) -> list:
        r = self.analyzer.read()
        dc, ac = r[1], r[2]
        b = self.battery.read()
        with self.lock:
            last = self._batt[2]
            if last is not None:
                dt_h = max(b.t - last[0], 0.0) / 3600.0
                p = 0.5 * (b.power_w + last[1])
                self._batt[0 if p >= 0 else 1] += abs(p) * dt_h
            self._batt[2] = (b.t, b.power_w)
        f = ac.frequency_hz if math.isfinite(ac.frequency_hz) else float("nan")
        return [r.t, dc.power_w, ac.power_w, dc.energy_in_wh, dc.energy_out_wh, ac.energy_in_wh, ac.energy_out_wh,
                f, ac.voltage_v]

    def measure(self) -> dict:
        row = self._read()
        load, pv = self.building.at(row[0])
        return {"t": row[0], "load_w": load, "pv_w": pv, "islanded": False, "grid_w": load - pv + row[2],
                "unserved_w": 0.0, "evse": [{"t": row[0], "dc_w": row[1], "ac_w": row[2], "freq_hz": row[7],
                                             "dc_v": self.analyzer.read()[1].voltage_v, "ac_v": row[8],
                                             "dc_import_wh": row[3], "dc_export_wh": row[4],
                                             "ac_import_wh": row[5], "ac_export_wh": row[6]}]}

    def set_battery(self, evse: int, capacity_wh: float, soc: float, output_on: bool = False) -> dict:
        """The pack: the battery emulator holds the DC link at the EV's voltage (the `dc_link` fixture); capacity and
        SOC are the EV emulator's model (set by the runner), which follows the analyzer's energy. `output_on` is the
        virtual lab's power-up switch; here the battery role's output was already switched on by `dc_link`, limits
        first, so it is not switched again from a scenario op."""
        return {"evse": evse, "held_at_v": self.battery.read().voltage_v}

    def set_building(self, points, start_t: float) -> dict:
        self.building.set(points, float(start_t))
        return {"points": len(points)}

    def record(self, period_s: float, start_t: float | None = None) -> dict:
        period = float(period_s)
        if not period > 0:
            raise BenchError("site.record: period_s must be > 0", where="scenario bench site")
        t0 = time.monotonic() if start_t is None else float(start_t)
        self.stop()
        self._stop.clear()
        self.rows = []

        def run():
            k = max(0, math.ceil((time.monotonic() - t0) / period))
            while not self._stop.is_set():
                due = t0 + k * period
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                late = time.monotonic() - due
                if late > self.max_lag_s:
                    self.max_lag_s = late
                if late > 0.1:
                    self.stalls.append([due, late])
                try:
                    row = self._read()
                except Exception as e:  # noqa: BLE001 - a lost instrument ends the run as a bench error
                    self.error = e
                    return
                with self.lock:
                    self.rows.append(row)
                k = max(k + 1, math.ceil((time.monotonic() - t0) / period))
        self._th = threading.Thread(target=run, name="scenario-bench-sampler", daemon=True)
        self._th.start()
        return {"t": time.monotonic(), "period_s": period}

    def samples(self, since: int = 0, limit: int = 20000) -> dict:
        if self.error is not None:
            raise BenchError(f"the bench's analyzer / battery emulator stopped answering: {self.error}",
                             where="scenario bench sampler")
        with self.lock:
            rows = self.rows[int(since): int(since) + int(limit)]
        nxt = int(since) + len(rows)
        ts = [r[0] for r in rows]
        lp = [self.building.at(t) for t in ts]
        return {"next": nxt, "t": ts, "load_w": [x[0] for x in lp], "pv_w": [x[1] for x in lp],
                "grid_w": [x[0] - x[1] + r[2] for x, r in zip(lp, rows)], "unserved_w": [0.0] * len(rows),
                "evse": [rows]}

    def lag(self, reset: bool = False) -> dict:
        out = {"max_lag_s": self.max_lag_s, "stalls": list(self.stalls)}
        if reset:
            self.max_lag_s, self.stalls = 0.0, []
        return out

    def reset(self) -> dict:
        self.stop()
        return {}

    # --- the independent path: the battery emulator's own V x I, integrated -----------------------------------------
    def battery_energy_wh(self) -> tuple[float, float]:
        with self.lock:
            return self._batt[0], self._batt[1]

    def stop(self) -> None:
        self._stop.set()
        if self._th is not None:
            self._th.join(5.0)
            self._th = None

    def close(self) -> None:
        self.stop()


class BatteryPath:
    """The analyzer cross-check's second path on a real bench: the battery emulator's own measurement."""

    def __init__(self, ops: BenchOps):
        self.ops = ops

    def energy_wh(self) -> tuple[float, float]:
        return self.ops.battery_energy_wh()

    def close(self) -> None:
        pass


class BenchSite:
    """The bench's one charger as the runner drives it (the shape of runner.SiteSession): the DUT is connected to the
    bench's CSMS role; its transaction is started by the EV role's ISO 15118 session."""

    def __init__(self, ctx, csms):
        self.ctx, self.csms, self.n = ctx, csms, 1
        self.version = ctx.version or "2.0.1"
        self.ctl = BenchOps(ctx)
        st = csms.stations()
        if not st:
            raise BenchError("the DUT is not connected to the bench's CSMS role", where="scenario runner",
                             fix="the case's given step ocpp.connected() waits for it")
        self.stations = [st[0]]
        self.tx = [""]

    def connect_all(self, iso_evse1: bool = False) -> None:
        if not iso_evse1:
            raise BenchError("on a real bench the EV (the ISO 15118 EV emulator) starts the transaction",
                             where="scenario runner", fix="RunOptions.ev_link = 'iso15118'")

    def hold_evse1_at_zero(self) -> None:
        from v2g_bench.scenarios.runner import SiteSession
        SiteSession.hold_evse1_at_zero(self)

    def plant_time(self) -> tuple[float, float, dict]:
        t = time.monotonic()
        return t, t, {}

    def close(self) -> None:
        try:       # the 0 W TxDefaultProfile of hold_evse1_at_zero must not outlive the run on a real charger
            self.csms.call("ClearChargingProfile", {"chargingProfileId": 99}, station=self.stations[0])
        except Exception:  # noqa: BLE001 - best effort on the way out; the case's teardown resets the charger
            pass
        finally:
            self.ctl.close()
