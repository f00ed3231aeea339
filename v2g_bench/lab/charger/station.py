"""The virtual lab's simulated bidirectional DC charging station: an OCPP 2.0.1/2.1 client built on
the `ocpp` library's ChargePoint (as a real station would be), driving the lab's `Plant`.

Runs inside the lab process: `start_service(plant, cfg, ctx)` registers control-port ops
(`station.connect`, `station.disconnect`, `station.plug_in`, `station.start_transaction`, ...).

What it does: BootNotification + StatusNotification on connect; transactions with TransactionEvents
carrying Energy.Active.Import/Export.Register and Power.Active.Import/Export read from the plant's
meter (AC side by default: the station's billing meter); a control loop that applies the profile
stack (smart_charging.ProfileStack) to the power stage, discharge included; GetCompositeSchedule;
NotifyEVChargingNeeds; and an outbox that keeps TransactionEvents while offline and delivers them
in order (seqNo continuous) after reconnecting.

Coupled to the lab's SECC through the plant's `SimulatedCharger` (v2g_bench.lab.charger.coupling), as the
controller of a real bidirectional charger couples its two sides:
- EV session (ISO 15118): SessionSetup -> StatusNotification Occupied; Authorization -> TransactionEvent
  Started (triggerReason Authorized, chargingState EVConnected; TxStartPoint "Authorized"); energy
  flow -> Updated ChargingStateChanged; the EV's needs -> NotifyEVChargingNeeds with the EV's values
  (2.1: v2xChargingParameters, 2.0.1: dcChargingParameters); SessionStop -> Ended (StoppedByEV,
  triggerReason StopAuthorized per the 2.0.1 errata of E15.FR.04), StatusNotification Available;
  a lost EV -> Ended (EVDisconnected / Timeout, triggerReason EVCommunicationLost).
- Power: during an EV session the station does not drive the stage; it gives the charger its profile
  window (`current_window`) and composite schedule, and tells it when they change (`apply_now`).
Transactions started by control-port ops (no EV session) work as before: the station drives the stage.
"""
from __future__ import annotations

import asyncio
import base64
import datetime as dt
import inspect
import logging
import math
import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

from ocpp.routing import on
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from v2g_bench.errors import BenchError
from v2g_bench.lab.charger.coupling import EVNeeds, charger_for
from v2g_bench.csms import compat
from v2g_bench.lab.charger.profile_stack import ProfileStack, iso
from v2g_bench.csms.validation import SUBPROTOCOLS

compat.install()
log = logging.getLogger("v2g_bench.csms.station")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass
class StationConfig:
    station_id: str = "LAB-CS-001"
    ocpp_version: str = "2.0.1"
    vendor: str = "v2g-bench"
    model: str = "LabBidiDC"
    evse_id: int = 1
    connector_id: int = 1
    meter_location: str = "ac"              # "ac": grid-side meter; "dc": DC-link meter
    meter_interval_s: float = 5.0           # TransactionEvent Updated (MeterValuePeriodic)
    control_interval_s: float = 0.2         # profile -> power stage
    max_charge_w: float = 11_000.0          # station rating
    max_discharge_w: float = 11_000.0
    default_power_w: float | None = None    # without a profile: charge at min(this, EV max); None = EV max
    nominal_dc_v: float = 400.0             # for chargingRateUnit A when the plant gives no voltage
    call_timeout_s: float = 10.0
    ev: dict = field(default_factory=lambda: {
        "energy_request_wh": 20_000.0, "max_charge_w": 11_000.0, "max_discharge_w": 11_000.0,
        "min_soc": 0.2, "target_soc": 0.8, "departure_s": 4 * 3600, "capacity_wh": 60_000.0,
        "max_voltage_v": 450.0, "max_current_a": 30.0})

    @classmethod
    def from_dict(cls, d: dict | None) -> "StationConfig":
        d = dict(d or {})
        for lab_key in ("module", "enabled", "start_timeout_s"):    # the lab's keys, not ours
            d.pop(lab_key, None)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise BenchError(f"unknown station option(s) {unknown}", where="lab config [services.station]",
                             fix=f"use only {', '.join(sorted(known))}")
        ev = d.pop("ev", None)
        c = cls(**d)
        if ev:
            c.ev = {**c.ev, **ev}
        if c.ocpp_version not in SUBPROTOCOLS:
            raise BenchError(f"ocpp_version {c.ocpp_version!r} not supported", where="services.station.ocpp_version",
                             fix=f"one of {sorted(SUBPROTOCOLS)}")
        if c.meter_location not in ("ac", "dc"):
            raise BenchError("meter_location must be 'ac' or 'dc'", where="services.station.meter_location")
        return c


