"""CHAdeMO EV emulator on python-can (role `chademo`, driver `chademo_ev`).

It plays the vehicle's CAN side of a bidirectional (V2H) CHAdeMO session: sends 0x100/0x101/0x102 and
0x200 every 100 ms (v2g_bench/chademo/chademo.dbc) and watches the charger's 0x108/0x109/0x208/0x209.
Every frame it sends or receives goes to a python-can ASC log (`can.ASCWriter`) and a CSV of decoded
values in the test's evidence folder, with the bus timestamps (on the virtual lab: the lab's plant
clock as the socketcand server stamps them), so timing is judged from the wire, not from this process.

What it checks while it runs (the bench's sensor, not a verdict): frames with a wrong DLC or values
the DBC cannot decode (`violations`), a charger frame missing for longer than `frame_timeout_s`
(`timeouts`), and per-ID cycle statistics (`cycle_stats`). The verdicts are in the conformance cases.
"""
from __future__ import annotations

import csv
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from v2g_bench.errors import InstrumentError, SafeStateError
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver

DBC = Path(__file__).with_name("chademo.dbc")
EV_IDS = (0x100, 0x101, 0x102, 0x200)
CHARGER_IDS = (0x108, 0x109, 0x208, 0x209)


@dataclass
class EvParams:
    """What the EV announces (0x100/0x101/0x200)."""
    max_battery_voltage_v: float = 410.0
    min_battery_voltage_v: float = 300.0
    target_voltage_v: float = 400.0
    capacity_kwh: float = 40.0
    max_discharge_current_a: float = 0.0
    min_discharge_voltage_v: float = 300.0
    min_discharge_soc_pct: float = 20.0
    max_charge_soc_pct: float = 90.0
    soc_pct: float = 50.0


@dataclass
class Received:
    t: float
    signals: dict[str, Any]


@dataclass
class ChademoLog:
    violations: list[tuple[float, int, str]] = field(default_factory=list)
    timeouts: list[tuple[float, int, float]] = field(default_factory=list)


