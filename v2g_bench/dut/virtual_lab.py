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

    def safe_state(self) -> None:
        """Setpoint 0, contactor open, and read back: the stage carries no power."""
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