def _make_charge_point_class(version: str):
    if version == "2.1":
        from ocpp.v21 import ChargePoint as Base
        from ocpp.v21 import call, call_result
    else:
        from ocpp.v201 import ChargePoint as Base
        from ocpp.v201 import call, call_result

    class StationChargePoint(Base):
        """Library ChargePoint whose CSMS-initiated actions are delegated to the StationService."""

        station: "StationService"

        async def route_message(self, raw_msg):
            # The library only logs frames it cannot parse; a station must answer them
            # (OCPP-J: CALLERROR, messageId "-1" when the id cannot be read).
            import json as _json
            from ocpp.messages import unpack
            from ocpp.exceptions import OCPPError
            try:
                unpack(raw_msg)
            except OCPPError as e:
                uid = "-1"
                try:
                    m = _json.loads(raw_msg)
                    if isinstance(m, list) and len(m) > 1 and isinstance(m[1], str):
                        uid = m[1]
                except ValueError:
                    pass
                code = "MessageTypeNotSupported" if uid != "-1" else "RpcFrameworkError"
                await self._send(_json.dumps([4, uid, code, str(e.description)[:255], {}]))
                return
            return await super().route_message(raw_msg)

        @on("SetChargingProfile")
        async def on_set_charging_profile(self, evse_id, charging_profile, **_):
            status, reason = self.station.set_profile(evse_id, compat.snake_to_camel_case(charging_profile))
            info = {"reason_code": "InvalidProfile", "additional_info": reason[:512]} if reason else None
            return call_result.SetChargingProfile(status=status, status_info=info)

        @on("ClearChargingProfile")
        async def on_clear_charging_profile(self, charging_profile_id=None, charging_profile_criteria=None, **_):
            c = charging_profile_criteria or {}
            n = self.station.profiles.clear(charging_profile_id, c.get("evse_id"), c.get("charging_profile_purpose"),
                                            c.get("stack_level"))
            self.station.apply_now()
            return call_result.ClearChargingProfile(status="Accepted" if n else "Unknown")

        @on("GetChargingProfiles")
        async def on_get_charging_profiles(self, request_id, charging_profile, evse_id=None, **_):
            found = self.station.profiles.query(evse_id, charging_profile.get("charging_profile_purpose"),
                                                charging_profile.get("charging_profile_id"))
            if found:
                asyncio.ensure_future(self.station.report_profiles(request_id, found))
            return call_result.GetChargingProfiles(status="Accepted" if found else "NoProfiles")

        @on("GetCompositeSchedule")
        async def on_get_composite_schedule(self, duration, evse_id, charging_rate_unit=None, **_):
            if evse_id not in (0, self.station.cfg.evse_id):
                return call_result.GetCompositeSchedule(status="Rejected",
                                                        status_info={"reason_code": "UnknownEvse"})
            return call_result.GetCompositeSchedule(
                status="Accepted", schedule=self.station.composite_schedule(evse_id, duration, charging_rate_unit or "W"))

        @on("RequestStartTransaction")
        async def on_request_start(self, id_token, remote_start_id, evse_id=None, charging_profile=None, **_):
            st = self.station
            if st.tx_id is not None:
                return call_result.RequestStartTransaction(status="Rejected", transaction_id=st.tx_id)
            if charging_profile:
                st.pending_remote_profile = compat.snake_to_camel_case(charging_profile)
            asyncio.ensure_future(st.start_transaction(id_token=compat.snake_to_camel_case(id_token),
                                                       remote_start_id=remote_start_id, trigger="RemoteStart"))
            return call_result.RequestStartTransaction(status="Accepted")

        @on("RequestStopTransaction")
        async def on_request_stop(self, transaction_id, **_):
            st = self.station
            if st.tx_id is None or transaction_id != st.tx_id:
                return call_result.RequestStopTransaction(status="Rejected")
            asyncio.ensure_future(st.stop_transaction(reason="Remote", trigger="RemoteStop"))
            return call_result.RequestStopTransaction(status="Accepted")

        @on("TriggerMessage")
        async def on_trigger(self, requested_message, evse=None, **_):
            st = self.station
            known = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent"}
            if requested_message not in known:
                return call_result.TriggerMessage(status="NotImplemented")
            if requested_message in ("MeterValues", "TransactionEvent") and st.tx_id is None and requested_message == "TransactionEvent":
                return call_result.TriggerMessage(status="Rejected")
            asyncio.ensure_future(st.triggered(requested_message))
            return call_result.TriggerMessage(status="Accepted")

        @on("GetVariables")
        async def on_get_variables(self, get_variable_data, **_):
            return call_result.GetVariables(get_variable_result=[self.station.get_variable(d) for d in get_variable_data])

        @on("SetVariables")
        async def on_set_variables(self, set_variable_data, **_):
            return call_result.SetVariables(set_variable_result=[self.station.set_variable(d) for d in set_variable_data])

        @on("Reset")
        async def on_reset(self, type, evse_id=None, **_):
            st = self.station
            if evse_id not in (None, st.cfg.evse_id):
                return call_result.Reset(status="Rejected")
            if st.tx_id is not None and type == "OnIdle":
                st.reset_pending = True
                return call_result.Reset(status="Scheduled")
            asyncio.ensure_future(st.do_reset())
            return call_result.Reset(status="Accepted")

        @on("DataTransfer")
        async def on_data_transfer(self, vendor_id, **_):
            # this station implements no vendor extension: every vendorId is unknown (use case P01)
            return call_result.DataTransfer(status="UnknownVendorId")

        @on("ChangeAvailability")
        async def on_change_availability(self, operational_status, evse=None, **_):
            st = self.station
            st.operative = operational_status == "Operative"
            if st.tx_id is not None and not st.operative:
                return call_result.ChangeAvailability(status="Scheduled")
            asyncio.ensure_future(st.send_status())
            return call_result.ChangeAvailability(status="Accepted")

    StationChargePoint.call_module = call
    return StationChargePoint


