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
    text = GOOD_BENCH.replace("voltage_max_v = 900", "voltage_max_v = 900\nvoltage_min_v = 950")
    _, msg = errors_of(tmp_path, text)
    assert "voltage_min_v = 950 is above voltage_max_v = 900" in msg
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace("voltage_max_v = 900", "voltage_max_v = 900\npower_max_w = -5"))
    assert "roles.battery.limits.power_max_w: must be >= 0, got -5" in msg


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
    assert "ratings.charge.current_max_a: must be > 0, got -1" in msg
    with pytest.raises(ProfileError) as ei:
        load_dut(write(tmp_path, DUT.replace("voltage_min_v = 100\nvoltage_max_v = 900\ncurrent_max_a = 100\npower_max_w = 10000\n[ratings.discharge]",
                                             "voltage_min_v = 950\nvoltage_max_v = 900\ncurrent_max_a = 100\npower_max_w = 10000\n[ratings.discharge]")))
    assert "ratings.charge: voltage_min_v = 950 > voltage_max_v = 900" in "\n".join(ei.value.errors)


def test_check_profile_tells_the_kind(tmp_path):
    assert check_profile(write(tmp_path, DUT, "d.toml")).vendor == "A"
    with pytest.raises(ProfileError, match="neither a bench profile"):
        check_profile(write(tmp_path, "x = 1\n", "x.toml"))


# ------------------------------------------------------------------ strict profiles (issue 16) ---
def dut_errors(tmp_path, text):
    with pytest.raises(ProfileError) as ei:
        load_dut(write(tmp_path, text, "d.toml"))
    return "\n".join(ei.value.errors)


def test_misspelt_tolerance_is_refused_with_did_you_mean(tmp_path):
    msg = dut_errors(tmp_path, DUT + "[tolerances]\nsetle_s = 5.0\npower_rell = 0.02\n")
    assert "tolerances.setle_s: unknown key; did you mean 'settle_s'?" in msg
    assert "tolerances.power_rell: unknown key; did you mean 'power_rel'?" in msg


def test_misspelt_role_key_is_refused_with_did_you_mean(tmp_path):
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace('driver = "rec_ev"', 'driver = "rec_ev"\ntimout_s = 5'))
    assert "roles.ev.timout_s: unknown key; did you mean 'timeout_s'?" in msg
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace("[bench]", "[bench]\nnmae = 'x'"))
    assert "bench.nmae: unknown key; did you mean 'name'?" in msg
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace("voltage_max_v = 900", "voltage_max_v = 900\novp_vv = 950"))
    assert "roles.battery.limits.ovp_vv: unknown limit; did you mean 'ovp_v'?" in msg


def test_a_string_where_a_list_belongs_is_not_split_into_letters(tmp_path):
    msg = dut_errors(tmp_path, DUT.replace('energy_services = ["DC_BPT"]', 'energy_services = ["DC_BPT"]\nfeatures = "V2X"'))
    assert "claims.features: value is not a valid list (got a string 'V2X')" in msg


@pytest.mark.parametrize("value, expect", [
    ("nan", "must be a finite number, got nan"),
    ("inf", "must be a finite number, got inf"),
    ("-10", "must be > 0, got -10"),
    ("true", "must be a number, got a boolean True"),
    ('"10000"', "must be a number, got a string '10000'"),
    ("{ w = 1 }", "must be a number, got a table"),
])
def test_ratings_refuse_nan_inf_negative_and_wrong_types(tmp_path, value, expect):
    msg = dut_errors(tmp_path, DUT.replace("power_max_w = 10000\n[ratings.discharge]", f"power_max_w = {value}\n[ratings.discharge]"))
    assert f"ratings.charge.power_max_w: {expect}" in msg


def test_bench_values_refuse_nan_and_wrong_types(tmp_path):
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace("voltage_max_v = 900", "voltage_max_v = nan"))
    assert "roles.battery.limits.voltage_max_v: must be a finite number, got nan" in msg
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace('name = "t"', "name = { a = 1 }"))
    assert "bench.name: must be a string, got a table" in msg
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace('driver = "rec_ev"', 'driver = "rec_ev"\ntimeout_s = -1'))
    assert "roles.ev.timeout_s: must be > 0, got -1" in msg


def test_lab_settings_are_checked_where_they_are(tmp_path):
    lab = GOOD_BENCH.replace('name = "t"', 'name = "t"\nlab = "builtin"') + textwrap.dedent("""
        [lab]
        time_scale = 0
        seeed = 3
        [lab.iso15118.secc]
        codec = "fast"
        max_charge_w = inf
    """)
    _, msg = errors_of(tmp_path, lab)
    assert "lab.time_scale: must be > 0, got 0" in msg
    assert "lab.seeed: unknown key; did you mean 'seed'?" in msg
    assert "lab.iso15118.secc.codec: 'fast' is not allowed" in msg
    assert "lab.iso15118.secc.max_charge_w: must be a finite number, got inf" in msg
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace('name = "t"', 'name = "t"\nlab = "virtual"'))
    assert "bench.lab: 'virtual' is not allowed" in msg


