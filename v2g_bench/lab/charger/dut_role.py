"""The `dut` role on the virtual lab: the simulated charger, inspected and made safe through the
lab's control port. On a real bench the same role is played by the charger's own local interface
(e.g. `wallbox_quasar` over Modbus)."""
from __future__ import annotations

import time

from v2g_bench.errors import LabError, SafeStateError
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver


class VirtualLabDut(RoleDriver):
    roles = ("dut",)
    transport = "lab"
    description = "the virtual lab's simulated bidirectional charger (control port)"
    station_defects: tuple[str, ...] = ()     # v2g_bench.lab.charger.station_defects, set before the first connect

    def __init__(self, control, identity: str, timeout_s: float):
        self.control = control
        self._identity = identity
        self.timeout_s = timeout_s

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext) -> "VirtualLabDut":
        if ctx.lab is None:
            raise LabError("role 'dut' uses driver 'virtual_lab_dut' but no virtual lab is running",
                           where=cfg.where("driver"), fix="set bench.lab = \"builtin\" or use the charger's real driver")
        d = ctx.dut
        ident = f"{d.vendor},{d.model},{d.serial},{d.firmware}" if d is not None else "v2g-bench,virtual charger"
        return cls(ctx.lab.control(timeout=cfg.timeout_s), ident, cfg.timeout_s)

    def identify(self) -> str:
        self.control.ping()
        return self._identity

    def state(self) -> dict:
        return self.control.state()

    # -- the simulated station's OCPP side (on a real bench the operator configures the charger's
    #    CSMS URL; these are the virtual lab's equivalents of those manual steps) ----------------
    def connect_ocpp(self, url: str, *, security_profile: int = 1, password: str | None = None,
                     ca_cert: str | None = None, client_cert: str | None = None, client_key: str | None = None,
                     ocpp_version: str | None = None) -> dict:
        args = {k: v for k, v in dict(url=url, security_profile=security_profile, password=password, ca_cert=ca_cert,
                                      client_cert=client_cert, client_key=client_key,
                                      ocpp_version=ocpp_version).items() if v is not None}
        if not getattr(self, "_station_cleared", False):
            # the first connect of a test starts from a clean station: what other tests left behind
            # (transactions of EV sessions run while it was offline, profiles) is not replayed into
            # this test's CSMS; a reconnect later in the same test keeps the offline queue
            self.control.call("station.clear")
            if self.station_defects:      # mutation runs: the station's switchable defects for this test
                self.control.call("station.defects", set=list(self.station_defects))
            self._station_cleared = True
        r = self.op("station.connect", timeout_s=20.0, **args)
        self._ocpp_connected = True
        if not r.get("connected", False):
            raise LabError(f"the simulated charger could not connect to the CSMS at {url}: {r}",
                           fix="check [roles.csms] station_id/password against the lab's services.station options")
        return r

    def op(self, name: str, timeout_s: float = 10.0, **args) -> dict:
        """A station op that may take longer than the control port's short default (it waits for the
        CSMS: connect and boot, Authorize, a reconnect)."""
        return self.control.call(name, timeout=max(self.control.timeout, timeout_s), **args)

    def disconnect_ocpp(self) -> dict:
        self._ocpp_connected = False
        return self.control.call("station.disconnect")

    def plug_in(self) -> dict:
        return self.control.call("station.plug_in")

    def unplug(self) -> dict:
        return self.control.call("station.unplug")

    # an EV session (ISO 15118) starts and ends the transaction by itself; these are for tests without an EV
    def start_transaction(self, id_token: str | None = None) -> dict:
        return self.control.call("station.start_transaction", **({"id_token": id_token} if id_token else {}))

    def stop_transaction(self, reason: str | None = None) -> dict:
        return self.control.call("station.stop_transaction", **({"reason": reason} if reason else {}))

    def station_status(self) -> dict:
        return self.control.call("station.status")

    def safe_state(self) -> None:
        """Transaction ended, OCPP link closed, setpoint 0, contactor open — and read back."""
        if getattr(self, "_ocpp_connected", False):
            for op in ("station.stop_transaction", "station.disconnect", "station.clear"):
                try:
                    self.control.call(op)
                except Exception:  # noqa: BLE001 - no transaction running is fine; power is checked below
                    pass
            self._ocpp_connected = False
        self.control.setpoint(0.0)
        self.control.contactor(False)
        deadline = time.monotonic() + max(self.timeout_s, 2.0)
        st = self.control.state()
        while time.monotonic() < deadline:
            st = self.control.state()
            if not st.get("contactor_closed") and abs(st.get("dc_power_w") or 0.0) < 1.0:
                return
            time.sleep(0.05)
        raise SafeStateError(f"the simulated charger did not reach its safe state: contactor_closed="
                             f"{st.get('contactor_closed')}, dc_power_w={st.get('dc_power_w')}")

    def close(self) -> None:
        self.control.close()