class StationService:
    """The simulated station; its methods back the control-port ops."""

    def __init__(self, plant, cfg: StationConfig):
        self.plant, self.cfg = plant, cfg
        self.version = cfg.ocpp_version
        self.cp = None
        self.ws = None
        self.connected = asyncio.Event()
        self.booted = False
        self.boot_status: str | None = None
        self.profiles = ProfileStack()
        self.plugged = False
        self.operative = True
        self.tx_id: str | None = None
        self.tx_start: dt.datetime | None = None
        self.seq_no = 0
        self.remote_start_id: int | None = None
        self.id_token: dict | None = None
        self.pending_remote_profile: dict | None = None
        self.outbox: list[tuple[str, dict]] = []            # (action, camelCase payload), FIFO
        self.outbox_wakeup = asyncio.Event()
        self.sent_tx_events: list[dict] = []
        self.reset_pending = False
        self.variables = {("OCPPCommCtrlr", "HeartbeatInterval"): "300",
                          ("TxCtrlr", "TxStartPoint"): "Authorized",
                          ("TxCtrlr", "TxStopPoint"): "EVConnected,Authorized",
                          ("SampledDataCtrlr", "TxUpdatedInterval"): str(int(cfg.meter_interval_s)),
                          ("SmartChargingCtrlr", "Enabled"): "true",
                          ("SecurityCtrlr", "Identity"): cfg.station_id}
        self.last_target_w = 0.0
        self.errors: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self._conn_task: asyncio.Task | None = None
        self._connect_args: dict | None = None
        self._stopping = False
        self.ev_needs_sent: list[dict] = []
        self.ev_tx_id: str | None = None
        # the coupling to the SECC: one charger per plant, shared with v2g_bench.lab.charger.secc
        self.charger = charger_for(plant)
        self.charger.set_rating("station", cfg.max_charge_w, cfg.max_discharge_w)
        self.charger.set_limits_provider(self.current_window, self._composite_windows)
        self.charger.add_listener(self._on_charger_event)

    # -- the EV side (events from the SECC, through the charger) ----------------------------------
    def _on_charger_event(self, event: str, info: dict) -> None:
        """Called synchronously from the lab loop; the OCPP work is scheduled, never awaited here."""
        if event == "ev_connected":
            self.plugged = True
            self._spawn(self._safe_status())
        elif event == "ev_authorized":
            self._spawn(self._ev_start())
        elif event == "ev_needs":
            self._spawn(self._forward_needs(info["needs"]))
        elif event == "charging_state" and self.tx_id is not None:
            self.queue_tx_event("Updated", "ChargingStateChanged")
        elif event == "ev_session_ended":
            self._spawn(self._ev_gone(info.get("kind", "EVDisconnected")))

    def _spawn(self, coro) -> None:
        self._tasks = [x for x in self._tasks if not x.done()]
        self._tasks.append(asyncio.ensure_future(self._safe(coro)))

    async def _forward_needs(self, needs: EVNeeds) -> None:
        # after the transaction's Started event (queued at Authorization) has gone out, so the CSMS
        # sees Started -> NotifyEVChargingNeeds in that order
        await self._sent("Started")
        if not (self.booted and self.cp is not None):
            self.errors.append("NotifyEVChargingNeeds not sent: station offline")
            return
        await self.notify_ev_charging_needs(needs)

    async def _ev_start(self) -> None:
        r = await self.start_transaction(trigger="Authorized")
        if not r.get("already"):
            self.ev_tx_id = self.tx_id        # only a transaction the EV started ends with the EV

    async def _ev_gone(self, kind: str) -> None:
        ev_tx, self.ev_tx_id = self.ev_tx_id, None
        if self.tx_id is not None and self.tx_id == ev_tx:
            trigger = "StopAuthorized" if kind == "StoppedByEV" else "EVCommunicationLost"
            await self.stop_transaction(reason=kind, trigger=trigger)
            await self._sent("Ended")             # Ended, then the connector is Available again
        self.plugged = False
        await self._safe_status()

    async def _sent(self, event_type: str, timeout_s: float = 5.0) -> bool:
        """Wait (bounded) until no queued TransactionEvent of `event_type` is left in the outbox, so
        messages sent directly keep their order after it; offline, it stays queued: don't wait."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while any(p.get("event_type") == event_type for _, p in self.outbox):
            if not self.booted or loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- plant access ---------------------------------------------------------------------
    async def _plant(self, name: str, *args):
        r = getattr(self.plant, name)(*args)
        if inspect.isawaitable(r):
            r = await r
        return r

    def meter(self) -> dict:
        s = self.plant.state()
        if self.cfg.meter_location == "dc":
            return {"import_wh": s.dc_import_wh, "export_wh": s.dc_export_wh, "power_w": s.dc_power_w, "soc": s.soc,
                    "volts": s.dc_voltage_v}
        return {"import_wh": s.ac_import_wh, "export_wh": s.ac_export_wh, "power_w": s.ac_power_w, "soc": s.soc,
                "volts": s.dc_voltage_v}

    def sampled_values(self, context: str) -> list[dict]:
        m = self.meter()
        p = m["power_w"]
        vals = [
            {"value": round(m["import_wh"], 3), "measurand": "Energy.Active.Import.Register", "context": context,
             "unit_of_measure": {"unit": "Wh"}},
            {"value": round(m["export_wh"], 3), "measurand": "Energy.Active.Export.Register", "context": context,
             "unit_of_measure": {"unit": "Wh"}},
            {"value": round(max(p, 0.0), 1), "measurand": "Power.Active.Import", "context": context,
             "unit_of_measure": {"unit": "W"}},
            {"value": round(max(-p, 0.0), 1), "measurand": "Power.Active.Export", "context": context,
             "unit_of_measure": {"unit": "W"}},
            {"value": round(m["soc"] * 100.0, 1), "measurand": "SoC", "context": context,
             "unit_of_measure": {"unit": "Percent"}},
        ]
        return [{"timestamp": iso_ms(utcnow()), "sampled_value": vals}]

    # -- connection -----------------------------------------------------------------------
    async def connect(self, url: str, *, security_profile: int = 1, password: str | None = None,
                      ca_cert: str | None = None, client_cert: str | None = None, client_key: str | None = None,
                      ocpp_version: str | None = None, timeout_s: float = 10.0, subprotocols: list[str] | None = None,
                      reconnect: bool = True) -> dict:
        """Connect (and keep reconnecting until disconnect()); waits for the first boot result."""
        if ocpp_version:
            self.version = ocpp_version
        self._connect_args = dict(url=url, security_profile=security_profile, password=password, ca_cert=ca_cert,
                                  client_cert=client_cert, client_key=client_key, subprotocols=subprotocols)
        self._stopping = False
        self._reconnect = reconnect
        if self._conn_task is None or self._conn_task.done():
            self._first_result: asyncio.Future = asyncio.get_running_loop().create_future()
            self._conn_task = asyncio.ensure_future(self._connection_loop())
        try:
            return await asyncio.wait_for(asyncio.shield(self._first_result), timeout_s)
        except asyncio.TimeoutError:
            raise BenchError(f"station did not connect to {url} within {timeout_s:g} s", where="station.connect")

    def _ssl(self, a) -> ssl.SSLContext | None:
        if not a["url"].startswith("wss"):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=a["ca_cert"])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if a["client_cert"]:
            ctx.load_cert_chain(a["client_cert"], a["client_key"])
        return ctx

    async def _connection_loop(self) -> None:
        backoff = 0.2
        while not self._stopping:
            a = self._connect_args
            url = a["url"].rstrip("/")
            if not url.endswith("/" + self.cfg.station_id):
                url = f"{url}/{self.cfg.station_id}"
            headers = {}
            if a["security_profile"] in (1, 2) and a["password"] is not None:
                tok = base64.b64encode(f"{self.cfg.station_id}:{a['password']}".encode()).decode()
                headers["Authorization"] = f"Basic {tok}"
            subs = a["subprotocols"] if a["subprotocols"] is not None else [SUBPROTOCOLS[self.version]]
            try:
                async with connect(url, subprotocols=subs, additional_headers=headers, ssl=self._ssl(a),
                                   open_timeout=5, ping_interval=None, max_size=2 ** 20) as ws:
                    self.ws = ws
                    backoff = 0.2
                    await self._session(ws)
            except (OSError, InvalidStatus, ConnectionClosed, asyncio.TimeoutError, ssl.SSLError) as e:
                detail = f"{type(e).__name__}: {e}"
                if isinstance(e, InvalidStatus):
                    detail = f"HTTP {e.response.status_code}: {e.response.body.decode(errors='replace').strip()}"
                self.errors.append(detail)
                if not self._first_result.done():
                    self._first_result.set_result({"connected": False, "error": detail})
                    if not self._reconnect:
                        return
            except Exception as e:   # keep the service alive; report
                self.errors.append(repr(e))
                log.exception("station connection failed")
                if not self._first_result.done():
                    self._first_result.set_result({"connected": False, "error": repr(e)})
            finally:
                self.ws = None
                self.cp = None
                self.booted = False
                self.connected.clear()
            if self._stopping or not self._reconnect:
                break
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _session(self, ws) -> None:
        cls = _make_charge_point_class(self.version)
        cp = cls(self.cfg.station_id, ws, response_timeout=self.cfg.call_timeout_s)
        cp.station = self
        self.cp = cp
        reader = asyncio.ensure_future(cp.start())
        try:
            self.connected.set()
            await self.boot()
            if not self._first_result.done():
                self._first_result.set_result({"connected": True, "boot_status": self.boot_status,
                                               "subprotocol": ws.subprotocol})
            sender = asyncio.ensure_future(self._outbox_sender())
            hb = asyncio.ensure_future(self._heartbeat())
            try:
                await reader
            finally:
                sender.cancel()
                hb.cancel()
                await asyncio.gather(sender, hb, return_exceptions=True)
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def disconnect(self) -> dict:
        self._stopping = True
        if self.ws is not None:
            await self.ws.close(1000, "station going offline (test)")
        if self._conn_task is not None:
            try:
                await asyncio.wait_for(self._conn_task, 5)
            except (asyncio.TimeoutError, Exception):
                self._conn_task.cancel()
        return {"connected": False, "queued": len(self.outbox)}

    async def _call(self, action: str, **kw):
        payload = getattr(self.cp.call_module, action)(**kw)
        return await self.cp.call(payload, suppress=False)

    async def boot(self) -> None:
        for _ in range(5):
            r = await self._call("BootNotification", reason="PowerUp",
                                 charging_station={"model": self.cfg.model, "vendor_name": self.cfg.vendor})
            self.boot_status = r.status
            if r.status == "Accepted":
                self.booted = True
                self.variables[("OCPPCommCtrlr", "HeartbeatInterval")] = str(r.interval)
                await self.send_status()
                self.outbox_wakeup.set()
                return
            await asyncio.sleep(min(max(r.interval, 1), 5))

    async def send_status(self) -> None:
        if not self.booted:
            return
        status = "Unavailable" if not self.operative else ("Occupied" if self.plugged else "Available")
        await self._call("StatusNotification", timestamp=iso_ms(utcnow()), connector_status=status,
                         evse_id=self.cfg.evse_id, connector_id=self.cfg.connector_id)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(float(self.variables[("OCPPCommCtrlr", "HeartbeatInterval")]))
            await self._call("Heartbeat")

    async def triggered(self, what: str) -> None:
        if what == "BootNotification":
            await self.boot()
        elif what == "Heartbeat":
            await self._call("Heartbeat")
        elif what == "StatusNotification":
            await self.send_status()
        elif what == "MeterValues":
            await self._call("MeterValues", evse_id=self.cfg.evse_id, meter_value=self.sampled_values("Trigger"))
        elif what == "TransactionEvent" and self.tx_id:
            self.queue_tx_event("Updated", "Trigger", context="Trigger")

    # -- transactions and the offline queue -------------------------------------------------
    def queue_tx_event(self, event_type: str, trigger: str, *, context: str = "Sample.Periodic",
                       stopped_reason: str | None = None) -> dict:
        ev: dict[str, Any] = {"event_type": event_type, "timestamp": iso_ms(utcnow()), "trigger_reason": trigger,
                              "seq_no": self.seq_no,
                              "transaction_info": {"transaction_id": self.tx_id, "charging_state":
                                                   "EVConnected" if event_type == "Ended" else self.charging_state()},
                              "meter_value": self.sampled_values(context)}
        self.seq_no += 1
        if not self.booted:
            ev["offline"] = True
        if event_type == "Started":
            ev["evse"] = {"id": self.cfg.evse_id, "connector_id": self.cfg.connector_id}
            if self.id_token:
                ev["id_token"] = {"id_token": self.id_token["idToken"], "type": self.id_token["type"]}
            if self.remote_start_id is not None:
                ev["transaction_info"]["remote_start_id"] = self.remote_start_id
        if stopped_reason:
            ev["transaction_info"]["stopped_reason"] = stopped_reason
        self.outbox.append(("TransactionEvent", ev))
        self.outbox_wakeup.set()
        return ev

    def charging_state(self) -> str:
        s = self.charger.session
        if s is not None:
            return s.charging_state
        if abs(self.last_target_w) < 1.0:
            return "SuspendedEVSE"
        return "Charging"

    async def _outbox_sender(self) -> None:
        """Deliver queued messages in order; an undelivered one stays at the head (none lost)."""
        while True:
            await self.outbox_wakeup.wait()
            self.outbox_wakeup.clear()
            while self.outbox and self.booted and self.cp is not None:
                action, payload = self.outbox[0]
                try:
                    await self._call(action, **payload)
                except (ConnectionClosed, asyncio.TimeoutError):
                    return                      # still at the head: retried after reconnecting
                except Exception as e:          # a CALLERROR: the CSMS refused it; keep going
                    self.errors.append(f"{action} seqNo {payload.get('seq_no')}: {e!r}")
                self.outbox.pop(0)
                self.sent_tx_events.append(payload)
                del self.sent_tx_events[:-500]        # a long lab life: the last ones are enough

    async def plug_in(self) -> dict:
        self.plugged = True
        await self._safe_status()
        if self.booted and self.cp is not None and self.cfg.ocpp_version:
            asyncio.ensure_future(self._safe(self.notify_ev_charging_needs()))
        return {"plugged": True}

    async def unplug(self) -> dict:
        if self.tx_id:
            await self.stop_transaction(reason="EVDisconnected", trigger="EVCommunicationLost")
        self.plugged = False
        await self._safe_status()
        return {"plugged": False}

    async def _safe_status(self):
        try:
            if self.booted:
                await self.send_status()
        except (ConnectionClosed, asyncio.TimeoutError):
            pass

    async def _safe(self, coro):
        try:
            return await coro
        except Exception as e:
            self.errors.append(repr(e))
            log.warning("station: %r", e)

    async def start_transaction(self, *, id_token: dict | None = None, remote_start_id: int | None = None,
                                trigger: str = "Authorized") -> dict:
        if self.tx_id is not None:
            return {"transaction_id": self.tx_id, "already": True}
        if not self.plugged:
            self.plugged = True
            await self._safe_status()
        self.tx_id = str(uuid.uuid4())
        self.tx_start = utcnow()
        self.seq_no = 0
        self.id_token = id_token or {"idToken": "LAB-TOKEN", "type": "Local"}
        self.remote_start_id = remote_start_id
        if self.pending_remote_profile is not None:
            prof = dict(self.pending_remote_profile, transactionId=self.tx_id)
            self.profiles.add(self.cfg.evse_id, prof, active_tx=self.tx_id)
            self.pending_remote_profile = None
        if not self.charger.session_active:
            # no EV session: the station itself closes the power path; with an EV the SECC does it
            # (PowerDelivery) and the charger sets the caps
            await self._plant("set_power_limits", self.cfg.max_charge_w, self.cfg.max_discharge_w)
            await self._plant("set_contactor", True)
        self.queue_tx_event("Started", trigger, context="Transaction.Begin")
        self.apply_now()
        self._tasks.append(asyncio.ensure_future(self._periodic_meter(self.tx_id)))
        return {"transaction_id": self.tx_id}

    async def stop_transaction(self, *, reason: str = "Local", trigger: str = "StopAuthorized") -> dict:
        if self.tx_id is None:
            return {"stopped": False}
        if self.charger.session_active:
            # with an EV: the charger stops the power and the SECC tells the EV to terminate its
            # session (EVSENotification Terminate); the EV's SessionStop then opens the contactor
            if self.tx_id == self.ev_tx_id:
                self.ev_tx_id = None
            self.charger.request_stop(reason)
        else:
            await self._plant("set_power_setpoint", 0.0)
            await self._plant("set_contactor", False)
        self.last_target_w = 0.0
        ev = self.queue_tx_event("Ended", trigger, context="Transaction.End", stopped_reason=reason)
        tx = self.tx_id
        self.tx_id = None
        self.profiles.clear_tx_profiles()
        if self.reset_pending:
            self.reset_pending = False
            asyncio.ensure_future(self.do_reset())
        return {"stopped": True, "transaction_id": tx, "seq_no": ev["seq_no"]}

    async def _periodic_meter(self, tx_id: str) -> None:
        while self.tx_id == tx_id:
            await asyncio.sleep(self.cfg.meter_interval_s)
            if self.tx_id == tx_id:
                self.queue_tx_event("Updated", "MeterValuePeriodic")

    async def do_reset(self) -> None:
        if self.tx_id:
            await self.stop_transaction(reason="ImmediateReset", trigger="ResetCommand")
        # finish what is in flight (the answer to the CSMS's request, the Ended event) before rebooting
        for _ in range(50):
            if not self.outbox:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        if self.ws is not None:
            await self.ws.close(1000, "reset")

    # -- power control ----------------------------------------------------------------------
    def ev_wanted_w(self) -> float:
        ev = self.cfg.ev
        soc = self.plant.state().soc
        want = min(ev["max_charge_w"], self.cfg.max_charge_w)
        if self.cfg.default_power_w is not None:
            want = min(want, self.cfg.default_power_w)
        return want if soc < ev.get("target_soc", 1.0) else 0.0

    def current_window(self):
        w, _ = self.profiles.window(self.cfg.evse_id, utcnow(), tx_id=self.tx_id, tx_start=self.tx_start,
                                    volts=self._volts())
        return w

    def _volts(self) -> float:
        v = getattr(self.plant.state(), "dc_voltage_v", None)
        return v if v and v > 1 else self.cfg.nominal_dc_v

    def apply_now(self) -> float:
        """Evaluate the profile stack and drive the stage (also called after every profile change).
        During an EV session the charger does it: min(EV request, this window)."""
        if self.charger.session_active:
            g = self.charger.limits_changed()
            self.last_target_w = g or 0.0
            return self.last_target_w
        if self.tx_id is None:
            return 0.0
        ev = self.cfg.ev
        target = self.current_window().target(self.ev_wanted_w())
        target = min(max(target, -min(ev["max_discharge_w"], self.cfg.max_discharge_w)),
                     min(ev["max_charge_w"], self.cfg.max_charge_w))
        if not self.operative:
            target = 0.0
        self.plant.set_power_setpoint(target)
        self.last_target_w = target
        return target

    async def _control_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.control_interval_s)
            try:
                self.apply_now()
            except Exception as e:     # never let the control loop die silently
                self.errors.append(f"control loop: {e!r}")

    def set_profile(self, evse_id: int, profile: dict) -> tuple[str, str]:
        status, reason = self.profiles.add(evse_id, profile, active_tx=self.tx_id)
        if status == "Accepted":
            self.apply_now()
        return status, reason

    def _composite_windows(self, duration_s: int):
        """For the SECC's -20 ScheduleExchangeRes: [(offset_s, window)] from now, W, bench sign."""
        return self.profiles.composite(self.cfg.evse_id, utcnow(), int(duration_s), tx_id=self.tx_id,
                                       tx_start=self.tx_start, volts=self._volts(),
                                       station_max_w=self.cfg.max_charge_w,
                                       station_max_discharge_w=self.cfg.max_discharge_w)

    def composite_schedule(self, evse_id: int, duration: int, unit: str) -> dict:
        start = utcnow().replace(microsecond=0)
        volts = self._volts()
        k = volts if unit == "A" else 1.0
        windows = self.profiles.composite(evse_id or self.cfg.evse_id, start, duration, tx_id=self.tx_id,
                                          tx_start=self.tx_start, volts=volts, station_max_w=self.cfg.max_charge_w,
                                          station_max_discharge_w=self.cfg.max_discharge_w)
        periods = []
        for off, w in windows:
            if self.version == "2.0.1":
                lim = w.setpoint_w if (w.setpoint_w is not None and w.setpoint_w < 0) else w.hi_w
                periods.append({"start_period": off, "limit": round(lim / k, 1)})
            else:
                p: dict[str, Any] = {"start_period": off, "limit": round(max(w.hi_w, 0.0) / k, 1)}
                if w.setpoint_w is not None:
                    p.update(operation_mode="CentralSetpoint", setpoint=round(w.setpoint_w / k, 1))
                if math.isfinite(w.lo_w) and w.lo_w < 0:
                    p["discharge_limit"] = round(w.lo_w / k, 1)
                periods.append(p)
        return {"evse_id": evse_id, "duration": duration, "schedule_start": iso(start),
                "charging_rate_unit": unit, "charging_schedule_period": periods}

    async def report_profiles(self, request_id: int, found) -> None:
        by_evse: dict[int, list] = {}
        for e, p in found:
            by_evse.setdefault(e, []).append(p)
        items = list(by_evse.items())
        for i, (e, profs) in enumerate(items):
            source = "CSO" if self.version == "2.0.1" else "CSO"
            await self._safe(self._call("ReportChargingProfiles", request_id=request_id, charging_limit_source=source,
                                        evse_id=e, tbc=i < len(items) - 1,
                                        charging_profile=[_to_snake(p) for p in profs]))

    def ev_charging_needs(self, needs: EVNeeds) -> dict:
        """chargingNeeds (camelCase) from what the EV sent over ISO 15118. Bench sign -> OCPP: the 2.1
        discharge fields are magnitudes (>= 0); max values are min(EV, EVSE), min values max(EV, EVSE),
        as the 2.1 schema defines them."""
        st = self.plant.cfg.stage
        ch_rate, dis_rate = self.charger.rating()

        def lo(*xs):
            xs = [x for x in xs if x is not None and math.isfinite(x)]
            return round(min(xs), 3) if xs else None

        def hi(*xs):
            xs = [x for x in xs if x is not None and math.isfinite(x)]
            return round(max(xs), 3) if xs else None

        mag = lambda x: None if x is None else abs(x)        # noqa: E731 bench sign (<= 0) -> OCPP magnitude
        out: dict[str, Any] = {}
        if needs.departure_s is not None:
            out["departureTime"] = iso(utcnow() + dt.timedelta(seconds=float(needs.departure_s)))
        if self.version == "2.1":
            out["requestedEnergyTransfer"] = needs.service if needs.service in ("DC", "DC_BPT", "AC_BPT") else "DC"
            if needs.control_mode:
                out["controlMode"] = "ScheduledControl" if needs.control_mode == "scheduled" else "DynamicControl"
                if needs.control_mode == "dynamic":
                    out["mobilityNeedsMode"] = "EVCC"          # the EV states its needs (MobilityNeedsMode 1)
            v2x = {"maxChargePower": lo(needs.max_charge_power_w, ch_rate, st.charge.p_max_w),
                   "minChargePower": hi(needs.min_charge_power_w, 0.0),
                   "maxChargeCurrent": lo(needs.max_charge_current_a, st.charge.i_max_a),
                   "minChargeCurrent": hi(needs.min_charge_current_a, 0.0),
                   "maxVoltage": lo(needs.max_voltage_v, st.charge.v_max_v),
                   "minVoltage": hi(needs.min_voltage_v, st.charge.v_min_v),
                   "evTargetEnergyRequest": needs.target_energy_wh, "evMinEnergyRequest": needs.min_energy_wh,
                   "evMaxEnergyRequest": needs.max_energy_wh, "evMinV2XEnergyRequest": needs.min_v2x_energy_wh,
                   "evMaxV2XEnergyRequest": needs.max_v2x_energy_wh,
                   "targetSoC": None if needs.target_soc is None else int(round(needs.target_soc * 100))}
            if needs.bidirectional:
                v2x.update({"maxDischargePower": lo(mag(needs.max_discharge_power_w), dis_rate, st.discharge.p_max_w),
                            "minDischargePower": hi(mag(needs.min_discharge_power_w), 0.0),
                            "maxDischargeCurrent": lo(mag(needs.max_discharge_current_a), st.discharge.i_max_a),
                            "minDischargeCurrent": hi(mag(needs.min_discharge_current_a), 0.0)})
            out["v2xChargingParameters"] = {k: v for k, v in v2x.items() if v is not None}
        else:
            # 2.0.1 has no bidirectional parameters: the EV's charging side, as the EV sent it
            out["requestedEnergyTransfer"] = "DC"
            # (2.0.1's DCChargingParametersType has integers only)
            dc = {"evMaxCurrent": needs.max_charge_current_a, "evMaxVoltage": needs.max_voltage_v,
                  "evMaxPower": needs.max_charge_power_w,
                  "energyAmount": None if needs.target_energy_wh is None else max(needs.target_energy_wh, 0.0),
                  "evEnergyCapacity": needs.capacity_wh,
                  "stateOfCharge": None if needs.present_soc is None else needs.present_soc * 100}
            out["dcChargingParameters"] = {k: int(round(v)) for k, v in dc.items() if v is not None}
        return out

    async def notify_ev_charging_needs(self, needs: EVNeeds | None = None) -> dict:
        """K15/K18 (2.0.1), Q (2.1): the EV's needs; without `needs` (control-port op, no EV session)
        the configured `ev` table stands in for an EV."""
        if needs is not None:
            payload = self.ev_charging_needs(needs)
            self.ev_needs_sent.append(payload)
            r = await self._call("NotifyEVChargingNeeds", evse_id=self.cfg.evse_id, charging_needs=payload)
            return {"status": r.status, "charging_needs": payload}
        ev = self.cfg.ev
        departure = iso(utcnow() + dt.timedelta(seconds=ev["departure_s"]))
        s = self.plant.state()
        if self.version == "2.1":
            needs = {"requested_energy_transfer": "DC_BPT", "departure_time": departure,
                     "control_mode": "ScheduledControl",
                     "v2x_charging_parameters": {
                         "max_charge_power": ev["max_charge_w"], "max_discharge_power": ev["max_discharge_w"],
                         "min_charge_power": 0.0, "min_discharge_power": 0.0,
                         "ev_target_energy_request": ev["energy_request_wh"],
                         "ev_min_energy_request": -ev["capacity_wh"] * max(s.soc - ev["min_soc"], 0.0),
                         "ev_max_energy_request": ev["capacity_wh"] * max(1.0 - s.soc, 0.0)},
                     "dc_charging_parameters": {
                         "ev_max_current": ev["max_current_a"], "ev_max_voltage": ev["max_voltage_v"],
                         "energy_amount": ev["energy_request_wh"], "ev_max_power": ev["max_charge_w"],
                         "state_of_charge": int(round(s.soc * 100)), "ev_energy_capacity": ev["capacity_wh"]}}
        else:
            # 2.0.1's DCChargingParametersType has integers only (Draft 4: 30.0 is not an integer)
            needs = {"requested_energy_transfer": "DC", "departure_time": departure,
                     "dc_charging_parameters": {k: int(round(v)) for k, v in {
                         "ev_max_current": ev["max_current_a"], "ev_max_voltage": ev["max_voltage_v"],
                         "energy_amount": ev["energy_request_wh"], "ev_max_power": ev["max_charge_w"],
                         "state_of_charge": s.soc * 100, "ev_energy_capacity": ev["capacity_wh"]}.items()}}
        r = await self._call("NotifyEVChargingNeeds", evse_id=self.cfg.evse_id, charging_needs=needs)
        return {"status": r.status}

    # -- device model (B05/B06, minimal) ------------------------------------------------------
    def get_variable(self, d: dict) -> dict:
        key = (d["component"]["name"], d["variable"]["name"])
        base = {"component": d["component"], "variable": d["variable"]}
        if key not in self.variables:
            comp_known = any(k[0] == key[0] for k in self.variables)
            return {**base, "attribute_status": "UnknownVariable" if comp_known else "UnknownComponent"}
        return {**base, "attribute_status": "Accepted", "attribute_value": self.variables[key]}

    def set_variable(self, d: dict) -> dict:
        key = (d["component"]["name"], d["variable"]["name"])
        base = {"component": d["component"], "variable": d["variable"]}
        if key not in self.variables:
            comp_known = any(k[0] == key[0] for k in self.variables)
            return {**base, "attribute_status": "UnknownVariable" if comp_known else "UnknownComponent"}
        if key[1].endswith("Interval") and not str(d["attribute_value"]).isdigit():
            return {**base, "attribute_status": "Rejected"}
        self.variables[key] = str(d["attribute_value"])
        return {**base, "attribute_status": "Accepted"}

    async def clear(self) -> dict:
        """A clean station for the next test (the lab's factory reset): offline queue, transaction and
        installed profiles dropped, stage to 0 and open if the station drove it. Not an OCPP action."""
        dropped = len(self.outbox)
        self.outbox.clear()
        tx = self.tx_id
        if tx is not None and not self.charger.session_active:
            self.plant.set_power_setpoint(0.0)
            self.plant.set_contactor(False)
        self.tx_id = self.ev_tx_id = None
        self.tx_start, self.seq_no, self.last_target_w = None, 0, 0.0
        self.profiles.installed.clear()
        self.pending_remote_profile, self.reset_pending = None, False
        self.plugged = self.charger.session_active
        return {"dropped_queued": dropped, "dropped_transaction": tx}

    def status(self) -> dict:
        w = self.current_window()
        return {"connected": self.connected.is_set(), "booted": self.booted, "boot_status": self.boot_status,
                "version": self.version, "transaction_id": self.tx_id, "seq_no": self.seq_no,
                "queued": len(self.outbox), "sent_tx_events": len(self.sent_tx_events), "plugged": self.plugged,
                "target_w": self.last_target_w, "window": [w.lo_w, w.hi_w, w.setpoint_w],
                "profiles": [p for _, p in self.profiles.installed], "errors": self.errors[-10:],
                "charger": self.charger.status(), "ev_needs_sent": self.ev_needs_sent[-3:]}

    async def stop(self) -> None:
        self._stopping = True
        self.charger.remove_listener(self._on_charger_event)
        self.charger.set_limits_provider(None)
        for t in self._tasks:
            t.cancel()
        try:
            if self.tx_id:
                self.plant.set_power_setpoint(0.0)
                self.plant.set_contactor(False)
        finally:
            await self.disconnect()
            await asyncio.gather(*self._tasks, return_exceptions=True)


