"""End to end against the virtual lab process, through the real transports (pyvisa-py TCP sockets,
pymodbus TCP, python-can socketcand): RP7900 battery emulator, Yokogawa WT5000 analyzer, Quasar-like
Modbus charger + SDM630 meter, SMA BMS CAN node. Charge and discharge points with the right signs,
safe shutdown verified, watchdog trip on a dead controller, a queued instrument error."""
import socket
import time

import pytest

from v2g_bench.errors import InstrumentError
from v2g_bench.instruments.can_node import SmaBmsNode
from v2g_bench.instruments.energy_meter import EastronSDM630
from v2g_bench.instruments.modbus_charger import WallboxQuasar
from v2g_bench.instruments.vendors.scpi_analyzer import YokogawaWT5000
from v2g_bench.instruments.vendors.scpi_dc_source import KeysightRP7900
from v2g_bench.roles import RoleConfig

# Within the lab emulator's ratings (RP7952A: 950 V, 40 A, 20 kW).
BATTERY_LIMITS = {"voltage_max_v": 450.0, "current_charge_max_a": 35.0, "current_discharge_max_a": 35.0,
                  "power_max_w": 15000.0, "ovp_v": 500.0}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from v2g_bench.harness.labproc import start_lab
    handle = start_lab(workdir=tmp_path_factory.mktemp("lab"), timeout_s=60)
    try:
        yield handle
    finally:
        handle.stop()


def visa(port):
    return f"TCPIP0::127.0.0.1::{port}::SOCKET"


def wait_until(fn, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        v = fn()
        if v[0]:
            return v[1]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s (last: {v[1]})")
        time.sleep(0.1)


def scpi_query(port, q):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(q.encode() + b"\n")
        return s.makefile("rb").readline().decode().strip()


def open_roles(lab, tmp_opts=None):
    p = lab.ports
    battery = KeysightRP7900.open(RoleConfig(role="battery", driver="keysight_rp7900", resource=visa(p["battery_scpi"]),
                                             limits=BATTERY_LIMITS, options={"watchdog_s": 5.0, **(tmp_opts or {})}))
    analyzer = YokogawaWT5000.open(RoleConfig(role="analyzer", driver="yokogawa_wt5000",
                                              resource=visa(p["analyzer_scpi"]), options={"elements": [1, 2]}))
    charger = WallboxQuasar.open(RoleConfig(role="charger", driver="wallbox_quasar",
                                            resource=f"modbus+tcp://127.0.0.1:{p['modbus']}?device_id=1",
                                            limits={"current_charge_max_a": 25, "current_discharge_max_a": 25}))
    meter = EastronSDM630.open(RoleConfig(role="meter", driver="eastron_sdm630",
                                          resource=f"modbus+tcp://127.0.0.1:{p['modbus']}?device_id=2"))
    return battery, analyzer, charger, meter


def test_charge_and_discharge_points_signs_and_verified_shutdown(lab):
    battery, analyzer, charger, meter = open_roles(lab)
    try:
        assert battery.identify().startswith("Keysight Technologies,RP79")
        assert "WT5000" in analyzer.identify()
        battery.apply_limits()
        battery.output_on()
        for amps, sign in ((20, +1), (-20, -1)):
            charger.set_current(amps)
            charger.start()
            r = wait_until(lambda sign=sign: ((lambda x: (sign * x.current_a > 15, x))(battery.read())), 15,
                           f"battery current {amps:+d} A")
            assert sign * r.power_w > 0 and 250 < r.voltage_v < 450
            a = analyzer.read()
            assert sign * a[1].power_w > 0 and sign * a[1].current_a > 0          # DC link: + into the EV battery
            assert sign * a[2].power_w > 0                                         # AC: + import
            assert abs(a[1].power_w - r.power_w) < 0.1 * abs(r.power_w)            # same physics, two instruments
            assert sign * meter.power_w() > 0                                      # SDM630: + import
            assert charger.state() == ("charging" if sign > 0 else "discharging")
        charger.safe_state()
        assert charger.state() not in ("charging", "discharging")
        battery.safe_state()
        assert battery.output_is_on() is False
        assert scpi_query(lab.ports["battery_scpi"], "OUTP?") == "0"             # independent connection
    finally:
        for role in (charger, meter, analyzer, battery):
            role.close()


def test_bms_frames_over_socketcand_match_the_battery(lab):
    node = SmaBmsNode.open(RoleConfig(role="can", driver="can_bms_sma",
                                      options={"interface": "socketcand", "channel": "can0",
                                               "host": "127.0.0.1", "port": lab.ports["can"]}))
    try:
        st = node.status(timeout_s=3.0)
        # default_lab.toml [plant.battery]: soc0 0.5, CVL 403 V, DVL 300 V, 200 A limits, 25 degC
        assert 45 <= st.soc_percent <= 55 and st.soh_percent == 100
        assert (st.charge_voltage_limit_v, st.discharge_voltage_limit_v) == (403.0, 300.0)
        assert (st.charge_current_limit_a, st.discharge_current_limit_a, st.temperature_c) == (200.0, 200.0, 25.0)
        assert st.voltage_v == 0.0 or 300 <= st.voltage_v <= 403      # 0 while the emulator output is off
        assert not any(node.alarms(timeout_s=3.0).values())
    finally:
        node.close()


def test_dead_controller_watchdog_turns_output_off(lab):
    port = lab.ports["battery_scpi"]
    battery = KeysightRP7900.open(RoleConfig(role="battery", driver="keysight_rp7900", resource=visa(port),
                                             limits=BATTERY_LIMITS, options={"watchdog_s": 1.0}))
    battery.apply_limits()
    battery.output_on()
    battery.inst.adapter.close()            # the bench 'dies': no more SCPI traffic, no shutdown sent
    try:
        # Any SCPI I/O (on any connection) re-arms the RP7900 watchdog, so we must stay silent for
        # the whole delay: this wait is the condition under test, not a settle time.
        time.sleep(1.0 + 0.8)
        assert scpi_query(port, "OUTP?") == "0"
        assert int(scpi_query(port, "STAT:QUES:COND?")) & (1 << 11)       # PROT bit: watchdog
    finally:
        battery._closed = True
        from v2g_bench.instruments.safety import unregister
        unregister(battery)
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"OUTP:PROT:CLE\nOUTP:PROT:WDOG OFF\n")


def test_instrument_error_after_a_set_then_shutdown_verified(lab):
    limits = dict(BATTERY_LIMITS, current_charge_max_a=100.0)      # beyond the RP7952A's 40 A rating
    battery = KeysightRP7900.open(RoleConfig(role="battery", driver="keysight_rp7900",
                                             resource=visa(lab.ports["battery_scpi"]), limits=limits))
    try:
        with pytest.raises(InstrumentError) as ei:
            with battery:
                battery.apply_limits()
        assert ei.value.command == "CURR:LIM:NEG -100" and "-222" in ei.value.answer
        assert scpi_query(lab.ports["battery_scpi"], "OUTP?") == "0"
    finally:
        battery.close()
