"""Scenario runner: scenario -> reference scheduler -> CSMS emulator commands -> the charger(s) -> measured -> judged.

One run (`run_scenario`):
1. plan: the reference scheduler (HiGHS) plans the scenario for the EVs clipped to the DUT's ratings;
2. site: the virtual lab's multi-EVSE site (v2g_bench.lab.site) gets one charger + OCPP station per EV, the
   batteries (the battery emulator plays each EV: capacity and SOC from the scenario), the building load/PV, and
   the charger's local functions the scenario needs (frequency droop, V2H backup);
3. command: the CSMS emulator sends each station a TxProfile of the plan - OCPP 2.0.1 limits with discharge
   periods (negative limits) or OCPP 2.1 CentralSetpoint periods (setpoint / dischargeLimit) - with the plan's
   slots played `time_scale` times shorter (dt_s / time_scale whole seconds) while the lab's clock runs
   `time_scale` times faster, so energy in plant time is the plan's;
   a [[tariff_update]] is published mid-run: the runner re-plans from the measured SOC and replaces the profiles;
   grid events ([frequency_response] step, [grid_loss]) are set on the lab's plant clock, exact at any speed;
4. measure: the site meter and each charger's measurement path are sampled with plant timestamps;
5. judge (v2g_bench.scenarios.judges): per-interval compliance, site limit, SOC floor / departure from measured
   energy, energy cost vs the plan, frequency response, backup transfer, cycling throughput.

Compressed time stretches every wall-clock latency (the DUT's control tick, the bench's I/O) by the factor; the
judges allow `latency_s x time_scale` of plant time per setpoint change and say so in the report. At
time_scale 1 (a real bench) that allowance is the DUT's own dead time and settling.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v2g_bench.errors import BenchError, Inconclusive
from v2g_bench.scheduler.model import EVRequest, Plan, Site
from v2g_bench.scheduler.scenario import Scenario

PASSWORD = "scenario-runner-pass-01"
GROSS_OVER_USABLE = 1.15


COMMAND_NAMES = {"modbus": "Modbus local control", "chademo": "CHAdeMO over CAN, the energy manager's power target"}


class ScenarioNotApplicable(Exception):
    """The DUT cannot run this scenario (its ratings or claims): a skip with the reason, never a verdict."""


@dataclass
class RunOptions:
    time_scale: float = 900.0            # requested compression (plan slot dt_s -> dt_s / time_scale wall seconds)
    sample_period_s: float = 0.02        # wall seconds between site-meter samples
    event_sample_period_s: float = 0.004  # ... when a frequency step or a grid loss is to be timed
    # wall-clock latency allowed per setpoint change: the DUT's control tick + bench I/O, and on the virtual lab the
    # stalls of 2 shared, loaded cores (0.15 s seen): x time_scale in plant time
    latency_s: float = 0.25
    ocpp_version: str = "2.0.1"
    command: str = "ocpp"                # "ocpp": TxProfiles via the CSMS; "modbus": the bench is the site's energy
    #                                      manager and writes the charger's current setpoint each slot (Quasar map);
    #                                      "chademo": a CHAdeMO V2H unit, the EV on CAN, a power target each slot
    control_interval_s: float = 0.02     # the lab station's control tick in compressed runs
    max_evses: int | None = None         # cap for very large fleets: a slice of the site (see site_slice)
    lead_s: float = 2.0                  # wall seconds between the profiles and the plan's first slot
    lab_faults: tuple = ()               # (name, {params}) injected on EVSE 1's plant before the plan starts: a bad DUT
    station_defects: tuple = ()          # names of EVSE 1's station defects (lab/charger/station_defects.py): a bad DUT
    big_site_evses: int = 10             # above this many EVSEs: coarser station tick and plant steps, at most x450
    big_site_time_scale: float = 450.0
    event_time_scale: float = 300.0      # with an event to time the plant steps 0.1 s: x900 overloads the lab
    evse_timeout_s: float = 30.0
    # who plays EVSE 1's EV: "battery" (the battery emulator behind a transaction the station starts) or
    # "iso15118" (the EV emulator over ISO 15118-20 DC_BPT against the lab's SECC, the battery emulator as its pack)
    ev_link: str = "battery"

    def period_for(self, sc: Scenario) -> float:
        return self.event_sample_period_s if (sc.frequency_response or sc.grid_loss) else self.sample_period_s

    def big(self, sc: Scenario) -> bool:
        return len(sc.evs[: self.max_evses] if self.max_evses else sc.evs) > self.big_site_evses

    def finest_s(self, sc: Scenario) -> float:
        """The scenario's fastest judged time (frequency activation delay, backup transfer), plant seconds."""
        finest = math.inf
        if sc.frequency_response:
            finest = min(finest, float(sc.frequency_response.get("activation_delay_max_s", 2.0)))
        if sc.grid_loss:
            finest = min(finest, float(sc.grid_loss["transfer_time_max_s"]))
        return finest

    def factor_for(self, sc: Scenario) -> float:
        """The compression actually used: at most the requested one (events are timed by the lab's analyzer memory
        on the plant clock, so they do not limit it) with dt_s / factor whole seconds; a big site (one lab process
        integrating every plant) gets at most big_site_time_scale."""
        limit = min(self.time_scale, self.big_site_time_scale) if self.big(sc) else self.time_scale
        if math.isfinite(self.finest_s(sc)):
            limit = min(limit, self.event_time_scale)
        dt_s = int(sc.site.dt_s)
        candidates = [dt_s / k for k in range(1, dt_s + 1) if dt_s % k == 0 and dt_s / k <= limit + 1e-9]
        return max(max(candidates), 1.0)


