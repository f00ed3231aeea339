"""DUT actions: one interface, three performers; a case states its actions and a bench without a way to
perform one gets the reason to skip."""
from __future__ import annotations

import pytest

from v2g_bench.dut import actions as A
from v2g_bench.errors import BenchError, Inconclusive


class FakeDut:
    def __init__(self):
        self.ops = []

    def op(self, name, timeout_s=10.0, **kw):
        self.ops.append((name, kw))
        return {"ok": True, "op": name}


def test_virtual_lab_performs_its_ops():
    dut = FakeDut()
    chain = A.ActionChain([A.VirtualLabActions(dut)])
    assert chain.missing(["plug_in", "power_cycle", "cut_network"]) is None
    r = chain.perform("present_invalid_token")
    assert dut.ops == [("station.present_token", {"id_token": "INVALID-0000"})] and r.performer == "virtual lab"
    assert "emergency_stop" in chain.missing(["emergency_stop"])


def test_answers_file_decides_unattended(tmp_path):
    f = tmp_path / "answers.toml"
    f.write_text('[actions]\nplug_in = "done"\npower_cycle = "unable"\n')
    op = A.OperatorPrompt(answers=A.load_answers(f))
    chain = A.ActionChain([op])
    assert chain.missing(["plug_in"]) is None
    why = chain.missing(["power_cycle", "cut_network"])
    assert "power_cycle" in why and "unable" in why and "cut_network" in why
    r = chain.perform("plug_in")
    assert r.detail["answer"] == "done" and r.detail["source"] == "answers file"
    assert op.log[-1]["action"] == "plug_in"          # recorded for the report


@pytest.mark.parametrize("text", ["not toml [", "[other]\nx=1\n", '[actions]\nplug_in = "maybe"\n',
                                  '[actions]\nfly = "done"\n'])
def test_bad_answers_file_is_a_clear_error(tmp_path, text):
    f = tmp_path / "a.toml"
    f.write_text(text)
    with pytest.raises(BenchError):
        A.load_answers(f)


def test_operator_prompt_reads_the_terminal_with_a_timeout(tmp_path):
    import os
    import pty
    master, slave = pty.openpty()
    try:
        op = A.OperatorPrompt(answers=None, timeout_s=5.0, tty=os.ttyname(slave))
        assert op.can("unplug")
        os.write(master, b"\n")                            # the operator presses Enter: done
        assert op.perform("unplug").detail["answer"] == "done"
        os.write(master, b"s\n")                           # 's': cannot -> the case is inconclusive, not failed
        with pytest.raises(Inconclusive):
            op.perform("power_cycle")
        quick = A.OperatorPrompt(answers=None, timeout_s=0.2, tty=os.ttyname(slave))
        with pytest.raises(Inconclusive, match="timeout"):
            quick.perform("cut_network")
        assert [e["answer"] for e in op.log] == ["done", "unable"]
    finally:
        os.close(master)
        os.close(slave)


def test_no_terminal_and_no_answers_file_means_unavailable():
    op = A.OperatorPrompt(answers=None, tty="/nonexistent/tty")
    assert not op.can("plug_in") and "no terminal" in op.why_not("plug_in")


def test_hardware_hook_registration():
    calls = []
    A.register_hook("plug_in", lambda **kw: calls.append(kw) or "plugged", source="test board")
    try:
        hw = A.HardwareActions()
        assert hw.can("plug_in") and not hw.can("power_cycle")
        assert hw.perform("plug_in").performer == "bench hardware (test board)" and calls == [{}]
        with pytest.raises(BenchError):
            A.register_hook("teleport", lambda: None, source="x")
    finally:
        A.unregister_hook("plug_in")
    assert not A.HardwareActions().can("plug_in")