def iso_ms(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _to_snake(d):
    from ocpp.charge_point import camel_to_snake_case
    return camel_to_snake_case(d)


async def start_service(plant, cfg: dict, ctx) -> StationService:
    """Lab service entry point: build the station and register its control-port ops."""
    svc = StationService(plant, StationConfig.from_dict(cfg))
    svc._tasks.append(asyncio.ensure_future(svc._control_loop()))

    async def op_connect(url: str, security_profile: int = 1, password: str | None = None, ca_cert: str | None = None,
                         client_cert: str | None = None, client_key: str | None = None,
                         ocpp_version: str | None = None, timeout_s: float = 10.0, subprotocols=None,
                         reconnect: bool = True):
        return await svc.connect(url, security_profile=security_profile, password=password, ca_cert=ca_cert,
                                 client_cert=client_cert, client_key=client_key, ocpp_version=ocpp_version,
                                 timeout_s=timeout_s, subprotocols=subprotocols, reconnect=reconnect)

    async def op_start(id_token: str = "LAB-TOKEN", token_type: str = "Local"):
        return await svc.start_transaction(id_token={"idToken": id_token, "type": token_type})

    async def op_stop(reason: str = "Local"):
        return await svc.stop_transaction(reason=reason)

    async def op_status():
        return svc.status()

    async def op_needs():
        return await svc.notify_ev_charging_needs()

    for name, fn in {"station.connect": op_connect, "station.disconnect": svc.disconnect,
                     "station.plug_in": svc.plug_in, "station.unplug": svc.unplug,
                     "station.start_transaction": op_start, "station.stop_transaction": op_stop,
                     "station.status": op_status, "station.notify_ev_needs": op_needs,
                     "station.clear": svc.clear}.items():
        ctx.register_op(name, fn)
    return svc
