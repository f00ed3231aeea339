"""Profile validation: every error names the file, the key and the fix."""
import textwrap

import pytest

from v2g_bench.drivers import register_driver
from v2g_bench.errors import ProfileError
from v2g_bench.profiles import DEFAULT_DUT, check_profile, load_bench, load_dut

from recording_drivers import RecordingEV, RecordingSource  # noqa: E402  (tests/unit/foundation on sys.path)

register_driver("rec_source", RecordingSource)
register_driver("rec_ev", RecordingEV)

GOOD_BENCH = """
[bench]
name = "t"
[roles.battery]
driver = "rec_source"
resource = "TCPIP0::10.0.0.5::5025::SOCKET"
[roles.battery.limits]
voltage_max_v = 900
[roles.ev]
driver = "rec_ev"
"""


def write(tmp_path, text, name="p.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def errors_of(tmp_path, text):
    with pytest.raises(ProfileError) as ei:
        load_bench(write(tmp_path, text))
    return ei.value, "\n".join(ei.value.errors)


def test_good_bench_profile_loads(tmp_path):
    b = load_bench(write(tmp_path, GOOD_BENCH))
    assert b.name == "t" and set(b.roles) == {"battery", "ev"}
    assert b.roles["battery"].limits == {"voltage_max_v": 900.0}
    assert not b.uses_builtin_lab


def test_unknown_role_names_the_key_and_known_roles(tmp_path):
    err, msg = errors_of(tmp_path, GOOD_BENCH + '[roles.toaster]\ndriver = "rec_source"\n')
    assert "roles.toaster: unknown role 'toaster'" in msg and "battery" in msg
    assert str(tmp_path / "p.toml") in str(err)


def test_unknown_driver_lists_the_known_ones(tmp_path):
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace('driver = "rec_source"', 'driver = "nope_9000"'))
    assert "roles.battery.driver" in msg and "unknown driver 'nope_9000'" in msg and "rec_source" in msg


def test_malformed_resource_string(tmp_path):
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace("TCPIP0::10.0.0.5::5025::SOCKET", "10.0.0.5:5025"))
    assert "roles.battery.resource" in msg and "not a VISA resource string" in msg and "fix" in msg


def test_missing_limit_for_power_role(tmp_path):
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace("voltage_max_v = 900", "current_max_a = 10"))
    assert "roles.battery.limits.voltage_max_v: missing" in msg


def test_min_above_max_and_negative_capacity(tmp_path):
    text = GOOD_BENCH.replace("voltage_max_v = 900", "voltage_max_v = 900\ncurrent_min_a = 50\ncurrent_max_a = 10\ncapacity_wh = -5")
    _, msg = errors_of(tmp_path, text)
    assert "current_min_a = 50 is above current_max_a = 10" in msg
    assert "capacity_wh: -5 must be > 0" in msg


def test_every_problem_is_listed_not_just_the_first(tmp_path):
    err, _ = errors_of(tmp_path, GOOD_BENCH.replace('name = "t"', "") + "[roles.toaster]\n")
    assert len(err.errors) >= 2


def test_toml_syntax_error_and_missing_file(tmp_path):
    _, msg = errors_of(tmp_path, "[bench\nname=1")
    assert "not valid TOML" in msg
    with pytest.raises(ProfileError, match="file not found"):
        load_bench(tmp_path / "absent.toml")


def test_placeholder_without_lab_is_explained(tmp_path):
    b = load_bench(write(tmp_path, GOOD_BENCH.replace("10.0.0.5::5025", "127.0.0.1::{lab.ports.battery_scpi}")))
    with pytest.raises(ProfileError, match="needs the built-in virtual lab"):
        b.resolved(None)
    r = b.resolved({"ports": {"battery_scpi": 4242}})
    assert r.roles["battery"].resource == "TCPIP0::127.0.0.1::4242::SOCKET"


def test_default_dut_profile_is_valid_and_claims_bpt():
    d = load_dut(DEFAULT_DUT)
    assert d.claims("DC_BPT") and d.claims("dc_bpt") and not d.claims("AC_BPT")
    assert d.claims("OCPP2.1") and d.claims("scheduled")
    assert d.discharge is not None and d.discharge.power_max_w > 0


DUT = """
[dut]
vendor = "A"
model = "B"
serial = "1"
firmware = "2"
[claims]
energy_services = ["DC_BPT"]
[ratings.charge]
voltage_min_v = 100
voltage_max_v = 900
current_max_a = 100
power_max_w = 10000
[ratings.discharge]
voltage_min_v = 100
voltage_max_v = 900
current_max_a = 100
power_max_w = 10000
"""


def test_dut_profile_errors(tmp_path):
    with pytest.raises(ProfileError) as ei:
        load_dut(write(tmp_path, DUT.replace('energy_services = ["DC_BPT"]', 'energy_services = ["DC_WARP"]')
                       .replace("voltage_min_v = 100\nvoltage_max_v = 900\ncurrent_max_a = 100\npower_max_w = 10000\n[ratings.discharge]",
                                "voltage_min_v = 950\nvoltage_max_v = 900\ncurrent_max_a = -1\npower_max_w = 10000\n[ratings.discharge]")))
    msg = "\n".join(ei.value.errors)
    assert "claims.energy_services: 'DC_WARP' is not known" in msg
    assert "ratings.charge: voltage_min_v = 950 > voltage_max_v = 900" in msg
    assert "ratings.charge.current_max_a: -1 is negative" in msg


def test_check_profile_tells_the_kind(tmp_path):
    assert check_profile(write(tmp_path, DUT, "d.toml")).vendor == "A"
    with pytest.raises(ProfileError, match="neither a bench profile"):
        check_profile(write(tmp_path, "x = 1\n", "x.toml"))
