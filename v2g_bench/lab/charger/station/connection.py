"""The station's link to the CSMS: connect (security profiles 1-3), boot, heartbeat, status, the
reconnect loop with OCPP's retry back-off, and the lab's network cut/restore.

- `connect` (control op) is the station being configured and powered up: it boots (PowerUp).
- A lost connection is re-established with the back-off of 2.0.1 Part 4 section 5.3
  (RetryBackOffWaitMinimum * 2^n, n capped at RetryBackOffRepeatTimes, plus 0..RetryBackOffRandomRange);
  the station does not boot again (its boot was accepted) but re-sends its connector status when
  it was offline longer than OfflineThreshold (B04.FR.01) or the status changed meanwhile (B04.FR.02).
- After a reset the station reboots: it reconnects at once and boots with reason RemoteReset.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import ssl
import time
import uuid

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from v2g_bench.csms.validation import SUBPROTOCOLS
from v2g_bench.errors import BenchError

from .charge_point import charge_point_class
from .config import iso_ms, utcnow

log = logging.getLogger("v2g_bench.lab.station")


class ConnectionMixin:
    # -- control ops ----------------------------------------------------------------------------
    async def connect(self, url: str, *, security_profile: int = 1, password: str | None = None,
                      ca_cert: str | None = None, client_cert: str | None = None, client_key: str | None = None,
                      ocpp_version: str | None = None, timeout_s: float = 10.0, subprotocols: list[str] | None = None,
                      reconnect: bool = True) -> dict:
        """Connect (and keep reconnecting until disconnect()); waits for the first boot result."""
        if ocpp_version:
            self.version = ocpp_version
        self._connect_args = dict(url=url, security_profile=security_profile, password=password, ca_cert=ca_cert,
                                  client_cert=client_cert, client_key=client_key, subprotocols=subprotocols)
        self.security_profile = security_profile
        self.device.put("SecurityCtrlr", "SecurityProfile", str(security_profile))
        self._stopping = False
        self._connections = 0                 # connections since this connect (defect no_basic_auth: 2nd on)
        self._reconnect = reconnect
        self.network_up = True
        self.boot_accepted = False          # a (re)configured station boots
        self.boot_reason = "PowerUp"
        if self._conn_task is not None and not self._conn_task.done() and not self.online:
            # a loop left mid back-off / mid a rejected boot by the previous test (or a profile slot that
            # cannot connect) would answer with its stale first result: a (re)configured station starts over
            self._conn_task.cancel()
            await asyncio.gather(self._conn_task, return_exceptions=True)
        if self._conn_task is None or self._conn_task.done():
            self._first_result = asyncio.get_running_loop().create_future()
            self._conn_task = asyncio.ensure_future(self._connection_loop())
        try:
            return await asyncio.wait_for(asyncio.shield(self._first_result), timeout_s)
        except asyncio.TimeoutError:
            raise BenchError(f"station did not connect to {url} within {timeout_s:g} s", where="station.connect")

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

    async def cut_network(self) -> dict:
        """The lab pulls the station's network: the connection drops without a close handshake and
        reconnect attempts fail until restore_network."""
        self.network_up = False
        self.online = False             # at once: what is queued from now on is queued offline
        if self.ws is not None:
            self.ws.transport.abort()
        return {"network": "down", "queued": len(self.outbox)}

    async def restore_network(self) -> dict:
        self.network_up = True          # the next attempt of the back-off schedule gets through
        return {"network": "up"}

    # -- the loop -------------------------------------------------------------------------------
    def backoff_s(self, attempt: int) -> float:
        dm = self.device
        wait_min = int(dm.get("OCPPCommCtrlr", "RetryBackOffWaitMinimum"))
        rand = int(dm.get("OCPPCommCtrlr", "RetryBackOffRandomRange"))
        repeat = int(dm.get("OCPPCommCtrlr", "RetryBackOffRepeatTimes"))
        return wait_min * 2 ** min(attempt, repeat) + random.uniform(0, rand)

    def _ssl(self, a) -> ssl.SSLContext | None:
        if not a["url"].startswith("wss"):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=a["ca_cert"])
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if a["client_cert"]:
            ctx.load_cert_chain(a["client_cert"], a["client_key"])
        return ctx

    def _slot_order(self) -> list[int]:
        order = [int(x) for x in self.device.get("OCPPCommCtrlr", "NetworkConfigurationPriority").split(",")
                 if x.strip().isdigit()]
        return order or [0]

    def _slot_connect_args(self) -> tuple[int, dict]:
        """B09/B10: the connection profile to try now: NetworkConfigurationPriority in order, slot 0 being the
        lab's configured connection; a slot is left for the next after NetworkProfileConnectionAttempts failed
        attempts (and the list starts over after the last)."""
        order = self._slot_order()
        idx = getattr(self, "_slot_idx", 0) % len(order)
        slot = order[idx]
        data = self.network_profiles.get(slot)
        if slot == 0 or data is None:
            return slot, self._connect_args
        a = dict(self._connect_args)
        a.update(url=data["ocppCsmsUrl"], security_profile=int(data.get("securityProfile", 1)), subprotocols=None)
        return slot, a

    def _slot_failed(self, slot: int) -> None:
        if len(self._slot_order()) < 2:
            return
        self._slot_failures = getattr(self, "_slot_failures", 0) + 1
        if (self._slot_failures >= int(self.device.get("OCPPCommCtrlr", "NetworkProfileConnectionAttempts"))
                and not self.defects.on("no_network_fallback")):
            self._slot_idx = getattr(self, "_slot_idx", 0) + 1
            self._slot_failures = 0
            self.errors.append(f"network profile slot {slot}: giving up, next slot")

    def _restart_slots(self) -> None:
        self._slot_idx = 0
        self._slot_failures = 0

    async def _connection_loop(self) -> None:
        attempt = 0
        while not self._stopping:
            slot, a = self._slot_connect_args()
            connected_now = False
            url = a["url"].rstrip("/")
            if not url.endswith("/" + self.cfg.station_id):
                url = f"{url}/{self.cfg.station_id}"
            headers = {}
            drop_auth = self.defects.on("no_basic_auth") and getattr(self, "_connections", 0) > 0
            if a["security_profile"] in (1, 2) and a["password"] is not None and not drop_auth:
                tok = base64.b64encode(f"{self.cfg.station_id}:{a['password']}".encode()).decode()
                headers["Authorization"] = f"Basic {tok}"
            subs = a["subprotocols"] if a["subprotocols"] is not None else [SUBPROTOCOLS[self.version]]
            self.connect_attempts.append(time.monotonic())
            del self.connect_attempts[:-100]
            try:
                if not self.network_up:
                    raise OSError("network down (lab)")
                async with connect(url, subprotocols=subs, additional_headers=headers, ssl=self._ssl(a),
                                   open_timeout=5, ping_interval=None, max_size=2 ** 20) as ws:
                    self.ws = ws
                    self._connections = getattr(self, "_connections", 0) + 1
                    connected_now = True
                    self._slot_failures = 0
                    self.active_slot = slot
                    attempt = 0
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
                if self.ws is not None:
                    self.offline_since = time.monotonic()
                    self.status_at_offline = self.connector_status()
                self.ws = None
                self.cp = None
                self.online = False
                self.connected.clear()
            if not connected_now:
                self._slot_failed(slot)
            if self._stopping or not self._reconnect:
                break
            if self._reboot_now:
                self._reboot_now = False          # a reboot reconnects at once
                continue
            wait = self.backoff_s(attempt)
            attempt += 1
            await asyncio.sleep(wait)

    async def _session(self, ws) -> None:
        cp = charge_point_class(self.version)(self.cfg.station_id, ws, response_timeout=self.cfg.call_timeout_s)
        cp.station = self
        self.cp = cp
        reader = asyncio.ensure_future(cp.start())
        try:
            self.connected.set()
            if not self.boot_accepted:
                await self.boot()
            else:
                self.online = True
                await self._after_reconnect()
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

    async def _after_reconnect(self) -> None:
        offline_s = time.monotonic() - (self.offline_since or time.monotonic())
        threshold = float(self.device.get("OCPPCommCtrlr", "OfflineThreshold"))
        if self.defects.on("offline_threshold_ignored"):
            threshold = float("inf")
        if (offline_s > threshold or self.connector_status() != self.status_at_offline
                or self.defects.on("status_always_after_reconnect")):
            await self.send_status()      # B04: all after a long offline period, else only what changed
        if self.defects.on("drop_offline_queue"):
            self.outbox[:] = [(a, p) for a, p in self.outbox if not p.get("_queued_offline")]
        self.outbox_wakeup.set()

    async def _call(self, action: str, **kw):
        if self.cp is None:
            raise ConnectionError(f"{action}: the station is offline")
        payload = getattr(self.cp.call_module, action)(**kw)
        return await self.cp.call(payload, suppress=False)

    async def boot(self) -> None:
        for _ in range(5):
            r = await self._call("BootNotification", reason=self.boot_reason,
                                 charging_station={"model": self.cfg.model, "vendor_name": self.cfg.vendor})
            self.boot_status = r.status
            if r.status == "Accepted":
                self.boot_accepted = True
                self.online = True
                self.device.put("OCPPCommCtrlr", "HeartbeatInterval", str(r.interval))
                if not self.defects.on("no_status_after_boot"):
                    await self.send_status()
                if self.boot_reason == "RemoteReset":
                    await self.security_event("ResetOrReboot", "reset requested by the CSMS")
                self.boot_reason = "PowerUp"
                self.resume_after_boot()
                self.outbox_wakeup.set()
                return
            await asyncio.sleep(min(max(r.interval, 1), 5))

    async def send_invalid_status(self) -> None:
        """Defect invalid_frame: a StatusNotification without its required evseId (bad input for the CSMS)."""
        await self.cp._send(json.dumps([2, str(uuid.uuid4()), "StatusNotification", {
            "timestamp": iso_ms(utcnow()), "connectorStatus": self.connector_status(), "connectorId": 1}]))

    async def security_event(self, kind: str, info: str) -> None:
        """A05/A04: security events go to the CSMS (queued-free: sent while online, else logged)."""
        self.security_events.append(kind)
        if self.defects.on("missing_security_event") or self.cp is None:
            return
        await self._safe(self._call("SecurityEventNotification", type=kind, timestamp=iso_ms(utcnow()),
                                    tech_info=info[:255]))

    def connector_status(self) -> str:
        if not self.operative:
            return "Unavailable"
        return "Occupied" if self.plugged else "Available"

    async def send_status(self) -> None:
        if not self.online:
            return
        await self._call("StatusNotification", timestamp=iso_ms(utcnow()), connector_status=self.connector_status(),
                         evse_id=self.cfg.evse_id, connector_id=self.cfg.connector_id)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(float(self.device.get("OCPPCommCtrlr", "HeartbeatInterval")))
            await self._call("Heartbeat")

    async def _safe_status(self):
        try:
            if self.online:
                await self.send_status()
        except (ConnectionClosed, ConnectionError, asyncio.TimeoutError):
            pass

    async def _safe(self, coro):
        try:
            return await coro
        except Exception as e:
            self.errors.append(repr(e))
            log.warning("station: %r", e)
