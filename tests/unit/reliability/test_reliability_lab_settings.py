"""Lab settings (the lab TOML and `--set` overrides from a bench profile's [lab.set]) say what is wrong and
where: unknown keys with a "did you mean", wrong types, NaN/inf -- and the lab process exits with one line."""
import subprocess
import sys

import pytest

from v2g_bench.errors import ProfileError
from v2g_bench.lab.server import load_config


@pytest.mark.parametrize("override, expect", [
    ("plant.battery.capacity_wh=nan", "plant.battery.capacity_wh: must be a finite number, got nan"),
    ('lab.time_scale="fast"', "lab.time_scale: must be a number, got a string 'fast'"),
    ("lab.tme_scale=2", "lab.tme_scale: unknown key; did you mean 'time_scale'?"),
    ("frontends.modbus.enabeld=false", "frontends.modbus.enabeld: unknown key; did you mean 'enabled'?"),
    ("services.station.enabeld=true", "services.station.enabeld: unknown key; did you mean 'enabled'?"),
    ("frontends.can.period_s=-1", "frontends.can.period_s: must be > 0, got -1"),
    ('lab.clock="fast"', "lab.clock: 'fast' is not allowed"),
    ("frontend.x=1", "frontend: unknown top-level table; did you mean 'frontends'?"),
    ("frontends.modbus.enabled=1", "frontends.modbus.enabled: value is not a valid boolean"),
])
def test_bad_lab_settings_name_the_key(override, expect):
    with pytest.raises(ProfileError) as ei:
        load_config(None, [override])
    assert expect in str(ei.value)
    assert f"--set {override}" in str(ei.value)          # where: the override, not the default file


def test_default_lab_settings_are_valid():
    assert load_config(None, [])["lab"]["clock"] == "real"


def test_lab_process_with_a_bad_setting_exits_with_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "v2g_bench.lab", "--set", "lab.tme_scale=2",
                        "--ready-file", str(tmp_path / "ready.json")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "did you mean 'time_scale'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "ready.json").exists()
