"""Fixtures for the simulated station's tests. `make_csms` and `make_station` are the shared ones of
tests/unit/conftest.py; here the CSMS defaults to security profile 1 with PASSWORD, and `online` connects."""
from __future__ import annotations

import pytest

PASSWORD = "bench-password-0123"


@pytest.fixture
def make_csms(make_csms):
    def make(**options):
        options.setdefault("security_profile", 1)
        options.setdefault("password", PASSWORD)
        return make_csms(**options)
    return make


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
