"""Battery emulator: Keysight RP7900 series regenerative power system (RP79xxA), SCPI dialect.

Source: Keysight "Regenerative Power System RP7900 Series Operating and Service Guide", chapter 5
"SCPI Programming Reference": subsystems SOURce (VOLTage, CURRent:LIMit[:POSitive|:NEGative],
POWer:LIMit, VOLTage:PROTection, CURRent:PROTection:STATe), OUTPut (STATe, PROTection:CLEar,
PROTection:WDOG[:STATe|:DELay]), MEASure/FETCh[:SCALar], EMULation, STATus; and "Status Tutorial"
(p. 241 ff.): Questionable1 condition bits OV=1, OC=2, PF=4, CP+=8, OT=16, CP-=32, OV-=64,
LIM+=128, LIM-=256, INH=512, UNR=1024, PROT (watchdog)=2048, EDP=4096; Operation bits CV=1, CC=2,
OFF=4.

Sign on the wire is the VENDOR's: current and power are positive when the instrument SOURCES
(discharges the emulated battery into the charger), negative when it sinks (the charger charges the
battery). The plant uses the project's convention (+ = into the battery), so this module negates.

The RP7900 has no battery-model command set (EMULation BATTery selects a 2-quadrant battery-like
regulation, not a SOC/OCV model). The lab's battery model (capacity, OCV(SOC), R, SOC limits) is
therefore configured in the lab TOML ([plant.battery]) and over the control port
(op "battery"), not over SCPI. In EMULation BATTery the DC-link voltage follows that model; in the
power-supply modes (PS4Q, PS2Q, PS1Q, ...) it is the programmed VOLTage, as a stiff source.

*RST state used here (the guide's full reset table is not reproduced): output off, VOLT 0,
CURR:LIM +rating / -rating, POW:LIM rating, VOLT:PROT rating*1.1 (capped), OCP off, watchdog off,
EMULation PS4Q, status cleared.
"""
from __future__ import annotations

import asyncio
from typing import Any

from v2g_bench.lab.plant import Plant
from v2g_bench.lab.frontends.scpi import Bool, Choice, Command, Num, ScpiInstrument, nr3

QUES_OV, QUES_OC, QUES_PF, QUES_CPP, QUES_OT, QUES_CPM = 1, 2, 4, 8, 16, 32
QUES_LIMP, QUES_LIMM, QUES_PROT = 128, 256, 2048
OPER_CV, OPER_CC, OPER_OFF = 1, 2, 4

EMULATIONS = "PS4Q|PS2Q|PS1Q|BATTery|CHARger|CCLoad|CVLoad|VMETer|AMETer"


