"""Fixtures for the physical-layer tests: a bare Plant with the EV-IO board service on a real pty."""
from __future__ import annotations

import types

import pytest

from v2g_bench.harness.asyncrt import LoopThread
from v2g_bench.lab.plant import LabClock, Plant
from v2g_bench.roles import RoleConfig


class _Ctx:
    """What a lab service gets (ServiceContext's fields the board uses)."""

    def __init__(self):
        self.ready: dict = {}
        self.ops: dict = {}

    def register_op(self, name, fn):
        self.ops[name] = fn


@pytest.fixture
def board_lab():
    """A plant + the serial board service (pty) on an asyncio loop thread; yields a namespace with
    plant, board, ops (the control ops it registered), path (the pty) and call(fn) (runs fn on the loop)."""
    from v2g_bench.lab.frontends import serial_board

    loop = LoopThread("physical-test")
    plant = Plant(clock=LabClock())
    plant.set_battery_output(True)          # the DC link: a bench switches its battery emulator on
    ctx = _Ctx()
    svc = loop.run(serial_board.start_service(plant, {}, ctx), timeout=5)

    async def _on_loop(fn, args, kw):
        return fn(*args, **kw)

    ns = types.SimpleNamespace(plant=plant, board=svc.board, ops=ctx.ops, path=ctx.ready["serial_board"]["path"],
                               call=lambda fn, *a, **kw: loop.run(_on_loop(fn, a, kw), timeout=5))
    try:
        yield ns
    finally:
        loop.run(svc.stop(), timeout=5)
        loop.stop()


@pytest.fixture
def evio(board_lab):
    """The ev_io driver on the board's pty (real pyserial), closed after the test."""
    from v2g_bench.instruments.ev_io import EvIoSerialBoard

    cfg = RoleConfig(role="ev_io", driver="evio_serial", resource=board_lab.path, timeout_s=1.0,
                     options={"watchdog_s": 0})
    drv = EvIoSerialBoard.open(cfg, None)
    try:
        yield drv
    finally:
        drv.close()
