"""Any file given as a profile ends in a ProfileError (one message) or a valid profile -- never another
exception, which pytest would show as a traceback or an INTERNALERROR."""
import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from v2g_bench.errors import ProfileError
from v2g_bench.profiles import DEFAULT_BENCH, DEFAULT_DUT, check_profile, load_bench, load_dut

BENCH_TEXT = DEFAULT_BENCH.read_text()
DUT_TEXT = DEFAULT_DUT.read_text()

# TOML values of every kind, to put where any key's value belongs
toml_values = st.sampled_from(['""', '"x"', "0", "-1", "1e400", "nan", "inf", "-inf", "true", "[]", "[1, \"a\"]",
                               "{}", "{ a = 1 }", "1979-05-27", "12:00:00", '"\\u0000"', "[[1], [2]]"])


def _load_all(path):
    for loader in (load_bench, load_dut, check_profile):
        try:
            loader(path)
        except ProfileError as e:
            assert str(e) and "Traceback" not in str(e)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=512))
def test_random_bytes(tmp_path, data):
    p = tmp_path / "junk.toml"
    p.write_bytes(data)
    _load_all(p)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.sampled_from(["bench", "dut"]), line=st.integers(min_value=0, max_value=200), value=toml_values)
def test_any_value_replaced_by_any_type(tmp_path, which, line, value):
    lines = (BENCH_TEXT if which == "bench" else DUT_TEXT).splitlines()
    assignments = [i for i, t in enumerate(lines) if "=" in t and not t.lstrip().startswith(("#", "["))]
    i = assignments[line % len(assignments)]
    key = lines[i].split("=", 1)[0]
    lines[i] = f"{key}= {value}"
    text = "\n".join(lines)
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass        # still a fine input: the loader must say "not valid TOML"
    p = tmp_path / f"p.{which}.toml"
    p.write_text(text)
    _load_all(p)


def test_pytest_with_a_junk_profile_is_a_usage_error_not_an_internalerror(tmp_path):
    import subprocess
    import sys
    junk = tmp_path / "junk.toml"
    junk.write_bytes(bytes(range(255, -1, -1)))
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    for opt, path, expect in (("--bench", junk, "not a text file"), ("--dut", empty, "the file is empty")):
        r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", opt, str(path),
                            "--collect-only", str(tmp_path)], capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        assert r.returncode == 4 and expect in out, out[-2000:]          # 4 = pytest usage error
        assert "INTERNALERROR" not in out and "Traceback" not in out