class ChademoEV(RoleDriver):
    roles: ClassVar[tuple[str, ...]] = ("chademo",)
    transport: ClassVar[str] = "can"
    description = "CHAdeMO EV emulator (python-can, IEEE 2030.1.1 frames, V2H)"

    def __init__(self, bus, *, label: str, period_s: float = 0.1, frame_timeout_s: float = 1.0,
                 evidence_dir: Path | None = None, params: EvParams | None = None):
        import cantools
        self.bus, self.label = bus, label
        self.db = cantools.database.load_file(str(DBC))
        self.period_s, self.frame_timeout_s = period_s, frame_timeout_s
        self.params = params or EvParams()
        self.enabled = False
        self.stop_request = False
        self.current_request_a = 0.0
        self.contactor_open = True
        self.faults: dict[str, int] = {}
        self.rx: dict[int, Received] = {}
        self.rx_times: dict[int, list[float]] = {i: [] for i in CHARGER_IDS}
        self.log = ChademoLog()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self.evidence_dir = evidence_dir
        self.asc_path = self.csv_path = None
        self._asc = self._csv = self._csv_file = None
        if evidence_dir is not None:
            self._open_logs(evidence_dir)
        self._tx_thread = threading.Thread(target=self._tx_loop, name="chademo-ev-tx", daemon=True)
        self._rx_thread = threading.Thread(target=self._rx_loop, name="chademo-ev-rx", daemon=True)
        self._tx_thread.start()
        self._rx_thread.start()

    # -- opening ----------------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        return [f"{cfg.where(k)}: missing (python-can {k}, e.g. interface = \"socketcand\")"
                for k in ("interface", "channel") if k not in cfg.options]

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext | None = None) -> "ChademoEV":
        from v2g_bench.instruments.transport import open_can_bus
        opts = dict(cfg.options)
        keep = {k: opts.pop(k) for k in ("period_s", "frame_timeout_s", "params") if k in opts}
        label = f"{cfg.role} [{cfg.driver} @ {opts.get('interface')}:{opts.get('channel')}]"
        bus = open_can_bus(opts, name=label, where=cfg.where())
        ev_dir = None
        if ctx is not None and ctx.evidence is not None:
            ev_dir = Path(ctx.evidence.dir)
        return cls(bus, label=label, period_s=float(keep.get("period_s", 0.1)),
                   frame_timeout_s=float(keep.get("frame_timeout_s", 1.0)), evidence_dir=ev_dir,
                   params=EvParams(**keep.get("params", {})))

    def _open_logs(self, d: Path) -> None:
        import can
        d.mkdir(parents=True, exist_ok=True)
        self.asc_path, self.csv_path = d / "chademo.asc", d / "chademo.csv"
        self._asc = can.ASCWriter(str(self.asc_path))
        self._csv_file = open(self.csv_path, "w", newline="")
        self._csv = csv.writer(self._csv_file)
        self._csv.writerow(["t_local", "t_bus", "dir", "id", "dlc", "data", "decoded"])

    def _record(self, msg, direction: str, decoded: dict | None) -> None:
        """ASC on this host's clock (tx and rx comparable); the CSV also keeps the bus timestamp."""
        import can
        local = time.time()
        if self._asc is not None:
            self._asc.on_message_received(can.Message(
                timestamp=local, arbitration_id=msg.arbitration_id, data=bytes(msg.data), dlc=msg.dlc,
                is_extended_id=msg.is_extended_id, is_rx=direction == "rx", channel=0))
        if self._csv is not None:
            self._csv.writerow([f"{local:.6f}", f"{msg.timestamp:.6f}", direction, f"{msg.arbitration_id:03X}",
                                msg.dlc, bytes(msg.data).hex(), "" if decoded is None else decoded])

    # -- what the EV sends -------------------------------------------------------------------------
    def frames(self) -> list[tuple[int, dict]]:
        p = self.params
        return [
            (0x100, {"MinimumChargeCurrent": 0, "MinimumBatteryVoltage": p.min_battery_voltage_v,
                     "MaximumBatteryVoltage": p.max_battery_voltage_v, "ChargedRateReference": 100}),
            (0x101, {"MaxChargingTime10s": 2550, "MaxChargingTimeMin": 90, "EstimatedChargingTime": 60,
                     "RatedBatteryCapacity": p.capacity_kwh}),
            (0x102, {"ProtocolNumberEV": 2, "TargetBatteryVoltage": p.target_voltage_v,
                     "ChargingCurrentRequest": round(self.current_request_a),
                     "FaultBatteryOvervoltage": self.faults.get("overvoltage", 0),
                     "FaultBatteryUndervoltage": 0, "FaultBatteryCurrentDeviation": self.faults.get("current", 0),
                     "FaultHighBatteryTemperature": 0, "FaultBatteryVoltageDeviation": 0,
                     "VehicleChargingEnabled": int(self.enabled), "VehicleShiftPosition": 0,
                     "ChargingSystemFault": self.faults.get("system", 0),
                     "VehicleContactorOpen": int(self.contactor_open), "NormalStopRequest": int(self.stop_request),
                     "DischargeCompatible": 1, "StateOfCharge": round(p.soc_pct)}),
            (0x200, {"MaximumDischargeCurrent": round(p.max_discharge_current_a),
                     "MinimumDischargeVoltage": p.min_discharge_voltage_v,
                     "MinimumDischargeSOC": round(p.min_discharge_soc_pct),
                     "MaximumChargeSOC": round(p.max_charge_soc_pct)}),
        ]

    def _tx_loop(self) -> None:
        import can
        nxt = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                batch = self.frames()
            for fid, sig in batch:
                data = self.db.get_message_by_frame_id(fid).encode(sig)
                msg = can.Message(arbitration_id=fid, data=data, is_extended_id=False, timestamp=time.time())
                try:
                    self.bus.send(msg)
                    self._record(msg, "tx", sig)
                except Exception:  # noqa: BLE001 - a lost bus shows as the charger's frames stopping
                    pass
            nxt += self.period_s
            self._stop.wait(max(0.0, nxt - time.monotonic()))

    def _rx_loop(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.bus.recv(0.1)
            except Exception:  # noqa: BLE001
                if self._stop.wait(0.1):
                    return
                continue
            now = time.monotonic()
            with self._lock:
                self._check_timeouts(now)
            if msg is None or msg.arbitration_id not in CHARGER_IDS or msg.is_extended_id:
                continue
            fid = msg.arbitration_id
            decoded = None
            if msg.dlc != 8:
                self.log.violations.append((msg.timestamp, fid, f"DLC {msg.dlc} (8 expected)"))
            else:
                try:
                    decoded = self.db.get_message_by_frame_id(fid).decode(bytes(msg.data), decode_choices=False)
                except Exception as e:  # noqa: BLE001
                    self.log.violations.append((msg.timestamp, fid, f"undecodable: {e}"))
            self._record(msg, "rx", decoded)
            with self._lock:
                self.rx_times[fid].append(msg.timestamp)
                del self.rx_times[fid][:-2000]
                self._seen_mono = getattr(self, "_seen_mono", {})
                self._seen_mono[fid] = now
                if decoded is not None:
                    self.rx[fid] = Received(msg.timestamp, decoded)

    def _check_timeouts(self, now: float) -> None:
        for fid, seen in getattr(self, "_seen_mono", {}).items():
            gap = now - seen
            last = self.log.timeouts[-1] if self.log.timeouts else None
            if gap > self.frame_timeout_s and not (last and last[1] == fid and last[0] == seen):
                self.log.timeouts.append((seen, fid, gap))

    # -- role API ------------------------------------------------------------------------------------
    def identify(self) -> str:
        return f"v2g-bench CHAdeMO EV emulator (DBC {DBC.name}) on {self.bus.channel_info}"

    def start(self, current_a: float, *, max_discharge_a: float = 0.0) -> None:
        """Enable charging (H'102.5.0) with a current request; V2H discharge permitted up to max_discharge_a."""
        with self._lock:
            self.params.max_discharge_current_a = float(max_discharge_a)
            self.current_request_a = float(current_a)
            self.stop_request = False
            self.contactor_open = False
            self.enabled = True

    def set_current(self, current_a: float) -> None:
        with self._lock:
            self.current_request_a = float(current_a)

    def set_fault(self, name: str, on: bool = True) -> None:
        if name not in ("overvoltage", "current", "system"):
            raise ValueError(f"fault {name!r}: overvoltage, current or system")
        with self._lock:
            self.faults[name] = int(on)

    def request_stop(self) -> None:
        """The EV ends the session: charging disabled, current request 0."""
        with self._lock:
            self.enabled = False
            self.current_request_a = 0.0

    def charger(self, fid: int) -> Received | None:
        with self._lock:
            return self.rx.get(fid)

    def wait_charger(self, pred, *, timeout_s: float, what: str, poll_s: float = 0.05) -> dict:
        """Until pred(0x109 signals, 0x208 signals) is true; InstrumentError naming `what` otherwise."""
        deadline = time.monotonic() + timeout_s
        while True:
            r109, r208 = self.charger(0x109), self.charger(0x208)
            if r109 is not None and pred(r109.signals, r208.signals if r208 else {}):
                return {**r109.signals, **({} if r208 is None else r208.signals)}
            if time.monotonic() > deadline:
                raise InstrumentError(f"{what} not seen within {timeout_s:g} s (last 0x109: "
                                      f"{None if r109 is None else r109.signals})", instrument=self.label)
            time.sleep(poll_s)

    def cycle_stats(self, fid: int) -> dict[str, float] | None:
        """Period statistics of a charger frame from the bus timestamps (ms)."""
        with self._lock:
            ts = list(self.rx_times.get(fid, []))
        if len(ts) < 3:
            return None
        d = [(b - a) * 1000 for a, b in zip(ts, ts[1:])]
        return {"n": len(d), "mean_ms": statistics.fmean(d), "stdev_ms": statistics.pstdev(d),
                "min_ms": min(d), "max_ms": max(d)}

    def safe_state(self) -> None:
        """Stop request, then verified: the charger reports no current and stop control (H'109.5.5)."""
        self.request_stop()
        r = self.charger(0x109)
        if r is None or self._stop.is_set():
            return                            # never saw a charger: nothing was energized by us
        try:
            self.wait_charger(lambda s, d: s["ChargerStopControl"] == 1 and s["PresentChargingCurrent"] <= 5
                              and d.get("PresentDischargeCurrent", 0) <= 5, timeout_s=5.0,
                              what="charger stopped (H'109.5.5 = 1, current <= 5 A)")
        except InstrumentError as e:
            raise SafeStateError(str(e), where=self.label,
                                 fix="the charger kept energy flowing after the EV's stop: use its E-stop") from None
        finally:
            with self._lock:
                self.contactor_open = True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._tx_thread.join(2.0)
        self._rx_thread.join(2.0)
        try:
            self.bus.shutdown()
        finally:
            if self._asc is not None:
                self._asc.stop()
            if self._csv_file is not None:
                self._csv_file.close()
