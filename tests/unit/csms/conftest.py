"""Fixtures for the CSMS tests: a real CSMS emulator on loopback and the simulated station
(`lab_station`) running against the lab's real `Plant` in its own event-loop thread."""
from __future__ import annotations

import pytest

from v2g_bench.harness.asyncrt import LoopThread
from v2g_bench.csms.emulator import CSMSEmulator
from v2g_bench.lab.charger.station import start_service
from v2g_bench.lab.plant import Plant

PASSWORD = "bench-password-0123"


class OpsContext:
    """The piece of the lab's service context the station uses: a registry of control-port ops."""

    def __init__(self):
        self.ops = {}

    def register_op(self, name, fn):
        self.ops[name] = fn


class StationHarness:
    def __init__(self, cfg: dict):
        self.loop = LoopThread("cs-station")
        self.plant = Plant()
        self.ctx = OpsContext()
        self.svc = self.loop.run(start_service(self.plant, cfg, self.ctx), 5)

    def op(self, name, timeout=15.0, **args):
        return self.loop.run(self.ctx.ops[name](**args), timeout)

    def close(self):
        try:
            self.loop.run(self.svc.stop(), 10)
        finally:
            self.loop.stop()


@pytest.fixture
def make_csms(tmp_path):
    made = []

    def make(**options):
        from v2g_bench.harness.evidence import Evidence
        if Evidence.current() is None:      # under the bench plugin the frames go to the test's evidence
            options.setdefault("record_path", str(tmp_path / f"frames-{len(made)}.jsonl"))
        c = CSMSEmulator(options, pki_dir=str(tmp_path / f"pki-{len(made)}")).start()
        made.append(c)
        return c
    yield make
    for c in reversed(made):
        c.close()


@pytest.fixture
def make_station():
    made = []

    def make(**cfg):
        cfg.setdefault("meter_interval_s", 0.5)
        h = StationHarness(cfg)
        made.append(h)
        return h
    yield make
    for h in reversed(made):
        h.close()
