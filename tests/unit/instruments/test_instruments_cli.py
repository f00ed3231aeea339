"""`v2g-bench instruments list|identify` (identify starts the virtual lab for its duration)."""
from pathlib import Path

from typer.testing import CliRunner

from v2g_bench.instruments.cli import app

BENCH = """
[bench]
name = "in-cli-test"
lab = "builtin"

[lab]
seed = 1

[roles.battery]
driver = "keysight_rp7900"
resource = "TCPIP0::127.0.0.1::{lab.ports.battery_scpi}::SOCKET"
[roles.battery.limits]
voltage_max_v = 450.0
current_charge_max_a = 35.0
current_discharge_max_a = 35.0
power_max_w = 15000.0

[roles.analyzer]
driver = "yokogawa_wt5000"
resource = "TCPIP0::127.0.0.1::{lab.ports.analyzer_scpi}::SOCKET"

[roles.meter]
driver = "eastron_sdm630"
resource = "modbus+tcp://127.0.0.1:{lab.ports.modbus}?device_id=2"

[roles.charger]
driver = "wallbox_quasar"
resource = "modbus+tcp://127.0.0.1:{lab.ports.modbus}?device_id=1"
[roles.charger.limits]
current_charge_max_a = 25.0
current_discharge_max_a = 25.0

[roles.can]
driver = "can_bms_sma"
interface = "socketcand"
channel = "can0"
host = "127.0.0.1"
port = "{lab.ports.can}"
"""


def test_list_default_profile_names_driver_and_resource():
    r = CliRunner().invoke(app, ["list", "--bench", "profiles/virtual-lab.bench.toml"])
    assert r.exit_code == 0, r.output
    assert "battery" in r.output and "keysight_rp7900" in r.output and "{lab.ports.battery_scpi}" in r.output


def test_identify_every_instrument_role_against_the_virtual_lab(tmp_path: Path):
    bench = tmp_path / "in-cli.bench.toml"
    bench.write_text(BENCH)
    r = CliRunner().invoke(app, ["identify", "--bench", str(bench)])
    assert r.exit_code == 0, r.output
    out = r.output
    assert "ok: Keysight Technologies,RP7952A" in out and "ok: YOKOGAWA,WT5000" in out
    assert "ok: Eastron SDM630" in out and "ok: Wallbox Quasar" in out and "ok: CAN node, DBC bms_sma" in out
