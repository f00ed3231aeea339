"""A lightweight simulated charging station for fleets of 1,000+ stations in one process.

The full station (`station.py`, on the `ocpp` library, coupled to a plant) costs too much per instance for an
aggregator-size fleet. This one speaks OCPP 2.0.1 over a raw WebSocket (the CSMS validates every frame we
send against the schemas) and models one EV per station as an energy balance on a *scaled plan clock*:

* boot: BootNotification, StatusNotification(Occupied), TransactionEvent(Started) with its EV's SOC;
* SetChargingProfile (TxProfile/TxDefaultProfile, unit W, kind Absolute, + = charge, - = discharge) and
  ClearChargingProfile are answered and obeyed from the profile's startSchedule on;
* power = the profile's limit clamped to the EV's max charge/discharge power and to its SOC window;
* at the end of every metering interval (plan time) it sends TransactionEvent(Updated, MeterValuePeriodic)
  with its energy registers (Energy.Active.Import/Export.Register, Wh) stamped with the plan time.

`defect="ignore_profile"` makes a station charge at full power whatever the profile says (a fleet can then
fail its judgement: the tests and the benchmark prove the judge can fail).
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
from dataclasses import dataclass

from v2g_bench.errors import BenchError
from v2g_bench.csms.ocpp_time import ocpp_time as iso

CALL, CALLRESULT, CALLERROR = 2, 3, 4




def parse_iso(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


@dataclass
class PlanClock:
    """Plan time = `epoch` + (monotonic - t0) * scale: every station and the judge share it."""

    epoch: dt.datetime
    scale: float
    t0: float

    def now(self) -> dt.datetime:
        return self.epoch + dt.timedelta(seconds=(time.monotonic() - self.t0) * self.scale)

    def plan_s(self) -> float:
        return (time.monotonic() - self.t0) * self.scale

    async def sleep_until(self, plan_s: float) -> None:
        await asyncio.sleep(max(0.0, (plan_s - self.plan_s()) / self.scale))


@dataclass
class LightEV:
    capacity_kwh: float
    soc_kwh: float
    max_charge_kw: float
    max_discharge_kw: float
    floor_kwh: float = 0.0
    eta_charge: float = 1.0
    eta_discharge: float = 1.0


class LightStation:
    def __init__(self, station_id: str, url: str, password: str, ev: LightEV, clock: PlanClock, *,
                 meter_interval_s: float, defect: str | None = None):
        if defect not in (None, "ignore_profile"):
            raise BenchError(f"unknown light-station defect {defect!r}", where=station_id, fix="None or 'ignore_profile'")
        self.id, self.url, self.password, self.ev, self.clock = station_id, url, password, ev, clock
        self.meter_interval_s, self.defect = meter_interval_s, defect
        self.ws = None
        self.seq = 0
        self.tx_id = f"TX-{station_id}"
        self.periods: list[tuple[float, float]] = []     # (plan s from which, W)
        self.imported_wh = 0.0
        self.exported_wh = 0.0
        self._last = 0.0                                 # plan s the energy was integrated to
        self._pending: dict[str, asyncio.Future] = {}
        self._uid = 0
        self.errors: list[str] = []

    # -- the model ---------------------------------------------------------------------------------------
    def setpoint_w(self, plan_s: float) -> float:
        if self.defect == "ignore_profile":
            return self.ev.max_charge_kw * 1000
        w = 0.0
        for start, limit in self.periods:
            if start <= plan_s:
                w = limit
        return max(-self.ev.max_discharge_kw * 1000, min(self.ev.max_charge_kw * 1000, w))

    def integrate(self, to_s: float) -> None:
        """Energy from the last point to `to_s` at the setpoints in between (piecewise constant)."""
        t = self._last
        edges = sorted({s for s, _ in self.periods if t < s < to_s} | {to_s})
        for e in edges:
            h = (e - t) / 3600
            kw = self.setpoint_w(t) / 1000
            ev = self.ev
            if kw > 0:   # grid side: the battery takes eta_c of it, and stops when full
                kw = min(kw, max(0.0, (ev.capacity_kwh - ev.soc_kwh) / (ev.eta_charge * h)) if h else kw)
                ev.soc_kwh += kw * ev.eta_charge * h
                self.imported_wh += kw * h * 1000
            elif kw < 0:
                kw = -min(-kw, max(0.0, (ev.soc_kwh - ev.floor_kwh) * ev.eta_discharge / h) if h else -kw)
                ev.soc_kwh += kw / ev.eta_discharge * h
                self.exported_wh += -kw * h * 1000
            t = e
        self._last = to_s

    # -- OCPP --------------------------------------------------------------------------------------------
    async def _call(self, action: str, payload: dict, timeout: float = 60.0) -> dict:
        self._uid += 1
        uid = f"{self._uid}"
        fut = asyncio.get_running_loop().create_future()
        self._pending[uid] = fut
        await self.ws.send(json.dumps([CALL, uid, action, payload]))
        try:
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._pending.pop(uid, None)
        if reply[0] != CALLRESULT:
            raise BenchError(f"{action} answered with {reply!r:.200}", where=f"light station {self.id}")
        return reply[2]

    async def _reader(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg[0] in (CALLRESULT, CALLERROR):
                fut = self._pending.get(msg[1])
                if fut and not fut.done():
                    fut.set_result(msg)
            elif msg[0] == CALL:
                try:
                    answer = self._on_call(msg[1], msg[2], msg[3])
                except (KeyError, TypeError, ValueError, IndexError) as e:   # a malformed request: say so, keep going
                    answer = [CALLERROR, msg[1], "FormatViolation", f"cannot read the request: {e!r}"[:255], {}]
                await self.ws.send(json.dumps(answer))

    def _on_call(self, uid: str, action: str, payload: dict) -> list:
        if action == "SetChargingProfile":
            prof = payload.get("chargingProfile", {})
            sched = (prof.get("chargingSchedule") or [{}])[0]
            if (prof.get("chargingProfilePurpose") not in ("TxProfile", "TxDefaultProfile")
                    or sched.get("chargingRateUnit") != "W" or prof.get("chargingProfileKind") != "Absolute"):
                return [CALLRESULT, uid, {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRequest"}}]
            start = (parse_iso(sched["startSchedule"]) - self.clock.epoch).total_seconds()
            self.integrate(max(self._last, self.clock.plan_s()))
            self.periods = [(start + p["startPeriod"], float(p["limit"])) for p in sched["chargingSchedulePeriod"]]
            return [CALLRESULT, uid, {"status": "Accepted"}]
        if action == "ClearChargingProfile":
            self.integrate(max(self._last, self.clock.plan_s()))
            self.periods = []
            return [CALLRESULT, uid, {"status": "Accepted"}]
        return [CALLERROR, uid, "NotSupported", f"{action} is not supported by the light station", {}]

    def _tx(self, event: str, trigger: str, extra: dict | None = None) -> dict:
        self.seq += 1
        p = {"eventType": event, "timestamp": iso(self.clock.now()), "triggerReason": trigger, "seqNo": self.seq,
             "transactionInfo": {"transactionId": self.tx_id, "chargingState": "EVConnected"}}
        return {**p, **(extra or {})}

    def _meter(self, at: dt.datetime) -> list:
        soc = 100 * self.ev.soc_kwh / self.ev.capacity_kwh
        return [{"timestamp": iso(at), "sampledValue": [
            {"value": round(self.imported_wh, 3), "measurand": "Energy.Active.Import.Register",
             "unitOfMeasure": {"unit": "Wh"}},
            {"value": round(self.exported_wh, 3), "measurand": "Energy.Active.Export.Register",
             "unitOfMeasure": {"unit": "Wh"}},
            {"value": round(soc, 2), "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}}]}]

    async def run(self, horizon_s: float, connected: asyncio.Event | None = None, sem=None) -> None:
        from websockets.asyncio.client import connect
        hdr = {"Authorization": "Basic " + base64.b64encode(f"{self.id}:{self.password}".encode()).decode()}
        async with sem or asyncio.Semaphore(1):
            self.ws = await connect(f"{self.url}/{self.id}", subprotocols=["ocpp2.0.1"], additional_headers=hdr,
                                    ping_interval=None, open_timeout=120, compression=None)
        reader = asyncio.create_task(self._reader())
        try:
            await self._call("BootNotification", {"reason": "PowerUp", "chargingStation": {
                "model": "v2g-bench light", "vendorName": "v2g-bench"}})
            await self._call("StatusNotification", {"timestamp": iso(self.clock.now()), "connectorStatus": "Occupied",
                                                    "evseId": 1, "connectorId": 1})
            await self._call("TransactionEvent", self._tx("Started", "EVDetected", {
                "evse": {"id": 1, "connectorId": 1}, "meterValue": self._meter(self.clock.now())}))
            if connected is not None:
                connected.set()
            k = 0               # a reading at plan time 0 too: every interval has registers at both ends
            while k * self.meter_interval_s <= horizon_s + 1e-9:
                end = k * self.meter_interval_s
                await self.clock.sleep_until(end)
                self.integrate(end)
                at = self.clock.epoch + dt.timedelta(seconds=end)
                await self._call("TransactionEvent", self._tx("Updated", "MeterValuePeriodic",
                                                              {"meterValue": self._meter(at)}))
                k += 1
            await self._call("TransactionEvent", self._tx("Ended", "StopAuthorized", {
                "meterValue": self._meter(self.clock.now())}))
        except Exception as e:
            self.errors.append(f"{type(e).__name__}: {e}")
            raise
        finally:
            reader.cancel()
            await self.ws.close()


# -- a fleet of light stations in one process ------------------------------------------------------------
async def run_fleet(spec: dict) -> dict:
    """spec: url, password, epoch (ISO), scale, t0 (monotonic of plan time 0), horizon_s, meter_interval_s,
    stations: [{id, ev: {LightEV fields}, defect}]. -> {"connected": n, "errors": [...]}"""
    clock = PlanClock(parse_iso(spec["epoch"]), float(spec["scale"]), float(spec["t0"]))
    sem = asyncio.Semaphore(100)        # bounded handshake concurrency
    stations = [LightStation(s["id"], spec["url"], spec["password"], LightEV(**s["ev"]), clock,
                             meter_interval_s=float(spec["meter_interval_s"]), defect=s.get("defect"))
                for s in spec["stations"]]
    results = await asyncio.gather(*(s.run(float(spec["horizon_s"]), sem=sem) for s in stations),
                                   return_exceptions=True)
    errors = [f"{s.id}: {r!r}" for s, r in zip(stations, results) if isinstance(r, BaseException)]
    return {"stations": len(stations), "errors": errors[:20], "n_errors": len(errors)}


def _fleet_main(spec_path: str, out_path: str) -> None:
    import os
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    result = asyncio.run(run_fleet(spec))
    with open(out_path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    import sys
    _fleet_main(sys.argv[1], sys.argv[2])
