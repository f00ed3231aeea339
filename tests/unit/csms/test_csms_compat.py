"""Each workaround in v2g_bench.csms.compat, shown failing without it and passing with it."""
from __future__ import annotations

import asyncio
import json
import sys

import pytest
from ocpp.exceptions import OCPPError

from v2g_bench.csms import compat
from v2g_bench.csms.validation import schemas_for


class CapturingConnection:
    """Stands in for the WebSocket under the library's ChargePoint: records what it sends."""

    def __init__(self, reply=None):
        self.sent: list[str] = []
        self.reply = reply

    async def send(self, text):
        self.sent.append(text)

    async def recv(self):
        await asyncio.sleep(3600)


@pytest.fixture
def unpatched():
    compat.uninstall()
    try:
        yield
    finally:
        compat.install()


def _period_profile_call():
    from ocpp.v21 import call
    from ocpp.v21.datatypes import ChargingProfileType, ChargingSchedulePeriodType, ChargingScheduleType
    period = ChargingSchedulePeriodType(start_period=0, limit=7000.0, limit_l2=7000.0, limit_l3=7000.0,
                                        number_phases=3)
    sched = ChargingScheduleType(id=1, charging_rate_unit="W", charging_schedule_period=[period])
    prof = ChargingProfileType(id=1, stack_level=0, charging_profile_purpose="TxDefaultProfile",
                               charging_profile_kind="Relative", charging_schedule=[sched])
    return call.SetChargingProfile(evse_id=1, charging_profile=prof)


def _send_with_library(payload):
    from ocpp.v21 import ChargePoint
    conn = CapturingConnection()
    cp = ChargePoint("CS1", conn, response_timeout=0.2)

    async def go():
        try:
            await cp.call(payload)
        except asyncio.TimeoutError:
            pass            # nobody answers: we only look at what was sent
    asyncio.run(go())
    return conn.sent


def test_outbound_L2_L3_field_names_are_schema_names():
    sent = _send_with_library(_period_profile_call())
    msg = json.loads(sent[0])
    period = msg[3]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
    assert "limit_L2" in period and "limit_L3" in period and "limitL2" not in period
    assert schemas_for("2.1").check("SetChargingProfile", "Request", msg[3]) == []


def test_outbound_L2_L3_field_names_broken_without_compat(unpatched):
    with pytest.raises(OCPPError) as ei:        # the library's own validation refuses its own frame
        _send_with_library(_period_profile_call())
    assert "limitL2" in str(ei.value) or "limit" in str(ei.value)


def test_field_name_table_is_derived_from_the_schemas():
    table = compat.field_name_exceptions()
    assert table["limit_l2"] == "limit_L2" and table["discharge_limit_l3"] == "dischargeLimit_L3"
    assert table["fixed_pf"] == "fixedPF" and table["receipt_url"] == "receiptUrl"
    assert 35 <= len(table) <= 60


def _unhandled_action_reply():
    from ocpp.v21 import ChargePoint
    conn = CapturingConnection()
    cp = ChargePoint("CS1", conn)
    asyncio.run(cp.route_message(json.dumps([2, "id-1", "Reset", {"type": "Immediate"}])))
    asyncio.run(cp.route_message(json.dumps([2, "id-2", "NoSuchAction", {}])))
    return [json.loads(s) for s in conn.sent]


def test_unhandled_2_1_action_gets_a_callerror():
    replies = _unhandled_action_reply()
    assert [r[:3] for r in replies] == [[4, "id-1", "NotSupported"], [4, "id-2", "NotImplemented"]]


def test_unhandled_2_1_action_silently_dropped_without_compat(unpatched):
    assert _unhandled_action_reply() == []


def test_python_is_3_12_or_newer_because_3_11_loses_cancellations_in_call():
    assert sys.version_info >= (3, 12)
