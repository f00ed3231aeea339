"""OCPP block A — Security (Basic-auth password changes and the security events that go with them):
OCTT charging-station cases as rows. TLS profiles 2/3 need a bench whose CSMS runs them (SP2/SP3 claims)."""
from v2g_bench.conformance import cases_test, step
from v2g_bench.conformance import ocpp
from v2g_bench.conformance.ocpp_steps import csms_accepts_password, tc

NEW_PASSWORD = "a-new-basic-auth-password-0042"


def password(value: str):
    return ocpp.call("SetVariables", {"setVariableData": [{"component": {"name": "SecurityCtrlr"},
                                                           "variable": {"name": "BasicAuthPassword"},
                                                           "attributeValue": value}]})


def reconnected_with_new_password(ctx):
    """The station comes back on a new connection that the CSMS accepted with the new password."""
    from v2g_bench.errors import Nonconformance
    sid = ctx.bench_profile.roles["csms"].options["station_id"]
    ctx.csms.wait_for_disconnect(sid, 10)
    ctx.csms.wait_for_station(sid, timeout=30)
    accepted = [e for e in ctx.csms.connection_events if e.kind == "accepted" and e.station == sid]
    refused = [e for e in ctx.csms.connection_events if e.kind == "rejected" and e.station == sid]
    ctx.attach("connections", [e.__dict__ for e in ctx.csms.connection_events])
    if len(accepted) < 2:
        raise Nonconformance(f"the station did not reconnect with the new password (refused: "
                             f"{[e.detail for e in refused]})", req="TC_A_09_CS")


CASES = [
    tc("TC_A_09_CS", "New BasicAuthPassword accepted and used on reconnect", block="A", requires=("SP1",),
       steps=[csms_accepts_password(NEW_PASSWORD),
              password(NEW_PASSWORD), ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}]),
              ocpp.expect("SecurityEventNotification", within_s=10, type="ReconfigurationOfSecurityParameters"),
              step("the station reconnects, authenticated with the new password", reconnected_with_new_password,
                   kind="expect")]),
    tc("TC_A_10_CS", "An invalid BasicAuthPassword is refused", block="A", requires=("SP1",),
       steps=[password("short"), ocpp.answer(setVariableResult=[{"attributeStatus": "Rejected"}]),
              ocpp.no_call("SecurityEventNotification", for_s=1.5)]),
]

test_block_a = cases_test(CASES)
