"""The simulated station as a lab service: its state, its control-port ops, and `start_service`."""
from __future__ import annotations

import asyncio
import math
import datetime as dt

from v2g_bench.errors import BenchError
from v2g_bench.lab.charger.coupling import charger_for
from v2g_bench.lab.charger.profile_stack import ProfileStack
from v2g_bench.lab.charger.station_defects import Defects

from .certificates import CertificatesMixin
from .charge_point import charge_point_class
from .config import CLOCK, StationConfig
from .connection import ConnectionMixin
from .der import DerControls
from .device_model import DeviceModel
from .provisioning import ProvisioningMixin
from .smart_charging import SmartChargingMixin
from .transactions import TransactionsMixin


class StationService(ConnectionMixin, TransactionsMixin, SmartChargingMixin, ProvisioningMixin, CertificatesMixin):
    """The simulated station; its methods back the control-port ops."""

    def __init__(self, plant, cfg: StationConfig):
        self.plant, self.cfg = plant, cfg
        self.version = cfg.ocpp_version
        self.defects = Defects(cfg.defects)
        self.device = DeviceModel(cfg)
        self.der = DerControls(accept_unsupported=lambda: self.defects.on("accept_invalid_der_control"))
        self.profiles = ProfileStack()
        # connection
        self.cp = None
        self.ws = None
        self.connected = asyncio.Event()
        self.online = False                   # connected and booted: messages may go out
        self.boot_accepted = False
        self.boot_status = None
        self.boot_status: str | None = None
        self.boot_reason = "PowerUp"
        self.network_up = True
        self.security_profile = 1
        self.network_profiles: dict[int, dict] = {}
        self.security_events: list[str] = []
        self.connect_attempts: list[float] = []
        self.offline_since: float | None = None
        self.status_at_offline: str | None = None
        self.resets = 0
        self._reboot_now = False
        self._conn_task: asyncio.Task | None = None
        self._connect_args: dict | None = None
        self._stopping = False
        self._reconnect = True
        # transactions
        self.plugged = False
        self.operative = True
        self.tx_id: str | None = None
        self.tx_start: dt.datetime | None = None
        self.ended_tx_ids: list[str] = []
        self.seq_no = 0
        self.remote_start_id: int | None = None
        self.pending_remote_start_id: int | None = None
        self.id_token: dict | None = None
        self.authorized_token: dict | None = None
        self.pending_remote_profile: dict | None = None
        self.outbox: list[tuple[str, dict]] = []            # (action, snake_case payload), FIFO
        self.outbox_wakeup = asyncio.Event()
        self.sent_tx_events: list[dict] = []
        self.reset_pending = False
        self.tx_limit: dict = {}                 # 2.1 transactionLimit from the CSMS (snake_case keys)
        self.tx_start_import_wh = 0.0
        self.resume_tx: str | None = None        # a transaction kept over a power loss / reset (E17, B13)
        self.last_target_w = 0.0
        self.errors: list[str] = []
        self._tasks: list[asyncio.Task] = []
        self.ev_needs_sent: list[dict] = []
        self.ev_tx_id: str | None = None
        # the coupling to the SECC: one charger per plant, shared with v2g_bench.lab.charger.secc
        self.charger = charger_for(plant)
        self.charger.set_rating("station", cfg.max_charge_w, cfg.max_discharge_w)
        self.charger.set_limits_provider(self.current_window, self._composite_windows)
        self.charger.add_listener(self._on_charger_event)

    @property
    def booted(self) -> bool:
        return self.online

    async def clear(self) -> dict:
        """A clean station for the next test (the lab's factory reset): offline queue, transaction,
        installed profiles, DER controls, device-model changes and switched defects dropped, stage to 0
        and open if the station drove it. Not an OCPP action."""
        dropped = len(self.outbox)
        self.outbox.clear()
        CLOCK["offset_s"] = 0.0
        tx = self.tx_id
        if tx is not None and not self.charger.session_active:
            self.plant.set_power_setpoint(0.0)
            self.plant.set_contactor(False)
        self.tx_id = self.ev_tx_id = self.resume_tx = None
        self.tx_start, self.seq_no, self.last_target_w = None, 0, 0.0
        self.tx_limit = {}
        self.profiles.installed.clear()
        self.der.controls.clear()
        self.device = DeviceModel(self.cfg)
        self.defects.reset()
        self.network_profiles.clear()
        self._restart_slots()
        self.security_events.clear()
        self._certs = {"pending": {}, "installed": {}, "retry": {}}
        self.pending_remote_profile, self.reset_pending = None, False
        self.authorized_token = self.pending_remote_start_id = None
        self.operative = True
        self.network_up = True
        self.plugged = self.charger.session_active
        return {"dropped_queued": dropped, "dropped_transaction": tx}

    def status(self) -> dict:
        w = self.current_window()
        return {"connected": self.connected.is_set(), "booted": self.online, "boot_status": self.boot_status,
                "version": self.version, "transaction_id": self.tx_id, "seq_no": self.seq_no,
                "queued": len(self.outbox), "sent_tx_events": len(self.sent_tx_events), "plugged": self.plugged,
                "target_w": self.last_target_w, "window": [w.lo_w, w.hi_w, w.setpoint_w],
                "profiles": [p for _, p in self.profiles.installed], "errors": self.errors[-10:],
                "charger": self.charger.status(), "ev_needs_sent": self.ev_needs_sent[-3:],
                "defects": sorted(self.defects.active), "network_up": self.network_up,
                "security_events": self.security_events[-10:], "resets": self.resets}

    async def set_defects(self, set: list | None = None) -> dict:   # noqa: A002 - the op's argument name
        if set is not None:
            self.defects.set(set)
        return self.defects.listing()

    async def power_cycle(self, off_s: float = 0.0) -> dict:
        """The lab switches the station off and on: the connection drops, the running transaction
        ends (PowerLoss) or is kept for resumption (TxResumptionTimeout), the station boots again (PowerUp)
        after `off_s` seconds off."""
        import time
        self.power_lost_at = time.monotonic()
        if off_s > 0:
            self.network_up = False            # off: no connection until it is switched on again

            async def switch_on():
                await asyncio.sleep(float(off_s))
                self.network_up = True
            self._spawn(switch_on())
        if self.tx_id:
            await self.lose_power_during_transaction()
        self.boot_accepted = False
        self.boot_status = None
        self.boot_reason = "PowerUp"
        if self.ws is not None:
            self._reboot_now = True
            self.ws.transport.abort()
        return {"power_cycled": True, "queued": len(self.outbox)}

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


