"""`v2g-bench run --dry-run` on a bench with the EV-side board (pty): every role opened, identified,
checked (the board sees the charger's +12 V CP) and unwound; a failing check gives exit code 1."""
from __future__ import annotations

from v2g_bench.harness.dryrun import dry_run


def _profile(tmp_path, path):
    p = tmp_path / "dry.bench.toml"
    p.write_text(f'[bench]\nname = "dry"\n\n[roles.ev_io]\ndriver = "evio_serial"\nresource = "{path}"\n'
                 'timeout_s = 1.0\nwatchdog_s = 0\n')
    return p


def test_dry_run_passes_on_a_wired_board(board_lab, tmp_path, capsys):
    assert dry_run(_profile(tmp_path, board_lab.path), workdir=tmp_path) == 0
    err = capsys.readouterr().err
    assert "control pilot wired" in err and "safe state (unwind)" in err
    assert board_lab.board.status()["applied"] == "A"


def test_dry_run_fails_when_the_charger_drives_no_pilot(board_lab, tmp_path, capsys):
    board_lab.call(board_lab.plant.pilot.set_state_f)        # charger shows -12 V (F): not a wired +12 V
    assert dry_run(_profile(tmp_path, board_lab.path), workdir=tmp_path) == 1
    assert "FAIL" in capsys.readouterr().err


def test_dry_run_reports_an_unreachable_role_and_a_bad_profile(tmp_path, capsys):
    assert dry_run(_profile(tmp_path, "/dev/does-not-exist"), workdir=tmp_path) == 1
    assert "cannot open the serial port" in capsys.readouterr().err
    bad = tmp_path / "bad.bench.toml"
    bad.write_text('[bench]\nname = "bad"\n[roles.ev_io]\ndriver = "no_such_driver"\n')
    assert dry_run(bad, workdir=tmp_path) == 2
