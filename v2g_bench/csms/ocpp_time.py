"""OCPP date-times (RFC 3339 in UTC with a Z), in one place for the CSMS emulator and the simulated stations."""
from __future__ import annotations

import datetime as dt


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def ocpp_time(t: dt.datetime, timespec: str = "milliseconds") -> str:
    """`t` as an OCPP dateTime: UTC, 'Z', to the millisecond by default (timespec as datetime.isoformat)."""
    return t.astimezone(dt.timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def utc_now_iso() -> str:
    """Now as an OCPP dateTime (milliseconds)."""
    return ocpp_time(utc_now())
