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
                       stopped_reason: str | None = None, charging_state: str | None = None) -> dict:
        state = charging_state or ("EVConnected" if event_type == "Ended" else self.charging_state())
        ev: dict[str, Any] = {"event_type": event_type, "timestamp": iso_ms(utcnow()), "trigger_reason": trigger,
                              "seq_no": self.seq_no,
                              "transaction_info": {"transaction_id": self.tx_id, "charging_state": state},
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
            attempts = 0
            while self.outbox and self.online and self.cp is not None:
                action, payload = self.outbox[0]
                wire = {k: v for k, v in payload.items() if not k.startswith("_")}
                try:
                    r = await self._call(action, **wire)
                except (ConnectionClosed, ConnectionError):
                    return                      # still at the head: retried after reconnecting
                except Exception as e:          # no answer in MessageTimeout, or a CALLERROR
                    if action != "TransactionEvent":
                        if isinstance(e, asyncio.TimeoutError):
                            return
                        self.errors.append(f"{action}: {e!r}")
                    else:
                        # E13: sent again after MessageAttemptInterval x attempts so far, MessageAttempts in all,
                        # then discarded (the same event: same seqNo, a new messageId)
                        attempts += 1
                        total = int(self.device.get("OCPPCommCtrlr", "MessageAttempts"))
                        if attempts < total and not self.defects.on("no_tx_message_retry"):
                            await asyncio.sleep(int(self.device.get("OCPPCommCtrlr", "MessageAttemptInterval"))
                                                * attempts)
                            continue
                        self.errors.append(f"{action} seqNo {payload.get('seq_no')} discarded after {attempts} "
                                           f"attempt(s): {e!r}")
                    r = None
                attempts = 0
                self.outbox.pop(0)
                self.sent_tx_events.append(wire)
                del self.sent_tx_events[:-500]        # a long lab life: the last ones are enough
                if action == "TransactionEvent" and r is not None:
                    self._tx_event_answered(wire, r)

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
            await self.start_transaction(id_token=tok, trigger=self._start_trigger("CablePluggedIn"),
                                         remote_start_id=self.pending_remote_start_id)
        elif self.tx_id is None and not was and "EVConnected" in self.device.get("TxCtrlr", "TxStartPoint").split(","):
            # E01: TxStartPoint EVConnected: the transaction starts with the cable, before any authorization
            await self.start_transaction(id_token=None, trigger="CablePluggedIn", token_known=False)
        return {"plugged": True}

    async def unplug(self) -> dict:
        keep = (self.device.get("TxCtrlr", "StopTxOnEVSideDisconnect") == "false"
                and not self.defects.on("stop_on_unplug_always"))
        if self.tx_id and keep:
            # E10: the transaction stays, suspended (Idle: no EV) until the EV is back or it is stopped
            self.plugged = False
            if not self.charger.session_active:
                await self._plant("set_power_setpoint", 0.0)
            self.last_target_w = 0.0
            self.queue_tx_event("Updated", "EVCommunicationLost", charging_state="Idle")
        elif self.tx_id:
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
        if (self.device.get("AuthCtrlr", "DisableRemoteAuthorization") == "true"
                and not self.defects.on("authorize_despite_disabled")):
            # C/E03: only local means (no local list or cache here): an unknown token is not authorized
            return {"authorized": False, "status": "Unknown", "why": "DisableRemoteAuthorization"}
        if self.online:
            r = await self._call("Authorize", id_token={"id_token": id_token, "type": token_type})
            status = r.id_token_info["status"]
        if status != "Accepted":
            return {"authorized": False, "status": status}
        if self.tx_id is None and (self.plugged or self._starts_at_authorization()):
            trigger = "Authorized" if self._starts_at_authorization() else self._start_trigger("Authorized")
            return {**await self.start_transaction(id_token=tok, trigger=trigger, plug=False), "authorized": True}
        self.authorized_token = tok
        self._spawn(self._authorization_timeout(tok))
        return {"authorized": True, "status": status, "waiting_for": "plug_in"}

    def _tx_points(self, name: str = "TxStartPoint") -> set[str]:
        return set(self.device.get("TxCtrlr", name).split(","))

    def _starts_at_authorization(self) -> bool:
        return "Authorized" in self._tx_points() or self.defects.on("ignore_tx_start_point")

    def _start_trigger(self, default: str) -> str:
        """E01: a transaction whose only start points are PowerPathClosed / EnergyTransfer begins when the
        power path closes (the EV plugged in and authorized): triggerReason ChargingStateChanged."""
        pts = self._tx_points()
        if pts & {"PowerPathClosed", "EnergyTransfer"} and not pts & {"ParkingBayOccupancy", "EVConnected",
                                                                        "Authorized", "DataSigned"}:
            return "ChargingStateChanged"
        return default

    def _connection_timeout_s(self) -> float:
        return float(self.device.get("TxCtrlr", "EVConnectionTimeOut"))

    async def _authorization_timeout(self, tok: dict) -> None:
        """E03/F02: authorized, but no EV within EVConnectionTimeOut: the authorization is dropped."""
        await asyncio.sleep(self._connection_timeout_s())
        if self.authorized_token is tok and not self.plugged and not self.defects.on("no_connection_timeout"):
            self.authorized_token = None
            self.pending_remote_start_id = None
            self.pending_remote_profile = None

    async def _tx_connection_timeout(self, tx_id: str) -> None:
        """E03/E06 (E_39, F_04): a transaction started at authorization ends when no EV is plugged in within
        EVConnectionTimeOut (triggerReason EVConnectTimeout, stoppedReason Timeout)."""
        await asyncio.sleep(self._connection_timeout_s())
        if self.tx_id == tx_id and not self.plugged and not self.defects.on("no_connection_timeout"):
            await self.stop_transaction(reason="Timeout", trigger="EVConnectTimeout")

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
        self.tx_limit = {}
        self.tx_start_import_wh = self.meter()["import_wh"]
        self.queue_tx_event("Started", trigger, context="Transaction.Begin")
        self.apply_now()
        self._tasks.append(asyncio.ensure_future(self._periodic_meter(self.tx_id)))
        if not self.plugged:
            self._spawn(self._tx_connection_timeout(self.tx_id))
        return {"transaction_id": self.tx_id}

    # -- answers to TransactionEvents: deauthorization (E05/E_16), transaction limits (2.1 E16) --------
    def _tx_event_answered(self, sent: dict, r) -> None:
        tx = (sent.get("transaction_info") or {}).get("transaction_id")
        if tx is None or tx != self.tx_id:
            return
        info = getattr(r, "id_token_info", None) or {}
        if info.get("status") not in (None, "Accepted") and not self.defects.on("ignore_deauthorization"):
            if self.device.get("TxCtrlr", "StopTxOnInvalidId") == "true":
                self._spawn(self.stop_transaction(reason="DeAuthorized", trigger="Deauthorized"))
            else:
                self.queue_tx_event("Updated", "Deauthorized", charging_state="SuspendedEVSE")
        limit = getattr(r, "transaction_limit", None)
        if limit and self.version == "2.1":
            self.tx_limit = dict(limit)
            if not self.defects.on("ignore_transaction_limit"):
                self._spawn(self._watch_limits(tx))

    async def _watch_limits(self, tx: str) -> None:
        """2.1 E16: the transaction ends when it reaches the CSMS's maxEnergy / maxTime."""
        while self.tx_id == tx:
            lim = self.tx_limit
            if lim.get("max_time") is not None and (utcnow() - self.tx_start).total_seconds() >= lim["max_time"]:
                await self.stop_transaction(reason="TimeLimitReached", trigger="TimeLimitReached")
                return
            if lim.get("max_energy") is not None and (
                    self.meter()["import_wh"] - self.tx_start_import_wh) >= lim["max_energy"]:
                await self.stop_transaction(reason="EnergyLimitReached", trigger="EnergyLimitReached")
                return
            await asyncio.sleep(0.1)

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
        if not self.operative and not self.defects.on("scheduled_availability_silent"):
            self._spawn(self._safe_status())       # G03/G04: the scheduled change takes effect now
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

    async def lose_power_during_transaction(self, *, resume_allowed: bool = True) -> None:
        """Power loss (or an ImmediateAndResume reset) during a transaction: with TxResumptionTimeout > 0 the
        transaction is kept and resumed after the reboot (2.1 E17 / B13: Updated, triggerReason TxResumed);
        otherwise it ends (PowerLoss, sent after the reboot)."""
        import time
        self.power_lost_at = time.monotonic()
        if self.defects.on("power_loss_tx_lost"):
            self.tx_id = None                    # gone without a trace: no Ended, no TxResumed
            self.resume_tx = None
            return
        if resume_allowed and int(self.device.get("TxCtrlr", "TxResumptionTimeout")) > 0:
            if not self.charger.session_active:
                await self._plant("set_power_setpoint", 0.0)
            self.last_target_w = 0.0
            self.resume_tx = self.tx_id
            return
        await self.stop_transaction(reason="PowerLoss", trigger="AbnormalCondition")

    def resume_after_boot(self) -> None:
        import time
        lost_for = time.monotonic() - (getattr(self, "power_lost_at", None) or time.monotonic())
        if (self.resume_tx is not None and self.resume_tx == self.tx_id
                and lost_for > int(self.device.get("TxCtrlr", "TxResumptionTimeout"))
                and not self.defects.on("resumption_timeout_ignored")):
            # E17: off longer than TxResumptionTimeout: the transaction is over (reported now)
            self.resume_tx = None
            self._spawn(self.stop_transaction(reason="PowerLoss", trigger="AbnormalCondition"))
            return
        if self.resume_tx is not None and self.resume_tx == self.tx_id:
            self.queue_tx_event("Updated", "TxResumed" if self.version == "2.1" else "AbnormalCondition")
            self.apply_now()
        self.resume_tx = None

    # -- F remote control ----------------------------------------------------------------------------
    def remote_start(self, id_token: dict, remote_start_id: int, evse_id, profile: dict | None) -> str:
        if self.tx_id is not None or evse_id not in (None, self.cfg.evse_id) or not self.operative:
            return "Rejected"
        if profile:
            if profile.get("chargingProfilePurpose") != "TxProfile":
                return "Rejected"        # K05.FR.02: only a TxProfile may come with a remote start
            if (self.device.get("SmartChargingCtrlr", "Enabled") == "true"
                    or self.defects.on("remote_start_profile_when_disabled")):
                self.pending_remote_profile = profile      # F01.FR.12: else ignored, the start goes ahead
        if self.plugged or self._starts_at_authorization():
            self._spawn(self._remote_start(id_token, remote_start_id))
        else:
            # F02: authorized remotely before the EV is plugged in; the transaction starts at plug-in
            self.authorized_token = id_token
            self.pending_remote_start_id = remote_start_id
            self._spawn(self._authorization_timeout(id_token))
        return "Accepted"

    async def _remote_start(self, id_token: dict, remote_start_id: int) -> None:
        await asyncio.sleep(0.05)       # our RequestStartTransactionResponse goes out first
        if self.device.get("AuthCtrlr", "AuthorizeRemoteStart") == "true" and self.online:
            # F01/F02: AuthorizeRemoteStart = true -> the station authorizes the remote token first
            r = await self._call("Authorize", id_token={"id_token": id_token["idToken"], "type": id_token["type"]})
            if r.id_token_info["status"] != "Accepted":
                self.pending_remote_profile = None
                return
        # the EV is not brought along (the lab's start_transaction op does that): F_04 waits for it in vain
        await self.start_transaction(id_token=id_token, remote_start_id=remote_start_id, trigger="RemoteStart",
                                     plug=False)

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
        if not self.plugged and self.defects.on("unlock_fails_without_cable"):
            return "UnlockFailed"
        if self.tx_id is not None:
            self._spawn(self.stop_transaction(reason="Other", trigger="UnlockCommand"))
        return "Unlocked"

    def transaction_status(self, transaction_id: str | None) -> dict:
        """E14: ongoingIndicator only when a transaction id is given; messagesInQueue for it / any."""
        wrong = self.defects.on("queue_status_wrong")
        if transaction_id is None:
            return {"messages_in_queue": bool(self.outbox) and not wrong}
        queued = not wrong and any(p.get("transaction_info", {}).get("transaction_id") == transaction_id
                                   for _, p in self.outbox)
        ongoing = transaction_id == self.tx_id and not self.defects.on("transaction_status_wrong")
        return {"messages_in_queue": queued, "ongoing_indicator": ongoing}

    def trigger(self, what: str, evse: dict | None, custom: str | None = None) -> str:
        """F06: known messages Accepted and sent after the answer; BootNotification after an accepted
        boot Rejected (F06.FR.17); anything else NotImplemented."""
        if evse is not None and evse.get("id") not in (self.cfg.evse_id,):
            return "Rejected"
        known = {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "TransactionEvent",
                 "LogStatusNotification", "FirmwareStatusNotification", "SignChargingStationCertificate",
                 "SignV2GCertificate"}
        if what not in known and not self.defects.on("trigger_accepts_unknown"):
            return "NotImplemented"            # incl. a 2.1 CustomTrigger this station does not define
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
        elif what == "Heartbeat" and self.defects.on("flood"):
            for i in range(60):         # a burst without waiting for answers (bad input for the CSMS)
                await self.cp._send(json.dumps([2, f"flood-{uuid.uuid4().hex[:8]}-{i}", "Heartbeat", {}]))
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
        elif what in ("SignChargingStationCertificate", "SignV2GCertificate"):
            from .certificates import KINDS
            self.start_certificate_request(KINDS[what])
        elif what == "LogStatusNotification":
            await self._call("LogStatusNotification", status="Idle")
        elif what == "FirmwareStatusNotification":
            await self._call("FirmwareStatusNotification", status="Idle")