class KeysightRP7900(ScpiInstrument):
    """The battery emulator front-end: SCPI commands mapped onto the shared plant."""

    def __init__(self, plant: Plant, *, serial: str = "VLAB000001", firmware: str = "B.00.00.0000"):
        super().__init__()
        self.plant = plant
        e = plant.cfg.emulator
        self.model = e.model
        self.rating_v, self.rating_a, self.rating_w = e.rating_v, e.rating_a, e.rating_w
        self.idn = f"Keysight Technologies,{self.model},{serial},{firmware}"
        self.ques_enable = 0
        self._ques_event = 0
        self._ques_last = 0
        self.wdog_on = False
        self.wdog_delay_s = 60.0
        self._wdog_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        V, A, W = self.rating_v, self.rating_a, self.rating_w
        self.add_commands([
            Command("[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude]",
                    set=lambda c, v: plant.set_emulator(voltage_set_v=v),
                    query=lambda c: nr3(plant.emulator.voltage_set_v),
                    params=(Num(0, V, "V", default=0),)),
            Command("[SOURce:]VOLTage:PROTection[:LEVel]",
                    set=lambda c, v: plant.set_emulator(ovp_v=v),
                    query=lambda c: nr3(plant.emulator.ovp_v),
                    params=(Num(0, V * 1.1, "V", default=V * 1.1),)),
            Command("[SOURce:]CURRent:LIMit:NEGative[:IMMediate][:AMPLitude]",
                    set=lambda c, a: plant.set_emulator(current_limit_neg_a=a),
                    query=lambda c: nr3(plant.emulator.current_limit_neg_a),
                    params=(Num(-A, 0, "A", default=-A),)),
            Command("[SOURce:]CURRent:LIMit[:POSitive][:IMMediate][:AMPLitude]",
                    set=lambda c, a: plant.set_emulator(current_limit_pos_a=a),
                    query=lambda c: nr3(plant.emulator.current_limit_pos_a),
                    params=(Num(0, A, "A", default=A),)),
            Command("[SOURce:]CURRent:PROTection:STATe",
                    set=lambda c, on: plant.set_emulator(ocp_enabled=on),
                    query=lambda c: "1" if plant.emulator.ocp_enabled else "0",
                    params=(Bool(),)),
            Command("[SOURce:]POWer:LIMit[:POSitive][:IMMediate][:AMPLitude]",
                    set=lambda c, w: plant.set_emulator(power_limit_w=w),
                    query=lambda c: nr3(plant.emulator.power_limit_w),
                    params=(Num(0, W, "W", default=W),)),
            Command("OUTPut[:STATe]", set=self._output, query=lambda c: "1" if plant.state().battery_output_on else "0",
                    params=(Bool(),)),
            Command("OUTPut:PROTection:CLEar", set=self._prot_clear),
            Command("OUTPut:PROTection:WDOG[:STATe]", set=self._wdog_state,
                    query=lambda c: "1" if self.wdog_on else "0", params=(Bool(),)),
            Command("OUTPut:PROTection:WDOG:DELay", set=self._wdog_delay,
                    query=lambda c: nr3(self.wdog_delay_s), params=(Num(1, 3600, "S", default=60),)),
            Command("EMULation", set=lambda c, m: plant.set_emulator(emulation=m),
                    query=lambda c: self._emul_short(), params=(Choice(EMULATIONS),)),
            Command("MEASure[:SCALar]:VOLTage[:DC]", query=lambda c: nr3(self._meas().dc_voltage_v)),
            Command("MEASure[:SCALar]:CURRent[:DC]", query=lambda c: nr3(-self._meas().dc_current_a)),
            Command("MEASure[:SCALar]:POWer[:DC]", query=lambda c: nr3(-self._meas().dc_power_w)),
            Command("FETCh[:SCALar]:VOLTage[:DC]", query=lambda c: nr3(self._meas().dc_voltage_v)),
            Command("FETCh[:SCALar]:CURRent[:DC]", query=lambda c: nr3(-self._meas().dc_current_a)),
            Command("FETCh[:SCALar]:POWer[:DC]", query=lambda c: nr3(-self._meas().dc_power_w)),
            Command("STATus:QUEStionable[:EVENt]", query=self._ques_event_q),
            Command("STATus:QUEStionable:CONDition", query=lambda c: str(self.ques_condition())),
            Command("STATus:QUEStionable:ENABle", set=self._ques_enable,
                    query=lambda c: str(self.ques_enable), params=(Num(0, 65535, integer=True),)),
            Command("STATus:OPERation:CONDition", query=lambda c: str(self.oper_condition())),
            Command("STATus:OPERation[:EVENt]", query=lambda c: str(self.oper_condition())),
            Command("STATus:PRESet", set=lambda c: setattr(self, "ques_enable", 0)),
            Command("SYSTem:REMote", set=lambda c: None),
            Command("SYSTem:LOCal", set=lambda c: None),
        ])

    # -- helpers ---------------------------------------------------------------------------------

    def _meas(self):
        return self.plant.measure("battery")

    def _emul_short(self) -> str:
        long = self.plant.emulator.emulation.upper()
        for opt in EMULATIONS.split("|"):
            if opt.upper() == long or long.startswith(opt.upper()[:4]):
                return "".join(ch for ch in opt if ch.isupper() or ch.isdigit())
        return long[:4]

    def _output(self, c, on: bool) -> None:
        self.plant.set_battery_output(on)

    def _prot_clear(self, c) -> None:
        self.plant.clear_protection()
        self._ques_event = 0

    def _ques_enable(self, c, v: float) -> None:
        self.ques_enable = int(v)

    def _ques_event_q(self, c) -> str:
        self._update_events()
        v, self._ques_event = self._ques_event, 0
        return str(v)

    def ques_condition(self) -> int:
        prot = self.plant.protection
        bits = 0
        if "OV" in prot:
            bits |= QUES_OV
        if "OC" in prot:
            bits |= QUES_OC
        if "WDOG" in prot:
            bits |= QUES_PROT
        if "CP+" in prot:
            bits |= QUES_CPP
        if "CP-" in prot:
            bits |= QUES_CPM
        s = self.plant.state()
        em = self.plant.emulator
        if s.battery_output_on and abs(s.dc_current_a) > 0.01:
            # plant + = emulator sinks -> negative current limit (LIM-); - = sourcing (LIM+)
            if s.dc_current_a > 0 and s.dc_current_a >= 0.999 * -em.current_limit_neg_a:
                bits |= QUES_LIMM
            if s.dc_current_a < 0 and -s.dc_current_a >= 0.999 * em.current_limit_pos_a:
                bits |= QUES_LIMP
        return bits

    def oper_condition(self) -> int:
        s = self.plant.state()
        if not s.battery_output_on:
            return OPER_OFF
        return OPER_CC if self.ques_condition() & (QUES_LIMP | QUES_LIMM) else OPER_CV

    def _update_events(self) -> None:
        cond = self.ques_condition()
        self._ques_event |= cond & ~self._ques_last      # positive transitions (PTR default)
        self._ques_last = cond

    def execute(self, line: str, *, output_pending: bool = False) -> str | None:
        self._update_events()
        out = super().execute(line, output_pending=output_pending)
        self._update_events()
        return out

    def reset(self) -> None:
        self.plant.set_battery_output(False)
        self.plant.set_emulator(voltage_set_v=0.0, current_limit_pos_a=self.rating_a,
                                current_limit_neg_a=-self.rating_a, power_limit_w=self.rating_w,
                                ovp_v=self.rating_v * 1.1, ocp_enabled=False, emulation="PS4Q")
        self.wdog_on = False
        self._cancel_wdog()

    # -- watchdog: output off if no SCPI I/O for DELay seconds (wall time: it guards the link) ----

    def attach_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def on_io(self) -> None:
        if self.wdog_on:
            self._arm_wdog()

    def _wdog_state(self, c, on: bool) -> None:
        self.wdog_on = on
        if on:
            self._arm_wdog()
        else:
            self._cancel_wdog()

    def _wdog_delay(self, c, s: float) -> None:
        self.wdog_delay_s = s
        if self.wdog_on:
            self._arm_wdog()

    def _arm_wdog(self) -> None:
        self._cancel_wdog()
        if self._loop is not None:
            self._wdog_timer = self._loop.call_later(self.wdog_delay_s, self._wdog_expired)

    def _cancel_wdog(self) -> None:
        if self._wdog_timer is not None:
            self._wdog_timer.cancel()
            self._wdog_timer = None

    def _wdog_expired(self) -> None:
        self._wdog_timer = None
        if self.wdog_on and self.plant.state().battery_output_on:
            self.plant.watchdog_trip()

    def close(self) -> None:
        self._cancel_wdog()


def create(plant: Plant, cfg: dict[str, Any] | None = None) -> KeysightRP7900:
    cfg = cfg or {}
    return KeysightRP7900(plant, serial=str(cfg.get("serial", "VLAB000001")))