async def start_service(plant, cfg: dict, ctx) -> StationService:
    """Lab service entry point: build the station and register its control-port ops."""
    svc = StationService(plant, StationConfig.from_dict(cfg))
    for version in ("2.0.1", "2.1"):      # import the library's version modules now, not in a test's connect
        charge_point_class(version)
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

    async def op_clock_step(dt_s: float):
        """Fault: the station's wall clock jumps by dt_s (its timestamps from now on); station.clear undoes it."""
        if isinstance(dt_s, bool) or not isinstance(dt_s, (int, float)) or not math.isfinite(dt_s):
            raise BenchError(f"station.clock_step: dt_s must be a finite number of seconds, got {dt_s!r}",
                             where="station.clock_step")
        CLOCK["offset_s"] += float(dt_s)
        return {"clock_offset_s": CLOCK["offset_s"]}

    async def op_needs():
        return await svc.notify_ev_charging_needs()

    for name, fn in {"station.connect": op_connect, "station.disconnect": svc.disconnect,
                     "station.plug_in": svc.plug_in, "station.unplug": svc.unplug,
                     "station.present_token": svc.present_token,
                     "station.start_transaction": op_start, "station.stop_transaction": op_stop,
                     "station.status": op_status, "station.notify_ev_needs": op_needs,
                     "station.cut_network": svc.cut_network, "station.restore_network": svc.restore_network,
                     "station.power_cycle": svc.power_cycle, "station.defects": svc.set_defects,
                     "station.clock_step": op_clock_step, "station.clear": svc.clear}.items():
        ctx.register_op(name, fn)
    return svc