@pytest.mark.parametrize("content, expect", [
    (b"", "the file is empty"),
    (b"   \n\n", "the file is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a text file"),
    (b"name = 1\x00\n", "not a text file: it contains NUL bytes"),
    (b"[bench\n", "not valid TOML"),
    (b"bench = 5\nroles = 7\n", "bench: value is not a valid dict"),
])
def test_junk_files_give_a_message_never_a_traceback(tmp_path, content, expect):
    p = tmp_path / "junk.toml"
    p.write_bytes(content)
    for loader in (load_bench, load_dut, check_profile):
        with pytest.raises(ProfileError) as ei:
            loader(p)
        if loader is not load_dut or expect != "bench: value is not a valid dict":
            assert expect in str(ei.value), (loader, str(ei.value))
    with pytest.raises(ProfileError, match="is a directory"):
        load_bench(tmp_path)


def test_limits_above_the_instruments_rating_are_refused(tmp_path):
    rp = """
    [bench]
    name = "r"
    [roles.battery]
    driver = "keysight_rp7900"
    resource = "TCPIP0::10.0.0.5::5025::SOCKET"
    model = "RP7952A"
    [roles.battery.limits]
    voltage_max_v = 1200
    current_charge_max_a = 40
    current_discharge_max_a = 60
    power_max_w = 20000
    """
    _, msg = errors_of(tmp_path, rp)
    assert "roles.battery.limits.voltage_max_v: 1200 is above the instrument's rating voltage_max_v = 950 " \
           "(keysight_rp7900 RP7952A)" in msg
    assert "roles.battery.limits.current_discharge_max_a: 60 is above the instrument's rating current_max_a = 40" in msg
    assert "current_charge_max_a" not in msg
    _, msg = errors_of(tmp_path, rp.replace('"RP7952A"', '"RP7925A"'))
    assert "roles.battery.model: model 'RP7925A' is not in the instrument profile's [ratings]" in msg
    assert "did you mean 'RP7952A'?" in msg


def test_dut_ratings_beyond_what_the_bench_can_supply_or_absorb_are_refused():
    import dataclasses
    from v2g_bench.profiles import DEFAULT_BENCH, check_compatible
    bench, dut = load_bench(DEFAULT_BENCH), load_dut(DEFAULT_DUT)
    check_compatible(bench, dut)                        # the defaults fit together
    big = dataclasses.replace(dut, charge=dataclasses.replace(dut.charge, power_max_w=50000.0),
                              discharge=dataclasses.replace(dut.discharge, current_max_a=100.0))
    with pytest.raises(ProfileError) as ei:
        check_compatible(bench, big)
    msg = "\n".join(ei.value.errors)
    assert "ratings.charge.power_max_w = 50000 is more than the bench can absorb" in msg
    assert "roles.battery.limits.power_max_w = 20000" in msg
    assert "ratings.discharge.current_max_a = 100 is more than the bench can supply" in msg


def test_unknown_claim_value_and_role_get_did_you_mean(tmp_path):
    msg = dut_errors(tmp_path, DUT.replace('["DC_BPT"]', '["DC_BTP"]'))
    assert "claims.energy_services: 'DC_BTP' is not known; did you mean 'DC_BPT'?" in msg
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace("[roles.ev]", "[roles.evv]"))
    assert "roles.evv: unknown role 'evv'; did you mean 'ev'?" in msg


def test_profile_check_cli_on_junk_prints_one_message_and_no_traceback(tmp_path):
    import os
    import subprocess
    import sys
    junk = tmp_path / "junk.toml"
    junk.write_bytes(bytes(range(256)) * 4)
    r = subprocess.run([sys.executable, "-m", "v2g_bench.cli", "profile", "check", str(junk)],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert r.returncode == 1 and "not a text file" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


@pytest.mark.parametrize("resource, expect", [
    ("TCPIP0::10.0.0.5::notaport::SOCKET", "has port 'notaport': a TCP port is a number 1..65535"),
    ("TCPIP0::10.0.0.5::99999::SOCKET", "has port '99999'"),
    ("TCPIP0::10.0.0.5::5025::socket", "the resource class is upper case (fix: 'TCPIP0::10.0.0.5::5025::SOCKET')"),
    ("TCPIP0::10.0.0.5::5025", "looks like a port; did you mean 'TCPIP0::10.0.0.5::5025::SOCKET'?"),
    (" TCPIP0::10.0.0.5::5025::SOCKET", "has spaces around it"),
    ("10.0.0.5:5025", "is not a VISA resource string"),
])
def test_bad_visa_resource_strings_say_what_is_wrong(tmp_path, resource, expect):
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace("TCPIP0::10.0.0.5::5025::SOCKET", resource))
    assert f"roles.battery.resource: {resource!r} " in msg and expect in msg


def test_profile_check_cli_prints_table_names_literally(tmp_path):
    import os
    import subprocess
    import sys
    other = write(tmp_path, "[actions]\nx = 1\n", "other.toml")
    r = subprocess.run([sys.executable, "-m", "v2g_bench.cli", "profile", "check", str(other)],
                       capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"})
    assert r.returncode == 1 and "([bench] + [roles.*])" in r.stdout + r.stderr


def test_options_named_like_quantities_must_be_numbers(tmp_path):
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace('driver = "rec_source"', 'driver = "rec_source"\nwatchdog_s = "2"'))
    assert "roles.battery.watchdog_s: must be a number in SI units (the name says so), got str '2'" in msg
    _, msg = errors_of(tmp_path, GOOD_BENCH.replace('driver = "rec_source"', 'driver = "rec_source"\nwatchdog_s = -1'))
    assert "roles.battery.watchdog_s: a time must be >= 0, got -1" in msg