@dataclass
class Trace:
    """What was measured, on plant time (s from the scenario start)."""
    t: list = field(default_factory=list)
    grid_w: list = field(default_factory=list)
    load_w: list = field(default_factory=list)
    pv_w: list = field(default_factory=list)
    unserved_w: list = field(default_factory=list)
    freq_hz: list = field(default_factory=list)
    dc_w: list = field(default_factory=list)           # per sample: [EVSE...]
    ac_w: list = field(default_factory=list)
    dc_in_wh: list = field(default_factory=list)
    dc_out_wh: list = field(default_factory=list)
    ac_in_wh: list = field(default_factory=list)
    ac_out_wh: list = field(default_factory=list)

    def add(self, m: dict, t_rel: float) -> None:
        """One site-meter reading (the shape of op site.measure) at t_rel plan seconds."""
        self.t.append(t_rel)
        self.grid_w.append(m["grid_w"])
        self.load_w.append(m["load_w"])
        self.pv_w.append(m["pv_w"])
        self.unserved_w.append(m["unserved_w"])
        rows = m["evse"]
        self.freq_hz.append(rows[0]["freq_hz"])
        self.dc_w.append([r["dc_w"] for r in rows])
        self.ac_w.append([r["ac_w"] for r in rows])
        self.dc_in_wh.append([r["dc_import_wh"] for r in rows])
        self.dc_out_wh.append([r["dc_export_wh"] for r in rows])
        self.ac_in_wh.append([r["ac_import_wh"] for r in rows])
        self.ac_out_wh.append([r["ac_export_wh"] for r in rows])

    def add_rows(self, r: dict, t0_plant: float, w0: float) -> None:
        """Rows read out of the site analyzer's memory (op site.samples), plant time -> plan seconds."""
        for j, t in enumerate(r["t"]):
            rows = [e[j] for e in r["evse"]]
            self.t.append(t - t0_plant + w0)
            self.grid_w.append(r["grid_w"][j])
            self.load_w.append(r["load_w"][j])
            self.pv_w.append(r["pv_w"][j])
            self.unserved_w.append(r["unserved_w"][j])
            self.freq_hz.append(rows[0][7])
            self.dc_w.append([x[1] for x in rows])
            self.ac_w.append([x[2] for x in rows])
            self.dc_in_wh.append([x[3] for x in rows])
            self.dc_out_wh.append([x[4] for x in rows])
            self.ac_in_wh.append([x[5] for x in rows])
            self.ac_out_wh.append([x[6] for x in rows])

    def arrays(self) -> dict:
        return {k: np.asarray(v, dtype=float) for k, v in self.__dict__.items()}


@dataclass
class Commanded:
    """The profile each EV was commanded, as plan-time steps: starts_s (from the scenario start), power_w."""
    starts_s: list
    power_w: list
    end_s: float


@dataclass
class RunRecord:
    scenario: Scenario
    plan: Plan                            # the (last) plan
    plans: list                           # [(from_s, Plan)] every plan that was commanded
    evs: list[EVRequest]                  # as planned (clipped to the DUT)
    window: tuple[float, float]           # plan seconds played [a, b)
    time_scale: float
    trace: Trace
    commanded: list[Commanded]            # per EV
    prices: tuple                         # (import, export) per interval, as in effect when the energy flowed
    wall_s: float
    scheduler_s: float
    ocpp_version: str
    latency_plant_s: float
    notes: list[str] = field(default_factory=list)
    events: dict = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        return (self.window[1] - self.window[0]) / max(self.wall_s, 1e-9)


# ------------------------------------------------------------------------------------------ planning

# the lowest battery voltage a scenario EV is played at (the lab battery's OCV near 20 % SOC): a rated current
# limits the power below it (30 A x 350 V = 10.5 kW on an 11 kW / 30 A charger)
BATTERY_VOLTAGE_MIN_V = 350.0


def clip_to_dut(sc: Scenario, ratings: dict, max_evses: int | None) -> list[EVRequest]:
    """The scenario's EVs as the DUT can serve them: power limits clipped to its ratings per direction (power, and
    current at the lowest battery voltage played)."""
    from dataclasses import replace

    def cap_kw(d: dict) -> float:
        return min(float(d.get("power_max_w", math.inf)),
                   float(d.get("current_max_a", math.inf)) * BATTERY_VOLTAGE_MIN_V) / 1000.0
    pc = cap_kw(ratings.get("charge", {}))
    pd = cap_kw(ratings["discharge"]) if ratings.get("discharge") else 0.0
    evs = sc.evs[:max_evses] if max_evses else list(sc.evs)
    out = []
    for ev in evs:
        kw = dict(max_charge_kw=min(ev.max_charge_kw, pc), max_discharge_kw=min(ev.max_discharge_kw, pd))
        if ev.charge_curve is not None and kw["max_charge_kw"] < ev.max_charge_kw:
            kw["charge_curve"] = None        # the part-load segments were sized for the EV's own maximum
        if ev.discharge_curve is not None and kw["max_discharge_kw"] < ev.max_discharge_kw:
            kw["discharge_curve"] = None
        out.append(replace(ev, **kw))
    return out


def site_slice(sc: Scenario, max_evses: int | None) -> tuple[Scenario, str]:
    """A fleet bigger than the lab can play in one process: its first `max_evses` EVs with the site scaled by the
    same share (load, PV, connection limits), so the slice keeps the depot's proportions - and the report says so."""
    from dataclasses import replace
    total = len(sc.evs)
    if not max_evses or total <= max_evses:
        return sc, ""
    k = max_evses / total
    s = sc.site

    def scaled(x):
        return None if x is None else x * k
    site = Site(import_price=s.import_price, export_price=s.export_price, dt_s=s.dt_s, load_kw=scaled(s.load_kw),
                pv_kw=scaled(s.pv_kw), import_limit_kw=scaled(s.import_limit_kw),
                export_limit_kw=scaled(s.export_limit_kw), demand_charge_per_kw=s.demand_charge_per_kw,
                name=s.name)
    note = (f"a {max_evses}/{total} slice of the site: its first {max_evses} EVs, load, PV and limits x{k:.3g} "
            f"(one lab process on this machine cannot integrate {total} chargers compressed)")
    return replace(sc, site=site, evs=sc.evs[:max_evses]), note


