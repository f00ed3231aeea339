"""Fixtures shared by the unit tests of the OCPP side (tests/unit/csms, tests/unit/station): a real CSMS
emulator on loopback and the simulated station in this process (`InProcessStation`: the lab's real Plant,
the station service on its own event-loop thread). Constants live in each folder's *_helpers.py module:
`from conftest import …` picks whichever conftest was imported first when several folders run together."""
from __future__ import annotations

import pytest

from v2g_bench.csms.emulator import CSMSEmulator
from v2g_bench.lab.charger.inprocess import InProcessStation


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
        h = InProcessStation(cfg)
        made.append(h)
        h.plant.set_battery_output(True)    # the DC link: a bench has switched its battery emulator on
        return h
    yield make
    for h in reversed(made):
        h.close()
