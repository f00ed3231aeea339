"""Safety: the bench's unwind brings the EV-side board to CP A, unplugged, inlet de-energized, on a
normal end, an exception and Ctrl-C (KeyboardInterrupt) — verified on the lab's side of the pty."""
from __future__ import annotations

import pytest

from v2g_bench.harness.bench import Bench
from v2g_bench.profiles import load_bench


@pytest.fixture
def bench_profile(board_lab, tmp_path):
    p = tmp_path / "evio.bench.toml"
    p.write_text(f'[bench]\nname = "evio-test"\n\n[roles.ev_io]\ndriver = "evio_serial"\n'
                 f'resource = "{board_lab.path}"\ntimeout_s = 1.0\nwatchdog_s = 2.0\n')
    return load_bench(p)


@pytest.mark.parametrize("exc", [None, RuntimeError, KeyboardInterrupt])
def test_unwind_ends_unplugged_and_deenergized(bench_profile, board_lab, exc):
    with pytest.raises(exc) if exc else _nothing():
        with Bench(bench_profile) as b:
            io = b.role("ev_io")
            io.plug_in(pp_ohm=220.0, state="B")
            io.set_cp("C")
            board_lab.call(board_lab.plant.set_contactor, True)
            board_lab.call(board_lab.plant.set_power_setpoint, 3000.0)
            assert board_lab.plant.state().contactor_closed
            if exc:
                raise exc("test")
    st = board_lab.board.status()
    assert st["applied"] == "A" and not st["plug"] and not st["estop"]
    assert not board_lab.plant.state().contactor_closed
    assert board_lab.plant.pilot.reading().state == "A"
    assert [r.step for r in b.unwind_log if r.role == "ev_io" and r.ok] == ["safe_state", "close"]


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_a_killed_bench_process_leaves_the_ev_unplugged(board_lab):
    """Lost link: the process holding the board dies (SIGKILL: no unwind at all); the board's watchdog opens
    the relay, the charger sees A and de-energizes."""
    import subprocess
    import sys
    import time
    code = ("from v2g_bench.instruments.ev_io import EvIoSerialBoard\n"
            "from v2g_bench.roles import RoleConfig\n"
            f"io = EvIoSerialBoard.open(RoleConfig('ev_io', 'evio_serial', resource={board_lab.path!r}, timeout_s=1.0,"
            " options={'watchdog_s': 0.5}), None)\n"
            "io.plug_in(state='B'); io.set_cp('C'); print('ready', flush=True)\n"
            "import time; time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        board_lab.call(board_lab.plant.set_contactor, True)
        assert board_lab.plant.state().contactor_closed
        p.kill()
        p.wait(5)
        deadline = time.monotonic() + 3
        while board_lab.board.plug and time.monotonic() < deadline:
            time.sleep(0.05)
        st = board_lab.board.status()
        assert not st["plug"] and st["applied"] == "A"
        assert not board_lab.plant.state().contactor_closed
        assert any(e[1] == "SAFE" and e[2] == "watchdog" for e in board_lab.board.events)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(5)
