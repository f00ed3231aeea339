"""The simulated bidirectional CHAdeMO charger (V2H class, e.g. a Fermata-type unit with a Nissan
Leaf) on the lab's CAN bus (the socketcand front-end), driving the plant's power stage.

Frames (v2g_bench/chademo/chademo.dbc, IEEE Std 2030.1.1-2021 numbering): it reads the EV's
0x100/0x101/0x102 (+ 0x200 for V2H) and sends 0x108/0x109 (+ 0x208/0x209) every `period_s`.

Sequence, reduced to what the CAN shows (the analogue sequence lines d1/d2/j/k are not modelled):
  idle -> the EV enables charging (H'102.5.0) -> connector locked (H'109.5.2), insulation test
  (`insulation_s`) -> contactor closed, charger status 1, stop control 0 -> energy: charge at the EV's
  current request, or discharge when the charger's own target (`target_w` < 0, the home's demand in
  V2H) asks and the EV permits it (H'102.5.7, H'200.0) -> the EV clears H'102.5.0 (or sets a fault, or
  its frames stop for `ev_timeout_s`) -> power 0, and once |I| <= 5 A charger status 0, stop control
  1 (H'109.5.0/5.5) -> contactor open, unlocked.

Defects for negative cases (control op `chademo.defect`): `ignore_stop` (keeps power after the EV's
stop), `silent` (no frames), `bad_dlc` (0x109 with 5 data bytes), `jitter_ms` (extra random delay).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path

log = logging.getLogger("v2g_bench.lab.charger.chademo")

DBC = Path(__file__).resolve().parents[2] / "chademo" / "chademo.dbc"
DEFECTS = {"ignore_stop": False, "silent": False, "bad_dlc": False, "jitter_ms": 0.0}
STOP_CURRENT_A = 5.0           # H'109.5.0 goes to 0 once the current is <= 5 A


class ChademoCharger:
    def __init__(self, plant, hub, *, period_s: float = 0.1, max_voltage_v: float = 500.0,
                 max_current_a: float = 30.0, max_discharge_a: float = 30.0, insulation_s: float = 0.5,
                 ev_timeout_s: float = 1.0):
        import cantools
        self.db = cantools.database.load_file(str(DBC))
        self.plant, self.hub = plant, hub
        self.period_s = period_s
        self.max_voltage_v, self.max_current_a, self.max_discharge_a = max_voltage_v, max_current_a, max_discharge_a
        self.insulation_s, self.ev_timeout_s = insulation_s, ev_timeout_s
        self.defects = dict(DEFECTS)
        self.target_w: float | None = None          # None: follow the EV's request; < 0: discharge
        self.ev: dict[int, dict] = {}
        self.ev_t: dict[int, float] = {}
        # arrival on the WALL clock: the bus and the EV's 100 ms cycle are not compressed by the lab's time scale, so
        # the communication timeout is measured on it (on the plant clock a x300 run lost the EV every frame)
        self.ev_wall: dict[int, float] = {}
        self.state = "idle"
        self._since = 0.0
        self.rejected = 0
        self.frames_out = 0
        self.history: list[tuple[float, str]] = []
        self._task: asyncio.Task | None = None

    # -- EV frames in ---------------------------------------------------------------------------
    def on_frame(self, fid: int, data: bytes, ext: bool, t: float) -> None:
        if ext or fid not in (0x100, 0x101, 0x102, 0x200):
            return
        try:
            self.ev[fid] = self.db.get_message_by_frame_id(fid).decode(data, decode_choices=False)
            self.ev_t[fid] = t
            self.ev_wall[fid] = time.monotonic()
        except Exception:            # wrong DLC / garbage: counted, not acted on
            self.rejected += 1

    # -- the loop ---------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        nxt = loop.time()
        while True:
            jitter = float(self.defects["jitter_ms"]) / 1000.0
            nxt = max(nxt + self.period_s, loop.time())       # a fixed cycle, not period + work (no drift)
            await asyncio.sleep(nxt - loop.time() + (random.uniform(0, jitter) if jitter else 0.0))
            try:
                self.step()
                if not self.defects["silent"] and self._ev_present():
                    self.send()
            except Exception:
                log.exception("CHAdeMO charger step failed")

    def _ev_present(self) -> bool:
        t = self.ev_wall.get(0x102)
        return t is not None and time.monotonic() - t < 5.0

    def _go(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self._since = self.plant.clock.now()
            self.history.append((round(self._since, 3), state))
            del self.history[:-50]
            log.info("CHAdeMO charger: %s", state)

    def step(self) -> None:
        now = self.plant.clock.now()
        ev = self.ev.get(0x102)
        ev_lost = 0x102 in self.ev_wall and time.monotonic() - self.ev_wall[0x102] > self.ev_timeout_s
        faults = ev is not None and any(ev[k] for k in ("FaultBatteryOvervoltage", "FaultBatteryUndervoltage",
                                                         "FaultBatteryCurrentDeviation", "FaultHighBatteryTemperature",
                                                         "FaultBatteryVoltageDeviation", "ChargingSystemFault"))
        enabled = ev is not None and ev["VehicleChargingEnabled"] == 1 and not ev["NormalStopRequest"]
        if self.state == "idle":
            if enabled and not ev_lost and not faults:
                self._go("insulation")
        elif self.state == "insulation":
            if not enabled or ev_lost or faults:
                self._go("stopping")
            elif now - self._since >= self.insulation_s:
                self.plant.active_outlet = "chademo"     # the CCS pilot's interlock does not apply to this outlet
                self.plant.set_contactor(True)
                self._go("energized")
        elif self.state == "energized":
            if (not enabled or ev_lost or faults) and not self.defects["ignore_stop"]:
                self.plant.set_power_setpoint(0.0)
                self._go("stopping")
            else:
                self.plant.set_power_setpoint(self._power_w())
        elif self.state == "stopping":
            self.plant.set_power_setpoint(0.0)
            if abs(self.plant.state().dc_current_a) <= STOP_CURRENT_A:
                self.plant.set_contactor(False)
                self.plant.active_outlet = None
                self._go("idle" if not enabled or ev_lost else "stopped")
        elif self.state == "stopped" and (not enabled or ev_lost):
            self._go("idle")

    def _power_w(self) -> float:
        ev = self.ev.get(0x102, {})
        v = max(self.plant.state().dc_voltage_v, 1.0)
        charge_a = min(float(ev.get("ChargingCurrentRequest", 0)), self.max_current_a)
        if self.target_w is not None and self.target_w < 0:
            v2h = self.ev.get(0x200)
            if not ev.get("DischargeCompatible") or v2h is None:
                return 0.0
            dis_a = min(float(v2h["MaximumDischargeCurrent"]), self.max_discharge_a, -self.target_w / v)
            return -max(dis_a, 0.0) * v
        p = charge_a * v
        return p if self.target_w is None else min(p, self.target_w)

    def frames(self) -> list[tuple[int, bytes]]:
        s = self.plant.state()
        ev100 = self.ev.get(0x100, {})
        i = s.dc_current_a
        on = self.state in ("energized", "stopping") and (self.state == "energized" or abs(i) > STOP_CURRENT_A)
        enc = lambda fid, sig: self.db.get_message_by_frame_id(fid).encode(sig)   # noqa: E731
        out = [
            (0x108, enc(0x108, {"WeldingDetection": 1, "AvailableOutputVoltage": self.max_voltage_v,
                                "AvailableOutputCurrent": self.max_current_a,
                                "ThresholdVoltage": min(self.max_voltage_v, float(ev100.get("MaximumBatteryVoltage", 0))
                                                        or self.max_voltage_v)})),
            (0x109, enc(0x109, {"ProtocolNumberEVSE": 2, "PresentOutputVoltage": round(min(s.dc_voltage_v, 1000.0)),
                                "PresentChargingCurrent": round(min(max(i, 0.0), 255.0)), "DischargeCompatibleEVSE": 1,
                                "ChargerStatus": int(on), "ChargerMalfunction": 0,
                                "ConnectorLocked": int(self.state != "idle"), "BatteryIncompatible": 0,
                                "ChargingSystemMalfunction": 0, "ChargerStopControl": int(not on),
                                "RemainingTime10s": 2550, "RemainingTimeMin": 255})),
            (0x208, enc(0x208, {"PresentDischargeCurrent": round(min(max(-i, 0.0), 255.0)), "InputVoltage": 150,
                                "InputCurrentLimit": self.max_discharge_a, "LowerThresholdVoltage": 150})),
            (0x209, enc(0x209, {"SequenceControlNumber": 2, "RemainingDischargeTime": 0})),
        ]
        if self.defects["bad_dlc"]:
            out[1] = (0x109, out[1][1][:5])
        return out

    def send(self) -> None:
        for fid, data in self.frames():
            self.hub.broadcast(fid, data)
            self.frames_out += 1

    def set_target(self, target_w: float | None = None) -> dict:
        self.target_w = None if target_w is None else float(target_w)
        return self.status()

    def set_defect(self, **kw) -> dict:
        unknown = set(kw) - set(DEFECTS)
        if unknown:
            raise ValueError(f"unknown CHAdeMO defect(s) {sorted(unknown)}; known: {sorted(DEFECTS)}")
        self.defects.update({k: type(DEFECTS[k])(v) for k, v in kw.items()})
        return dict(self.defects)

    def reset(self) -> dict:
        self.defects = dict(DEFECTS)
        self.target_w = None
        self.ev.clear()
        self.ev_t.clear()
        self.ev_wall.clear()
        if self.state != "idle":
            self.plant.set_power_setpoint(0.0)
            self.plant.set_contactor(False)
            self.plant.active_outlet = None
        self._go("idle")
        return self.status()

    def status(self) -> dict:
        return {"state": self.state, "target_w": self.target_w, "defects": dict(self.defects),
                "ev": {f"{k:03X}": v for k, v in self.ev.items()}, "rejected": self.rejected,
                "frames_out": self.frames_out, "history": self.history[-10:]}


class ChademoService:
    def __init__(self, charger: ChademoCharger | None, why: str = ""):
        self.charger, self.why = charger, why

    async def stop(self) -> None:
        c = self.charger
        if c is None:
            return
        if c._task is not None:
            c._task.cancel()
        if c in c.hub.nodes:
            c.hub.nodes.remove(c)
        c.plant.set_power_setpoint(0.0)


async def start_service(plant, cfg: dict, ctx) -> ChademoService:
    from v2g_bench.lab.frontends.can import hub_for

    hub = hub_for(plant)
    if hub is None:
        log.warning("CHAdeMO charger off: the lab has no CAN front-end")
        return ChademoService(None, "no CAN front-end (frontends.can.enabled = false)")
    c = ChademoCharger(plant, hub, **{k: float(cfg[k]) for k in ("period_s", "max_voltage_v", "max_current_a",
                                                                  "max_discharge_a", "insulation_s", "ev_timeout_s")
                                       if k in cfg})
    hub.nodes.append(c)
    c._task = asyncio.create_task(c.run())
    if ctx is not None:
        ops = {"chademo.status": c.status, "chademo.target": c.set_target, "chademo.defect": c.set_defect,
               "chademo.reset": c.reset}
        for name, fn in ops.items():
            ctx.register_op(name, fn)
    return ChademoService(c)