def plan_scenario(sc: Scenario, evs: list[EVRequest], site: Site | None = None) -> Plan:
    from v2g_bench.scheduler.lp import Scheduler
    from v2g_bench.scheduler.model import InfeasibleSchedule
    try:
        return Scheduler().plan(site or sc.site, evs)
    except InfeasibleSchedule as e:
        why = e.reasons[0] + (f" (and {len(e.reasons) - 1} more like it)" if len(e.reasons) > 1 else "")
        raise ScenarioNotApplicable(f"the plan is infeasible for this DUT's ratings: {why}") from None


def play_window(sc: Scenario, plan: Plan, evs: list[EVRequest]) -> tuple[int, int]:
    """Intervals [a, b) to play: from the first arrival to the last departure (nothing to command outside);
    a frequency or grid-loss event narrows it to the intervals around the event."""
    dt_s, n = sc.site.dt_s, plan.n
    a = min(int(math.floor(ev.arrival_s / dt_s + 1e-9)) for ev in evs)
    b = max(int(math.ceil(ev.departure_s / dt_s - 1e-9)) for ev in evs)
    a, b = max(a, 0), min(b, n)
    fr = sc.frequency_response
    if fr:
        t0 = float(fr.get("step_at_s", 0.0))
        t1 = t0 + float(fr.get("hold_s", 0.0)) + 60.0 + float(fr.get("full_activation_s", 30.0))
        a, b = max(a, int(t0 // dt_s)), min(b, int(math.ceil(t1 / dt_s)) + 1)
    if sc.grid_loss:
        t0 = sc.grid_loss["at_s"]
        t1 = t0 + sc.grid_loss["duration_s"]
        a, b = max(a, int(t0 // dt_s) - 1), min(b, int(math.ceil(t1 / dt_s)) + 1)
    return a, b


def schedule_periods(power_kw: np.ndarray, slot_s: int, lead_s: int) -> list[tuple[int, float]]:
    """(startPeriod, W) periods: `lead_s` of 0 W, then one per plan slot, equal neighbours merged."""
    periods: list[tuple[int, float]] = [(0, 0.0)] if lead_s > 0 else []
    for k, p in enumerate(power_kw):
        w = round(float(p) * 1000.0, 1)
        if abs(w) < 1.0:
            w = 0.0
        if periods and periods[-1][1] == w:
            continue
        periods.append((lead_s + k * slot_s, w))
    return periods


def build_profile(csms, station: str, version: str, profile_id: int, tx_id: str, periods, start_utc: dt.datetime,
                  duration_s: int) -> dict:
    from v2g_bench.csms import payloads as P
    if version == "2.0.1":
        sched = [P.schedule_period(s, w, "2.0.1") for s, w in periods]
    else:                # 2.1: a central setpoint per period, discharge as a negative setpoint within dischargeLimit
        sched = [P.schedule_period(s, w, version, mode="CentralSetpoint") for s, w in periods]
    return {"id": profile_id, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute", "transactionId": tx_id,
            "chargingSchedule": [{"id": profile_id, "chargingRateUnit": "W", "duration": int(duration_s),
                                  "startSchedule": start_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                  "chargingSchedulePeriod": sched}]}


# ------------------------------------------------------------------------------------------ the lab site

def lab_overrides(n: int, opts: RunOptions, sc: Scenario, evs: list[EVRequest], ratings: dict) -> dict:
    """Lab config for a scenario: N EVSEs, stations that follow their profile (the EV always wants power; the
    plan decides), a stage as rated by the DUT profile, finer plant steps when an event is judged."""
    pc = float(ratings.get("charge", {}).get("power_max_w", 11000.0))
    pd = float(ratings.get("discharge", {}).get("power_max_w", 10000.0))
    big = n > opts.big_site_evses
    ov = {"services.station.enabled": "true", "services.station.ocpp_version": f'"{opts.ocpp_version}"',
          # a big site: every plant and station shares one lab process on 2 cores - a coarser tick keeps it real-time
          "services.station.control_interval_s": str(0.1 if big else opts.control_interval_s),
          "services.station.meter_interval_s": "3600.0",
          "services.station.max_charge_w": str(pc), "services.station.max_discharge_w": str(max(pd, 1.0)),
          "services.station.ev": "{ target_soc = 1.0, max_charge_w = %r, max_discharge_w = %r }" % (pc, max(pd, 1.0)),
          "services.site.module": '"v2g_bench.lab.site"', "services.site.evses": str(n),
          "plant.stage.charge.p_max_w": str(pc), "plant.stage.discharge.p_max_w": str(max(pd, 1.0)),
          "plant.stage.ramp_w_per_s": "20000.0",
          # the scenario's EV is an ideal store between 0 and its capacity: its BMS must not taper the plan
          "plant.battery.soc_min": "0.0", "plant.battery.soc_max": "1.0",
          "plant.battery.charge_voltage_limit_v": "480.0", "plant.battery.discharge_voltage_limit_v": "250.0"}
    if sc.frequency_response or sc.grid_loss:
        ov["plant.max_step_s"] = "0.1"
    elif big:
        ov["plant.max_step_s"] = "5.0"
    return ov


class SiteSession:
    """The virtual lab's site as the runner drives it: control client + one station per EVSE on the CSMS."""

    def __init__(self, lab, csms, n: int, version: str, timeout_s: float):
        from v2g_bench.lab.control import LabControl
        self.lab, self.csms, self.n, self.version = lab, csms, n, version
        self.ctl = LabControl("127.0.0.1", lab.ports["control"], timeout=timeout_s)
        self.tx: list[str] = []
        self.stations: list[str] = []

    def op(self, name: str, evse: int) -> str:
        return name if evse == 1 else f"evse{evse}.{name}"

    def connect_all(self, iso_evse1: bool = False) -> None:
        """Every station connects; each starts a transaction from the control port, except EVSE 1 when its EV is the
        ISO 15118 emulator (its session starts the transaction: see start_iso_transaction)."""
        for i in range(1, self.n + 1):
            r = self.ctl.call(self.op("station.connect", i), url=self.csms.url, security_profile=1, password=PASSWORD,
                              ocpp_version=self.version)
            if not r.get("connected"):
                raise BenchError(f"EVSE {i}'s station did not connect to the CSMS emulator: {r}", where="scenario site")
        # EVSE 1 is the lab's own station (LAB-CS-001), EVSE i the site's LAB-CS-00i (v2g_bench.lab.site)
        self.stations = [f"LAB-CS-{i:03d}" for i in range(1, self.n + 1)]
        first = 2 if iso_evse1 else 1
        for i in range(first, self.n + 1):
            self.ctl.call(self.op("station.start_transaction", i))
        self.tx = [""] * self.n
        for i, sid in enumerate(self.stations, start=1):
            if i < first:
                continue
            self.csms.expect("TransactionEvent", where=lambda m: m["eventType"] == "Started", timeout=15, station=sid)
            self.tx[i - 1] = self.ctl.call(self.op("station.status", i))["transaction_id"]

    def hold_evse1_at_zero(self) -> None:
        """A 0 W TxDefaultProfile on EVSE 1 before its EV arrives: nothing flows until the plan's TxProfile."""
        from v2g_bench.csms import payloads as P
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        prof = {"id": 99, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": [{"id": 99, "chargingRateUnit": "W", "startSchedule": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                      "chargingSchedulePeriod": [P.schedule_period(0, 0.0, self.version)]}]}
        r = self.csms.call("SetChargingProfile", {"evseId": 1, "chargingProfile": prof}, station=self.stations[0])
        if r.get("status") != "Accepted":
            from v2g_bench.errors import Nonconformance
            raise Nonconformance(f"{self.stations[0]} refused a 0 W TxDefaultProfile: {r}", req="K01.FR.07")

    def plant_time(self) -> tuple[float, float, dict]:
        """(plant t, the monotonic instant it corresponds to, the measurement)."""
        a = time.monotonic()
        m = self.ctl.call("site.measure")
        b = time.monotonic()
        return float(m["t"]), 0.5 * (a + b), m

    def close(self) -> None:
        try:
            for i in range(1, self.n + 1):
                try:
                    self.ctl.call(self.op("station.stop_transaction", i))
                except Exception:
                    pass
            self.ctl.call("set_time_scale", time_scale=1.0)
            self.ctl.call("site.reset")
        except Exception:
            pass
        finally:
            self.ctl.close()


# ------------------------------------------------------------------------------------------ run

class AnalyzerIntegrator:
    """EVSE 1's DC energy on the bench's power analyzer (the lab's WT5000 front-end over SCPI/TCP, its own
    integrator): an independent path that the site memory's counters must agree with."""

    def __init__(self, port: int):
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.send(":INTEGrate:RESet;:INTEGrate:STARt")

    def send(self, cmd: str) -> None:
        self.sock.sendall(cmd.encode() + b"\n")

    def query(self, cmd: str) -> str:
        self.send(cmd)
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise BenchError("the power analyzer closed the connection", where="analyzer SCPI")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def energy_wh(self) -> tuple[float, float]:
        """(WP+ charge, WP- discharge as a positive number) of element 1, the DC link (default items 4, 5)."""
        v = [float(x) for x in self.query(":NUMeric:NORMal:VALue?").split(",")]
        return v[3], -v[4]

    def close(self) -> None:
        self.sock.close()


class LocalControl:
    """EVSE 1's local power control over Modbus TCP (the Wallbox Quasar map, see lab/frontends/modbus.py):
    remote control on, start, then a signed DC current setpoint in A per slot."""
    REMOTE, STARTSTOP, CURRENT = 0x51, 0x101, 0x102

    def __init__(self, port: int):
        from pymodbus.client import ModbusTcpClient
        self.client = ModbusTcpClient("127.0.0.1", port=port, timeout=3)
        if not self.client.connect():
            raise BenchError("cannot connect to the charger's Modbus TCP port", where=f"127.0.0.1:{port}")
        self._write(self.REMOTE, 1)
        self._write(self.CURRENT, 0)
        self._write(self.STARTSTOP, 1)

    def _write(self, addr: int, value: int) -> None:
        r = self.client.write_register(addr, value & 0xFFFF, device_id=1)
        if r.isError():
            from v2g_bench.errors import Nonconformance
            raise Nonconformance(f"the charger refused Modbus write {value} to {addr:#06x}: {r}", req="V2GB-LC-01")

    def set_current(self, amps: float) -> int:
        a = int(round(amps))
        self._write(self.CURRENT, a)
        return a

    def command(self, want_w: float, dc_v: float) -> float:
        """The slot's setpoint as the charger is asked for it: amps at the present DC voltage, rounded to its 1 A
        register; returns the power that was asked (what it is judged against)."""
        return self.set_current(want_w / max(dc_v, 1.0)) * dc_v

    def close(self) -> None:
        try:
            self._write(self.CURRENT, 0)
            self._write(self.STARTSTOP, 2)
            self._write(self.REMOTE, 0)
        except Exception:                    # closing on the way out of an error: the lab stops its outputs anyway
            pass
        finally:
            self.client.close()


class ChademoControl:
    """A CHAdeMO V2H unit as its home energy manager drives it: the CHAdeMO EV emulator (v2g_bench.chademo.ev, on
    the lab's CAN bus through socketcand) plugs in, asks for its maximum current and permits V2H discharge; each slot
    the energy manager sets the unit's power target (the lab's `chademo.target`: a real unit's energy-manager port is
    vendor-specific - ECHONET Lite, Modbus - the CAN side is the standard one). The unit gives min(EV, target)."""

    def __init__(self, port: int, ctl, max_charge_w: float, max_discharge_w: float, timeout_s: float = 15.0):
        from v2g_bench.chademo.ev import ChademoEV
        from v2g_bench.roles import RoleConfig
        self.ctl = ctl
        ctl.call("chademo.reset")
        ctl.call("chademo.target", target_w=0.0)
        cfg = RoleConfig("chademo", "chademo_ev", options={"interface": "socketcand", "channel": "can0",
                                                           "host": "127.0.0.1", "port": int(port)})
        self.ev = ChademoEV.open(cfg, None)
        # the EV asks more than any target (the unit decides), and permits discharge up to the DUT's rating
        self.ev.start(max_charge_w / 250.0 + 1.0, max_discharge_a=max_discharge_w / 250.0 + 1.0)
        t_end = time.monotonic() + timeout_s
        while ctl.call("chademo.status")["state"] != "energized":
            if time.monotonic() > t_end:
                st = ctl.call("chademo.status")
                from v2g_bench.errors import Nonconformance
                raise Nonconformance(f"the CHAdeMO unit did not close its contactor within {timeout_s:g} s: {st['state']}"
                                     f" (history {st['history']})", req="V2GB-CHADEMO-01")
            time.sleep(0.05)

    def command(self, want_w: float, dc_v: float) -> float:
        self.ctl.call("chademo.target", target_w=float(want_w))
        return float(want_w)

    def close(self) -> None:
        try:
            self.ctl.call("chademo.target", target_w=0.0)
            self.ev.request_stop()
            time.sleep(0.3)
        except Exception:                    # on the way out of an error: the lab stops its outputs anyway
            pass
        finally:
            self.ev.close()


def station_ids(session: SiteSession) -> list[str]:
    return session.csms.stations


def run_scenario(sc: Scenario, *, ratings: dict, opts: RunOptions | None = None, workdir: str | Path,
                 pixit: dict | None = None, log=print, bench=None) -> RunRecord:
    """Run one scenario on a fresh virtual lab (compressed) - or, with `bench` (a case's context), on the bench's
    roles at time scale 1 (v2g_bench.scenarios.bench_site: the real-bench path); raises ScenarioNotApplicable /
    BenchError; returns the record for v2g_bench.scenarios.judges."""
    from v2g_bench.csms.emulator import CSMSEmulator
    from v2g_bench.harness.labproc import running_lab

    opts = opts or RunOptions()
    pixit = pixit or {}
    t_wall0 = time.perf_counter()
    sc, slice_note = site_slice(sc, opts.max_evses)
    evs = clip_to_dut(sc, ratings, None)
    site = sc.site
    t_s = time.perf_counter()
    plan = plan_scenario(sc, evs)
    scheduler_s = time.perf_counter() - t_s
    factor = opts.factor_for(sc)
    slot_s = int(round(sc.site.dt_s / factor))
    a, b = play_window(sc, plan, evs)
    if b <= a:
        raise ScenarioNotApplicable("no interval to play (no EV is plugged in inside the horizon)")
    n = len(evs)
    if opts.command in ("modbus", "chademo") and n != 1:
        raise ScenarioNotApplicable(f"local control ({opts.command}) commands one charger; the scenario has {n} EVs")
    iso = opts.ev_link == "iso15118"
    if opts.ev_link not in ("battery", "iso15118"):
        raise BenchError(f"RunOptions.ev_link = {opts.ev_link!r}", where="scenario runner", fix="battery or iso15118")
    if iso and opts.command != "ocpp":
        raise ScenarioNotApplicable("the ISO 15118 EV needs the OCPP station's profiles (not Modbus local control)")
    if bench is not None:
        # a real bench: one DUT, the EV emulator plays its EV, the wall clock is the plant clock
        if n != 1:
            raise ScenarioNotApplicable(f"a bench has one charger; the scenario has {n} EVs (the virtual lab's site "
                                        "plays multi-EVSE scenarios)")
        if sc.frequency_response or sc.grid_loss:
            raise ScenarioNotApplicable("grid events need a grid simulator role on the bench (none is driven yet)")
        if opts.command != "ocpp":
            raise ScenarioNotApplicable(f"on a bench's roles the runner commands over OCPP with the ISO 15118 EV; "
                                        f"{opts.command} local control is played on the virtual lab's site only")
        if not iso or factor != 1.0:
            raise BenchError("on a bench's roles: ev_link='iso15118', time_scale=1",
                             where="scenario runner", fix="RunOptions(time_scale=1, ev_link='iso15118')")
    w0 = a * site.dt_s                      # plan seconds at the first played slot
    notes = [n_ for n_ in (slice_note,) if n_] + [
             f"plan slots of {site.dt_s:g} s played in {slot_s} s: time compressed x{factor:g}",
             f"window {sc.clock(w0)} .. {sc.clock(b * site.dt_s)} ({b - a} slots), {n} EVSE(s), " + COMMAND_NAMES.get(
                 opts.command, "OCPP " + opts.ocpp_version),
             "EVSE 1's EV: the EV emulator over ISO 15118-20 DC_BPT (dynamic, both directions offered) against the "
             "lab's SECC, the battery emulator as its pack; the other EVs: battery emulators" if iso else
             "every EV played by the battery emulator (transactions started by the stations)"]
    workdir = Path(workdir)
    if bench is not None:
        csms = bench.csms                   # the bench's CSMS role: the DUT is connected to it
    else:
        csms = CSMSEmulator({"security_profile": 1, "password": PASSWORD,
                             "record_path": str(workdir / "ocpp-frames.jsonl"), "retain_frames": 2000},
                            pki_dir=str(workdir / "pki")).start()
    imp = site.import_price.copy()
    exp = site.export_price.copy()
    plans = [(0.0, plan)]
    events: dict = {}
    stack = contextlib.ExitStack()
    try:
        overrides = lab_overrides(n, opts, sc, evs, ratings)
        net = None
        if iso and bench is None:
            from v2g_bench.ev.labnet import lab_network
            net = stack.enter_context(lab_network({"secc": {
                "codec": "own", "max_charge_w": evs[0].max_charge_kw * 1000.0,
                "max_discharge_w": max(evs[0].max_discharge_kw * 1000.0, 1.0)}}))
            if net.unavailable:
                raise ScenarioNotApplicable(f"no ISO 15118 wire for the EV emulator on this machine: {net.unavailable}")
            overrides.update(net.overrides)
        if bench is not None:
            from types import SimpleNamespace

            from v2g_bench.scenarios.bench_site import BenchSite
            lab_cm = contextlib.nullcontext(SimpleNamespace(ports={}))
        else:
            lab_cm = running_lab(workdir=workdir / "lab", overrides=overrides, timeout_s=60)
        with lab_cm as lab:
            ss = (BenchSite(bench, csms) if bench is not None else
                  SiteSession(lab, csms, n, opts.ocpp_version, opts.evse_timeout_s))
            local = None
            wt = None
            iso_ev = None
            try:
                if opts.command == "modbus":
                    local = LocalControl(lab.ports["modbus"])
                elif opts.command == "chademo":
                    if "can" not in lab.ports:
                        raise BenchError("the lab runs no CAN front-end for the CHAdeMO unit", where="scenario runner")
                    local = ChademoControl(lab.ports["can"], ss.ctl, evs[0].max_charge_kw * 1000.0,
                                           evs[0].max_discharge_kw * 1000.0)
                    log("CHAdeMO: the EV emulator is on the CAN bus, the unit's contactor is closed")
                else:
                    ss.connect_all(iso_evse1=iso)
                    log(f"{n} station(s) connected, transactions started")
                # the battery emulator plays each EV
                for i, ev in enumerate(evs, start=1):
                    cap = sc.battery_kwh.get(ev.name, ev.capacity_kwh)
                    soc0 = plan.ev(ev.name).soc_kwh[a]          # the plan's SOC at the first played slot
                    # gross capacity 15 % above the usable one the plan uses (as in a real pack): the lab's cells take
                    # the DC nearly loss-free while the plan books eta_charge, so they must not be full before the plan
                    gross = cap * GROSS_OVER_USABLE
                    # its emulator powers up off, as a real one: switched on once the battery is set
                    ss.ctl.call("site.battery", evse=i, capacity_wh=gross * 1000.0, soc=soc0 / gross, output_on=True)
                if iso:
                    # EVSE 1: the EV emulator plugs in (SLAC-less veth wire) and runs its session; the charger's
                    # coupling starts the OCPP transaction on its authorization
                    from v2g_bench.scenarios.iso_ev import IsoEV
                    ss.hold_evse1_at_zero()
                    ev1 = evs[0]
                    cap1 = sc.battery_kwh.get(ev1.name, ev1.capacity_kwh)
                    iso_ev = IsoEV(net, gross_kwh=cap1 * GROSS_OVER_USABLE, soc0_kwh=plan.ev(ev1.name).soc_kwh[a],
                                   floor_kwh=max(ev1.floor_kwh, ev1.reserve_kwh),
                                   max_charge_w=ev1.max_charge_kw * 1000.0,
                                   max_discharge_w=ev1.max_discharge_kw * 1000.0,
                                   departure_s=(ev1.departure_s - w0) / factor + opts.lead_s, workdir=workdir,
                                   emulator=bench.ev if bench is not None else None)
                    m1 = ss.ctl.call("site.measure")["evse"][0]
                    iso_ev.update(m1["dc_import_wh"], m1["dc_export_wh"])
                    iso_ev.start((b - a) * slot_s + opts.lead_s + 0.15 * n)
                    t_plug = time.monotonic()
                    started = iso_ev.wait_started(csms, ss.stations[0])
                    ss.tx[0] = started["transactionInfo"]["transactionId"]
                    events["iso15118"] = {"evse": 1, "ev": ev1.name, "setup_s": round(time.monotonic() - t_plug, 2)}
                    log(f"EVSE 1: the EV emulator's ISO 15118-20 session started transaction {ss.tx[0]}")
                # profiles: start on a whole second with a zero lead, so nothing flows before the plan
                lead = int(math.ceil(opts.lead_s + 0.15 * n))
                now_utc = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
                start_mono = time.monotonic() - (dt.datetime.now(dt.timezone.utc) - now_utc).total_seconds()
                t0_mono = start_mono + lead
                commanded = []
                soc0 = {ev.name: plan.ev(ev.name).soc_kwh[a] for ev in evs}
                for i, ev in enumerate(evs):
                    p_kw = plan.ev(ev.name).power_kw[a:b]
                    if local is not None:               # written slot by slot in the loop below
                        commanded.append(Commanded([w0 + k * site.dt_s for k in range(b - a)],
                                                   [float(x) * 1000.0 for x in p_kw], b * site.dt_s))
                        continue
                    periods = schedule_periods(np.append(p_kw, 0.0), slot_s, lead)   # 0 W after the window
                    prof = build_profile(csms, ss.stations[i], opts.ocpp_version, 100 + i, ss.tx[i], periods, now_utc,
                                         lead + (b - a + 1) * slot_s)
                    r = csms.call("SetChargingProfile", {"evseId": 1, "chargingProfile": prof}, station=ss.stations[i])
                    if r.get("status") != "Accepted":
                        from v2g_bench.errors import Nonconformance
                        raise Nonconformance(f"{ss.stations[i]} refused the plan's TxProfile: {r}", req="K01.FR.07")
                    commanded.append(Commanded([w0 + k * site.dt_s for k in range(b - a)],
                                               [float(x) * 1000.0 for x in p_kw], b * site.dt_s))
                for name, params in opts.lab_faults:
                    ss.ctl.call("fault", name=name, **params)
                if opts.station_defects:
                    ss.ctl.call("station.defects", set=list(opts.station_defects))
                ss.ctl.call("set_time_scale", time_scale=factor)
                if time.monotonic() > t0_mono - 0.2:
                    raise BenchError(f"setting up {n} EVSE(s) took longer than the {lead} s lead",
                                     where="scenario runner", fix="raise RunOptions.lead_s")
                pt, pm, _ = ss.plant_time()
                t0_plant = pt + (t0_mono - pm) * factor          # plant time of the first played slot

                def plant_at(plan_s: float) -> float:
                    return t0_plant + (plan_s - w0)

                # building load / PV, on the plant clock from the first slot
                base_load = site.load_kw if site.load_kw is not None else np.zeros(site.n)
                base_pv = site.pv_kw if site.pv_kw is not None else np.zeros(site.n)
                pts = [[(k - a) * site.dt_s, float(base_load[k]) * 1000.0, float(base_pv[k]) * 1000.0]
                       for k in range(a, b)]
                ss.ctl.call("site.building", points=pts, start_t=t0_plant)
                fr = sc.frequency_response
                if fr:
                    ev_i = next((i for i, ev in enumerate(evs, 1) if ev.name == fr.get("ev")), 1)
                    ss.ctl.call("site.frequency_support", evse=ev_i, nominal_hz=float(fr.get("nominal_hz", 50.0)),
                                droop_w_per_hz=float(fr["droop_kw_per_hz"]) * 1000.0,
                                deadband_hz=float(fr.get("deadband_hz", 0.0)),
                                reserve_w=float(fr.get("reserved_kw", 0.0)) * 1000.0)
                    step_at = float(fr.get("step_at_s", 0.0))
                    f0 = float(fr.get("nominal_hz", 50.0))
                    # held a little past the required hold, so a complete hold is visible in the samples
                    hold_end = step_at + float(fr.get("hold_s", 0.0)) + 60.0
                    ss.ctl.call("site.grid", start_t=t0_plant,
                                points=[[step_at - w0, f0 + float(fr["step_hz"]), None], [hold_end - w0, f0, None]])
                    events["frequency_step"] = {"at_s": step_at, "until_s": hold_end, "evse": ev_i}
                if sc.grid_loss:
                    gl = sc.grid_loss
                    ev_i = next((i for i, ev in enumerate(evs, 1) if ev.name == gl["ev"]), 1)
                    ss.ctl.call("site.backup", evse=ev_i,
                                transfer_s=float(pixit.get("backup_transfer_time_s", 0.0)))
                    v0 = 230.0
                    ss.ctl.call("site.grid", start_t=t0_plant, points=[[gl["at_s"] - w0, None, 0.0],
                                                                       [gl["at_s"] + gl["duration_s"] - w0, None, v0]])
                    events["grid_loss"] = {"at_s": gl["at_s"], "until_s": gl["at_s"] + gl["duration_s"], "evse": ev_i,
                                           "transfer_s": float(pixit.get("backup_transfer_time_s", 0.0))}
                # tariff updates: re-plan at publication, new profiles from the next slot that can still be reached
                updates = sorted(u for u in sc.tariff_updates if w0 < u[0] < b * site.dt_s)
                trace = Trace()
                end_plant = plant_at(b * site.dt_s)
                # the analyzer's memory on plant time: no sample is lost to a stall of the bench or the lab
                period = min(site.dt_s / (120 if n <= 10 else 30), opts.finest_s(sc) / 10)
                ss.ctl.call("site.record", period_s=period, start_t=t0_plant - 2 * period)
                ss.ctl.call("site.lag", reset=True)
                if "analyzer_scpi" in lab.ports or bench is not None:
                    if bench is not None:         # the memory IS the analyzer: the battery emulator's V x I is the other
                        from v2g_bench.scenarios.bench_site import BatteryPath
                        wt = BatteryPath(ss.ctl)
                    else:
                        wt = AnalyzerIntegrator(lab.ports["analyzer_scpi"])
                    r0 = ss.ctl.call("site.samples", since=0, limit=1)
                    events["analyzer"] = {"start_s": r0["t"][0] - t0_plant + w0 if r0["t"] else None,
                                          "start_wh": wt.energy_wh(),
                                          "source": "battery emulator V x I" if bench is not None else "WT5000 WP+/WP-"}
                deadline = time.monotonic() + (end_plant - t0_plant) / factor + lead + 30
                log(f"playing {b - a} slots x {slot_s} s (x{factor:g}) ...")
                k_next = 0
                slot_written = -1
                while True:
                    if local is not None:
                        j = int(math.floor((time.monotonic() - t0_mono) / slot_s))
                        if j > slot_written and j < b - a:
                            # the energy manager's write for slot j: amps at the present DC voltage (what the
                            # charger is asked for, rounded to its 1 A register, is what it is judged against)
                            v = float(ss.ctl.call("site.measure")["evse"][0]["dc_v"])
                            commanded[0].power_w[j] = local.command(commanded[0].power_w[j], v)
                            slot_written = j
                    if time.monotonic() > deadline:
                        raise BenchError("the lab's plant clock did not reach the end of the window in time",
                                         where="scenario runner")
                    r = ss.ctl.call("site.samples", since=k_next, limit=max(50, 20000 // n))
                    k_next = r["next"]
                    trace.add_rows(r, t0_plant, w0)
                    if iso_ev is not None and trace.t:
                        iso_ev.update(trace.dc_in_wh[-1][0], trace.dc_out_wh[-1][0])
                        if not iso_ev.alive() and "ended_at_s" not in events["iso15118"]:
                            events["iso15118"]["ended_at_s"] = trace.t[-1]     # plan seconds: before the window end
                    pt = trace.t[-1] + t0_plant - w0 if trace.t else -math.inf
                    if pt >= end_plant:
                        lag = ss.ctl.call("site.lag")
                        events["lab_stalls"] = {"max_lag_s": lag["max_lag_s"], "allowed_s": opts.latency_s,
                                                "stalls": [[t - t0_plant + w0, x] for t, x in lag["stalls"]]}
                        if wt is not None:
                            events["analyzer"].update(end_wh=wt.energy_wh(), end_s=pt - t0_plant + w0)
                        if iso_ev is not None:
                            res = iso_ev.finish()
                            events["iso15118"].update(
                                verdict=getattr(res, "verdict", None), summary=res.summary() if res else
                                f"no result ({iso_ev.error!r})", charge_loops=getattr(res, "charge_loops", 0),
                                step=getattr(res, "step", None), trace=str(workdir / "ev-v2gtp-trace.jsonl"),
                                loop_cycle_median_s=float(np.median(res.loop_cycle_s)) if res and res.loop_cycle_s
                                else None)
                            if bench is None:       # the SECC's side of how the session ended (diagnosis)
                                try:
                                    events["iso15118"]["secc_sessions_ended"] = ss.ctl.call(
                                        "secc_status").get("sessions_ended")
                                except Exception as e:  # noqa: BLE001 - a diagnosis, never a verdict
                                    events["iso15118"]["secc_sessions_ended"] = f"unavailable: {e}"
                        break
                    if updates and pt >= plant_at(updates[0][0]):
                        at_s, new_imp, new_exp = updates.pop(0)
                        t_r = time.perf_counter()
                        k, plan = replan(sc, evs, plans, soc0, trace, new_imp, new_exp, b)
                        scheduler_s += time.perf_counter() - t_r
                        imp[k:], exp[k:] = new_imp[k:], new_exp[k:]
                        plans.append((k * site.dt_s, plan))
                        start_k_mono = t0_mono + (k - a) * slot_s
                        if time.monotonic() > start_k_mono - 0.1:
                            raise BenchError("re-planning took longer than one compressed slot", where="scenario runner")
                        for i, ev in enumerate(evs):
                            p_new = (plan.ev(ev.name).power_kw[: b - k] if ev.name in {e.name for e in plan.evs}
                                     else np.zeros(b - k))
                            # a replacement covers from the original start (old periods until k): a profile that
                            # starts in the future would leave the charger without one - at the EV's maximum
                            p_all = np.concatenate([np.asarray(commanded[i].power_w[: k - a]) / 1000.0, p_new, [0.0]])
                            periods = schedule_periods(p_all, slot_s, lead)
                            prof = build_profile(csms, ss.stations[i], opts.ocpp_version, 100 + i, ss.tx[i], periods,
                                                 now_utc, lead + (b - a + 1) * slot_s)
                            r = csms.call("SetChargingProfile", {"evseId": 1, "chargingProfile": prof},
                                          station=ss.stations[i])
                            if r.get("status") != "Accepted":
                                from v2g_bench.errors import Nonconformance
                                raise Nonconformance(f"{ss.stations[i]} refused the re-planned TxProfile: {r}",
                                                     req="K01.FR.05")
                            c = commanded[i]
                            keep = [j for j, s in enumerate(c.starts_s) if s < k * site.dt_s]
                            c.starts_s = [c.starts_s[j] for j in keep] + [k * site.dt_s + j * site.dt_s
                                                                          for j in range(b - k)]
                            c.power_w = [c.power_w[j] for j in keep] + [float(x) * 1000.0 for x in p_new]
                        events.setdefault("tariff_updates", []).append({"published_s": at_s, "from_s": k * site.dt_s})
                        notes.append(f"tariff re-published at {sc.clock(at_s)}: re-planned from {sc.clock(k * site.dt_s)}")
                    time.sleep(opts.period_for(sc))
            finally:
                if wt is not None:
                    wt.close()
                if local is not None:
                    local.close()
                if iso_ev is not None:
                    iso_ev.close()
                ss.close()
    finally:
        if bench is None:
            csms.close()
        stack.close()
    wall = time.perf_counter() - t_wall0
    return RunRecord(scenario=sc, plan=plan, plans=plans, evs=evs, window=(w0, b * site.dt_s), time_scale=factor,
                     trace=trace, commanded=commanded, prices=(imp, exp), wall_s=wall, scheduler_s=scheduler_s,
                     ocpp_version=(opts.ocpp_version if opts.command == "ocpp" else
                                   {"modbus": "Modbus", "chademo": "CHAdeMO"}[opts.command]),
                     latency_plant_s=opts.latency_s * factor, notes=notes,
                     events=events)


def replan(sc: Scenario, evs: list[EVRequest], plans: list, soc0: dict, trace: Trace, new_imp, new_exp, b: int):
    """Re-plan the rest of the horizon with the new prices from the first slot at least one compressed slot
    ahead, starting from the SOC the EVs will have then (measured so far + the old plan until then)."""
    from dataclasses import replace
    site = sc.site
    dt_s = site.dt_s
    now_s = trace.t[-1]
    k = int(math.floor(now_s / dt_s)) + 2            # one full compressed slot of margin for sending the profiles
    from_s, plan = plans[-1]
    if k >= b:
        return b, plan
    arr = trace.arrays()
    new_evs = []
    off = int(round(from_s / dt_s))                  # the last plan's slot 0 in scenario slots
    for i, ev in enumerate(evs):
        if ev.departure_s <= k * dt_s:
            continue                                 # gone before the new prices apply: nothing to re-plan
        e0 = soc0[ev.name]
        soc_now = measured_soc(arr, i, ev, e0)[-1] if arr["t"].size else e0
        # ... plus what the old plan still does until slot k
        t_k = k * dt_s
        p_old = np.concatenate([np.zeros(off), plan.ev(ev.name).power_kw])
        j0 = int(math.floor(now_s / dt_s))
        add = 0.0
        for j in range(j0, k):
            frac = (min(t_k, (j + 1) * dt_s) - max(now_s, j * dt_s)) / 3600.0
            pw = p_old[j]
            add += (ev.eta_charge * pw if pw > 0 else pw / ev.eta_discharge) * max(frac, 0.0)
        soc_k = min(max(soc_now + add, 0.0), ev.capacity_kwh)
        new_evs.append(replace(ev, soc_kwh=soc_k, arrival_s=max(ev.arrival_s - t_k, 0.0),
                               departure_s=ev.departure_s - t_k))
    sub = Site(import_price=np.asarray(new_imp)[k:], export_price=np.asarray(new_exp)[k:], dt_s=dt_s,
               load_kw=None if site.load_kw is None else site.load_kw[k:],
               pv_kw=None if site.pv_kw is None else site.pv_kw[k:], import_limit_kw=site.import_limit_kw,
               export_limit_kw=site.export_limit_kw, demand_charge_per_kw=site.demand_charge_per_kw,
               name=site.name)
    return k, plan_scenario(sc, new_evs, sub)


def measured_soc(arr: dict, i: int, ev: EVRequest, soc0_kwh: float) -> np.ndarray:
    """SOC (kWh) of EV i from the MEASURED DC energy, with the scenario's EV efficiency model (the plan's)."""
    e_in = arr["dc_in_wh"][:, i] - arr["dc_in_wh"][0, i]
    e_out = arr["dc_out_wh"][:, i] - arr["dc_out_wh"][0, i]
    return soc0_kwh + (ev.eta_charge * e_in - e_out / ev.eta_discharge) / 1000.0


def require(cond: bool, reason: str) -> None:
    if not cond:
        raise Inconclusive(reason)
