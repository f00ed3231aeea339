"""The `dut` role on a real bench: a charger reached over OCPP (through the bench's CSMS emulator) and
the bench's own instruments, with the operator / EV-side board performing what the lab does by op.

There is no back door into a real charger: what the virtual lab's `virtual_lab_dut` does through its
control port is done here through the charger's public interfaces:

- `connect_ocpp(url, ...)`: the charger is configured (once, by the operator) to reach the bench's CSMS
  at [roles.csms] host:port/station_id; this waits for it to connect, and when it already is connected
  asks it for a fresh BootNotification (TriggerMessage), so a case starts from a booted station;
- `plug_in` / `unplug` / ...: through the DUT actions (v2g_bench.dut.actions: EV-side board, operator);
- `safe_state`: no transaction left running (RequestStopTransaction for what the CSMS saw started) and,
  verified by the analyzer when the bench has one open, no DC power flowing.
"""
from __future__ import annotations

import time
from typing import ClassVar

from v2g_bench.errors import BenchError, SafeStateError
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver


class OcppCharger(RoleDriver):
    roles: ClassVar[tuple[str, ...]] = ("dut",)
    transport: ClassVar[str] = "ocpp"
    description = "a real charger under test: OCPP through the bench's CSMS role + DUT actions (board/operator)"

    def __init__(self, ctx: BenchContext, *, identity: str, station_id: str, connect_timeout_s: float,
                 idle_power_w: float):
        self.ctx = ctx
        self._identity = identity
        self.station_id = station_id
        self.connect_timeout_s = connect_timeout_s
        self.idle_power_w = idle_power_w

    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        t = cfg.options.get("connect_timeout_s", 120.0)
        return [] if isinstance(t, (int, float)) and t > 0 else [f"{cfg.where('connect_timeout_s')}: must be > 0 s"]

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext) -> "OcppCharger":
        d = ctx.dut
        ident = f"{d.vendor},{d.model},{d.serial},{d.firmware}" if d is not None else "charger under test (no DUT profile)"
        station_id = cfg.options.get("station_id")
        if station_id is None and ctx.bench is not None and "csms" in ctx.bench.roles:
            station_id = ctx.bench.roles["csms"].options.get("station_id")
        if not station_id:
            raise BenchError("no station_id for the charger", where=cfg.where("station_id"),
                             fix="set station_id here or in [roles.csms]")
        return cls(ctx, identity=ident, station_id=str(station_id),
                   connect_timeout_s=float(cfg.options.get("connect_timeout_s", 120.0)),
                   idle_power_w=float(cfg.options.get("idle_power_w", 50.0)))

    def identify(self) -> str:
        return f"{self._identity} (station {self.station_id}, over OCPP)"

    def _csms(self):
        roles = self.ctx.roles
        if roles is None or not roles.has_role("csms"):
            raise BenchError("the dut role needs the bench's csms role to reach the charger",
                             fix="add [roles.csms] (driver ocpp_csms) to the bench profile")
        return roles.role("csms")

    def connect_ocpp(self, url: str, *, security_profile: int = 1, password: str | None = None,
                     ocpp_version: str | None = None, **_tls) -> dict:
        csms = self._csms()
        if self.station_id in csms.stations():
            # a fresh BootNotification: TriggerMessage may be refused once booted (2.0.1 F06.FR.17), then a Reset
            ans = csms.trigger_message("BootNotification", station=self.station_id)
            if str(ans.get("status")) == "Accepted":
                return {"connected": True, "how": "already connected: TriggerMessage(BootNotification)"}
            csms.reset("Immediate", station=self.station_id)
            csms.wait_for_disconnect(self.station_id, timeout=self.connect_timeout_s)
            csms.wait_for_station(self.station_id, timeout=self.connect_timeout_s)
            return {"connected": True, "how": f"TriggerMessage {ans.get('status')}: Reset(Immediate), reconnected"}
        try:
            csms.wait_for_station(self.station_id, timeout=self.connect_timeout_s)
        except Exception as e:  # noqa: BLE001 - said as what the operator must fix
            raise BenchError(f"the charger {self.station_id!r} did not connect to {url} within "
                             f"{self.connect_timeout_s:g} s ({e})", where="dut.connect_ocpp",
                             fix=f"configure the charger's CSMS URL to {url} (security profile {security_profile}"
                                 f"{', OCPP ' + ocpp_version if ocpp_version else ''}) and restart it") from None
        return {"connected": True, "how": "the charger connected"}

    def safe_state(self) -> None:
        """No transaction left, and no DC power on the analyzer (when the bench has one open)."""
        roles = self.ctx.roles
        problems = []
        opened = dict(getattr(roles, "opened", []) or [])
        csms = opened.get("csms")
        if csms is not None and self.station_id in csms.stations():
            try:
                for tx in open_transactions(csms, self.station_id):
                    csms.request_stop_transaction(tx, station=self.station_id)
            except Exception as e:  # noqa: BLE001 - the power check below is what matters
                problems.append(f"RequestStopTransaction: {e}")
        analyzer = opened.get("analyzer")
        if analyzer is not None:
            deadline = time.monotonic() + 10.0
            p = analyzer.read()[1].power_w
            while abs(p) > self.idle_power_w and time.monotonic() < deadline:
                time.sleep(0.2)
                p = analyzer.read()[1].power_w
            if abs(p) > self.idle_power_w:
                problems.append(f"DC power still {p:.0f} W on the analyzer 10 s after the unwind")
        if problems:
            raise SafeStateError("; ".join(problems), where=self.identify(),
                                 fix="press the charger's emergency stop and check it by hand")

    def close(self) -> None:
        return None


def open_transactions(csms, station_id: str) -> list[str]:
    """Transaction IDs the CSMS saw Started and not Ended from `station_id` (from its recorded frames)."""
    open_: dict[str, None] = {}
    for f in csms.frames:
        if f.station != station_id or f.direction != "in" or f.action != "TransactionEvent" or f.msg_type != 2:
            continue
        p = f.payload or {}
        tx = (p.get("transactionInfo") or {}).get("transactionId")
        if tx is None:
            continue
        if p.get("eventType") == "Ended":
            open_.pop(tx, None)
        else:
            open_[tx] = None
    return list(open_)
