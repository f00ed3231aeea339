"""Fixtures for the simulated station's tests: a real CSMS emulator on loopback and the station
(`InProcessStation`: the lab's real Plant, the station service on its own loop thread)."""
from __future__ import annotations

import pytest

from v2g_bench.csms.emulator import CSMSEmulator
from v2g_bench.lab.charger.inprocess import InProcessStation

PASSWORD = "bench-password-0123"


@pytest.fixture
def make_csms(tmp_path):
    made = []

    def make(**options):
        options.setdefault("record_path", str(tmp_path / f"frames-{len(made)}.jsonl"))
        options.setdefault("security_profile", 1)
        options.setdefault("password", PASSWORD)
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
        return h
    yield make
    for h in reversed(made):
        h.close()


@pytest.fixture
def online(make_csms, make_station):
    """(csms, station) connected and booted in the given OCPP version."""
    def go(version: str, **station_cfg):
        csms = make_csms()
        st = make_station(ocpp_version=version, **station_cfg)
        r = st.op("station.connect", url=csms.url, security_profile=1, password=PASSWORD)
        assert r["connected"], r
        csms.expect("BootNotification", timeout=5)
        return csms, st
    return go
