"""The campaign machinery on a short run of the in-process targets: counts add up, crashes are
caught, saved and counted, a hang is interrupted and counted, the CLI refuses bad arguments."""
from __future__ import annotations

import random
import time

from v2g_bench.fuzz import __main__ as cli
from v2g_bench.fuzz.campaign import CRASH, HANG, OK, TYPED, Target, call_typed, format_table, mutate, run_target


class _Toy(Target):
    """A target with a planted crash and a planted hang, to prove the campaign reports them."""

    name = "toy"
    hang_s = 0.2

    def batches(self, rng):
        while True:
            yield [b"ok", b"typed", b"crash", b"hang"]

    def run_batch(self, inputs):
        def f(x):
            if x == b"typed":
                raise ValueError("refused")
            if x == b"crash":
                raise IndexError("planted")
            if x == b"hang":
                time.sleep(5)
        return [call_typed(f, x, (ValueError,), self.hang_s) for x in inputs]


def test_campaign_counts_ok_typed_crashes_and_hangs_and_saves_the_inputs(tmp_path):
    s = run_target(_Toy(), 1.0, tmp_path, seed=1)
    assert s.inputs == s.ok + s.typed + s.crashes + s.hangs and s.inputs >= 4
    assert s.ok == s.typed == s.crashes == s.hangs          # one of each per batch
    saved = sorted((tmp_path / "crashes" / "toy").glob("*.txt"))
    assert saved and any("IndexError: planted" in p.read_text() for p in saved)
    assert any(p.read_text().startswith("hang") for p in saved)
    assert "toy" in format_table([s]) and "total" in format_table([s])


def test_classification_of_one_call():
    assert call_typed(lambda x: x, 1, (ValueError,), 1)[0] == OK
    assert call_typed(int, "x", (ValueError,), 1)[0] == TYPED
    assert call_typed(lambda x: x[5], [], (ValueError,), 1)[0] == CRASH
    assert call_typed(lambda x: time.sleep(3), 0, (ValueError,), 0.1)[0] == HANG


def test_mutants_differ_and_stay_bounded():
    rng = random.Random(3)
    seed = bytes(range(64))
    ms = [mutate(seed, rng) for _ in range(200)]
    assert sum(m != seed for m in ms) > 150
    assert all(len(m) <= 1 << 16 for m in ms)


def test_in_process_targets_run_without_crashes(tmp_path):
    """A few seconds of the EXI decoder and the profile loader: inputs tried, none crashed."""
    rows = [run_target(cli.make_target(n), 4.0, tmp_path, seed=7) for n in ("exi", "profiles")]
    for s in rows:
        assert s.inputs > 0, s.note
        assert s.crashes == 0 and s.hangs == 0, (s.target, s.crash_files)


def test_cli_refuses_unknown_targets_and_bad_durations(capsys):
    assert cli.main(["--targets", "nope"]) == 2
    assert "unknown target" in capsys.readouterr().err
    assert cli.main(["--seconds", "0"]) == 2
