"""Transactions of the simulated station (blocks E, F): start/stop, TransactionEvents with meter
values, the offline queue (delivered in order, seqNo continuous, offline=true), remote start/stop,
authorization by token, unlock, GetTransactionStatus, TriggerMessage, and the coupling to the EV's
ISO 15118 session through the plant's SimulatedCharger.

EV session (ISO 15118): SessionSetup -> StatusNotification Occupied; Authorization -> TransactionEvent
Started (triggerReason Authorized; TxStartPoint "Authorized"); energy flow -> Updated ChargingStateChanged;
the EV's needs -> NotifyEVChargingNeeds; SessionStop -> Ended (StoppedByEV, triggerReason StopAuthorized
per the 2.0.1 errata of E15.FR.04) and Available; a lost EV -> Ended (EVCommunicationLost).
"""
from __future__ import annotations

import asyncio
import inspect
import json
import uuid
from typing import Any

from websockets.exceptions import ConnectionClosed

from .config import iso_ms, utcnow


class TransactionsMixin:
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
            if not self.online or loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    # -- the meter ------------------------------------------------------------------------------
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

    # -- TransactionEvents and the offline queue -------------------------------------------------
    def queue_tx_event(self, event_type: str, trigger: str, *, context: str = "Sample.Periodic",
                       stopped_reason: str | None = None) -> dict:
        ev: dict[str, Any] = {"event_type": event_type, "timestamp": iso_ms(utcnow()), "trigger_reason": trigger,
                              "seq_no": self.seq_no,
                              "transaction_info": {"transaction_id": self.tx_id, "charging_state":
                                                   "EVConnected" if event_type == "Ended" else self.charging_state()},
                              "meter_value": self.sampled_values(context)}
        self.seq_no += 2 if (event_type == "Started" and self.defects.on("seq_no_skip")) else 1
        if not self.online:
            ev["_queued_offline"] = True        # (not sent: the underscore keys stay in the station)
            if not self.defects.on("no_offline_flag"):
                ev["offline"] = True
        if event_type == "Started":
            ev["evse"] = {"id": self.cfg.evse_id, "connector_id": self.cfg.connector_id}
            if self.id_token:
                ev["id_token"] = {"id_token": self.id_token["idToken"], "type": self.id_token["type"]}
            if self.remote_start_id is not None and not self.defects.on("no_remote_start_id"):
                ev["transaction_info"]["remote_start_id"] = self.remote_start_id
        if stopped_reason and not self.defects.on("ended_without_stopped_reason"):
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
            while self.outbox and self.online and self.cp is not None:
                action, payload = self.outbox[0]
                wire = {k: v for k, v in payload.items() if not k.startswith("_")}
                try:
                    await self._call(action, **wire)
                except (ConnectionClosed, ConnectionError, asyncio.TimeoutError):
                    return                      # still at the head: retried after reconnecting
                except Exception as e:          # a CALLERROR: the CSMS refused it; keep going
                    self.errors.append(f"{action} seqNo {payload.get('seq_no')}: {e!r}")
                self.outbox.pop(0)
                self.sent_tx_events.append(wire)
                del self.sent_tx_events[:-500]        # a long lab life: the last ones are enough

    # -- plug, token, start, stop ------------------------------------------------------------------
    async def plug_in(self) -> dict:
        was, self.plugged = self.plugged, True
        await self._safe_status()
        if self.tx_id is not None and not was:      # E03: the transaction began at authorization
            self.queue_tx_event("Updated", "CablePluggedIn")
        if self.online and self.cp is not None:
            self._spawn(self.notify_ev_charging_needs())
        if self.authorized_token is not None and self.tx_id is None:
            tok, self.authorized_token = self.authorized_token, None      # E03: authorized first, then plug
            await self.start_transaction(id_token=tok, trigger="CablePluggedIn",
                                         remote_start_id=self.pending_remote_start_id)
        elif self.tx_id is None and not was and "EVConnected" in self.device.get("TxCtrlr", "TxStartPoint").split(","):
            # E01: TxStartPoint EVConnected: the transaction starts with the cable, before any authorization
            await self.start_transaction(id_token=None, trigger="CablePluggedIn", token_known=False)
        return {"plugged": True}

    async def unplug(self) -> dict:
        if self.tx_id:
            await self.stop_transaction(reason="EVDisconnected", trigger="EVCommunicationLost")
        self.plugged = False
        await self._safe_status()
        return {"plugged": False}

    async def present_token(self, id_token: str = "LAB-TOKEN", token_type: str = "ISO14443") -> dict:
        """A driver presents an RFID card: Authorize; accepted -> start (plugged) or remember (E03), or
        stop the running transaction when it is the same token (E06/E15)."""
        tok = {"idToken": id_token, "type": token_type}
        if self.tx_id is not None and self.id_token and self.id_token.get("idToken") == id_token:
            return await self.stop_transaction(reason="Local", trigger="StopAuthorized")
        status = "Accepted"
        if self.online:
            r = await self._call("Authorize", id_token={"id_token": id_token, "type": token_type})
            status = r.id_token_info["status"]
        if status != "Accepted":
            return {"authorized": False, "status": status}
        if self.tx_id is None and (self.plugged or self._starts_at_authorization()):
            return {**await self.start_transaction(id_token=tok, trigger="Authorized", plug=False), "authorized": True}
        self.authorized_token = tok
        return {"authorized": True, "status": status, "waiting_for": "plug_in"}

    def _starts_at_authorization(self) -> bool:
        return "Authorized" in self.device.get("TxCtrlr", "TxStartPoint").split(",")

    async def start_transaction(self, *, id_token: dict | None = None, remote_start_id: int | None = None,
                                trigger: str = "Authorized", plug: bool = True, token_known: bool = True) -> dict:
        if self.tx_id is not None:
            return {"transaction_id": self.tx_id, "already": True}
        if plug and not self.plugged:       # the lab's shortcut: a transaction op brings its own EV
            self.plugged = True
            await self._safe_status()
        self.tx_id = str(uuid.uuid4())
        self.tx_start = utcnow()
        self.seq_no = 0
        self.id_token = (id_token or {"idToken": "LAB-TOKEN", "type": "Local"}) if token_known else None
        self.remote_start_id = remote_start_id
        self.pending_remote_start_id = None
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
        self.ended_tx_ids.append(tx)
        self.profiles.clear_tx_profiles()
        if self.reset_pending:
            self.reset_pending = False
            self._spawn(self.do_reset())
        return {"stopped": True, "transaction_id": tx, "seq_no": ev["seq_no"]}

    async def _periodic_meter(self, tx_id: str) -> None:
        while self.tx_id == tx_id:
            # the lab's (possibly sub-second) interval until the CSMS writes TxUpdatedInterval
            interval = (float(self.device.get("SampledDataCtrlr", "TxUpdatedInterval"))
                        if self.device.vars[("SampledDataCtrlr", "TxUpdatedInterval")].written
                        else self.cfg.meter_interval_s)
            if interval <= 0:                 # 0: no periodic meter values (re-read each second)
                await asyncio.sleep(1.0)
                continue
            await asyncio.sleep(interval)
            if self.tx_id == tx_id:
                self.queue_tx_event("Updated", "MeterValuePeriodic")

    # -- F remote control ----------------------------------------------------------------------------
    def remote_start(self, id_token: dict, remote_start_id: int, evse_id, profile: dict | None) -> str:
        if self.tx_id is not None or evse_id not in (None, self.cfg.evse_id) or not self.operative:
            return "Rejected"
        if profile:
            if profile.get("chargingProfilePurpose") != "TxProfile":
                return "Rejected"        # K05.FR.02: only a TxProfile may come with a remote start
            self.pending_remote_profile = profile
        if self.plugged or self._starts_at_authorization():
            self._spawn(self._remote_start(id_token, remote_start_id))
        else:
            # F02: authorized remotely before the EV is plugged in; the transaction starts at plug-in
            self.authorized_token = id_token
            self.pending_remote_start_id = remote_start_id
        return "Accepted"

    async def _remote_start(self, id_token: dict, remote_start_id: int) -> None:
        await asyncio.sleep(0.05)       # our RequestStartTransactionResponse goes out first
        if self.device.get("AuthCtrlr", "AuthorizeRemoteStart") == "true" and self.online:
            # F01/F02: AuthorizeRemoteStart = true -> the station authorizes the remote token first
            r = await self._call("Authorize", id_token={"id_token": id_token["idToken"], "type": id_token["type"]})
            if r.id_token_info["status"] != "Accepted":
                self.pending_remote_profile = None
                return
        await self.start_transaction(id_token=id_token, remote_start_id=remote_start_id, trigger="RemoteStart")

    def remote_stop(self, transaction_id: str) -> str:
        if self.tx_id is None or transaction_id != self.tx_id:
            return "Rejected"
        self._spawn(self.stop_transaction(reason="Remote", trigger="RemoteStop"))
        return "Accepted"

    def unlock(self, evse_id: int, connector_id: int) -> str:
        if (evse_id, connector_id) != (self.cfg.evse_id, self.cfg.connector_id):
            return "UnknownConnector"
        if self.tx_id is not None and not self.defects.on("unlock_during_transaction"):
            return "OngoingAuthorizedTransaction"      # F05.FR.02
        if self.tx_id is not None:
            self._spawn(self.stop_transaction(reason="Other", trigger="UnlockCommand"))
        return "Unlocked"

    def transaction_status(self, transaction_id: str | None) -> dict:
        """E14: ongoingIndicator only when a transaction id is given; messagesInQueue for it / any."""
        if transaction_id is None:
            return {"messages_in_queue": bool(self.outbox)}
        queued = any(p.get("transaction_info", {}).get("transaction_id") == transaction_id for _, p in self.outbox)
        ongoing = transaction_id == self.tx_id and not self.defects.on("transaction_status_wrong")
        return {"messages_in_queue": queued, "ongoing_indicator": ongoing}

    def trigger(self, what: str, evse: dict | None) -> str:
        """F06: known messages Accepted and sent after the answer; BootNotification after an accepted
        boot Rejected (F06.FR.17); anything else NotImplemented."""
        if evse is not None and evse.get("id") not in (self.cfg.evse_id,):
            return "Rejected"
        known = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent",
                 "LogStatusNotification", "FirmwareStatusNotification"}
        if what not in known:
            return "NotImplemented"
        if what == "BootNotification" and self.boot_accepted:
            return "Rejected"
        if what == "TransactionEvent" and self.tx_id is None and evse is not None:
            return "Rejected"
        if not self.defects.on("trigger_not_sent"):
            self._spawn(self.triggered(what))
        return "Accepted"

    async def triggered(self, what: str) -> None:
        await asyncio.sleep(0.05)          # after our CALLRESULT has gone out (F06.FR.06)
        if what == "BootNotification":
            self.boot_reason = "Triggered"
            await self.boot()
        elif what == "Heartbeat" and self.defects.on("duplicate_message_id"):
            for _ in range(2):          # the same messageId twice: OCPP-J ids of CALLs are unique
                await self.cp._send(json.dumps([2, "dup-heartbeat-1", "Heartbeat", {}]))
        elif what == "Heartbeat":
            await self._call("Heartbeat")
        elif what == "StatusNotification" and self.defects.on("invalid_frame"):
            await self.send_invalid_status()
        elif what == "StatusNotification":
            await self.send_status()
        elif what == "MeterValues":
            await self._call("MeterValues", evse_id=self.cfg.evse_id, meter_value=self.sampled_values("Trigger"))
        elif what == "TransactionEvent" and self.tx_id:
            self.queue_tx_event("Updated", "Trigger", context="Trigger")
        elif what == "LogStatusNotification":
            await self._call("LogStatusNotification", status="Idle")
        elif what == "FirmwareStatusNotification":
            await self._call("FirmwareStatusNotification", status="Idle")
