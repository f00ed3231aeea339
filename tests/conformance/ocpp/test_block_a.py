"""OCPP block A — Security (Basic-auth password changes and the security events that go with them; the
station's certificate renewal: CSR, CertificateSigned, retries, an invalid certificate): OCTT charging-station
cases as rows. TLS profiles 2/3 need a bench whose CSMS runs them (SP2/SP3 claims).

The bench signs the station's CSR with a throwaway CA of its own (made per case with `cryptography`): the
oracle is the CSR the station sent (its key, its identity), never the station's own view."""
import datetime as dt

from v2g_bench.conformance import cases_test, step
from v2g_bench.conformance import ocpp
from v2g_bench.conformance.match import absent, one_of
from v2g_bench.conformance.ocpp_steps import csms_accepts_password, tc
from v2g_bench.errors import Nonconformance

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


def reconnected_with_basic_auth(ctx):
    """After the power cycle the station's new connection was accepted with its Basic-auth credentials (the
    CSMS refuses a connection without them: 401)."""
    import time
    sid = ctx.bench_profile.roles["csms"].options["station_id"]
    t0 = ctx.vars["_case_t0"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        evs = [e for e in ctx.csms.connection_events if e.station == sid and e.t >= t0]
        if any(e.kind == "accepted" for e in evs):
            break
        time.sleep(0.1)
    evs = [e for e in ctx.csms.connection_events if e.station == sid and e.t >= t0]
    ctx.attach("connections", [e.__dict__ for e in evs])
    refused = [e.detail for e in evs if e.kind == "rejected"]
    if refused or not any(e.kind == "accepted" for e in evs):
        raise Nonconformance(f"the station's connection after the power cycle was refused: {refused[:2] or 'none came'}"
                             f" (SP1: HTTP Basic auth with its identity and BasicAuthPassword)", req="TC_A_01_CS")


def _ca():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "v2g-bench case CA")])
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _sign(subject, public_key) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    ca, ca_key = _ca()
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    leaf = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    return (leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)).decode()


def csr_is_the_stations(kind: str):
    """The CSR is a valid PKCS#10 request signed by its own key; for the OCPP client certificate its CN is the
    station identity (A00.FR.5xx: the identity the CSMS knows the station by)."""
    def check(ctx):
        from cryptography import x509
        from cryptography.x509.oid import NameOID
        csr_pem = ctx.vars["sign_req"]["csr"]
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError as e:
            raise Nonconformance(f"SignCertificate.csr is not a PEM PKCS#10 request: {e}", req="A02.FR.02") from None
        if not csr.is_signature_valid:
            raise Nonconformance("the CSR's signature does not verify", req="A02.FR.02")
        cn = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        sid = ctx.bench_profile.roles["csms"].options["station_id"]
        ctx.attach("CSR subject", csr.subject.rfc4514_string())
        if kind == "ChargingStationCertificate" and cn != [sid]:
            raise Nonconformance(f"the CSR's CN is {cn}, not the station identity {sid!r}", req="A02.FR.02")
        ctx.vars["_csr"] = csr
    return step("the CSR is the station's own, valid request (signature; CN = identity for the OCPP certificate)",
                check, kind="expect")


def certificate_signed(kind: str, *, for_other_key: bool = False):
    """The CSMS answers with CertificateSigned: the CSR's key and subject signed by the bench's case CA (or,
    `for_other_key`, a certificate for a key the station never asked for)."""
    def payload(ctx):
        csr = ctx.vars["_csr"]
        key = csr.public_key()
        if for_other_key:
            from cryptography.hazmat.primitives.asymmetric import ec
            key = ec.generate_private_key(ec.SECP256R1()).public_key()
        return {"certificateChain": _sign(csr.subject, key), "certificateType": kind}
    return ocpp.call("CertificateSigned", payload)


def renewal(kind: str, trigger: str):
    return [ocpp.call("TriggerMessage", {"requestedMessage": trigger}), ocpp.answer(status="Accepted"),
            ocpp.expect("SignCertificate", within_s=10, certificateType=one_of(kind, absent), save_as="sign_req"),
            csr_is_the_stations(kind)]


def cert_timing(wait_s: int, repeat: int):
    return [ocpp.call("SetVariables", {"setVariableData": [
                {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "CertSigningWaitMinimum"},
                 "attributeValue": str(wait_s)},
                {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "CertSigningRepeatTimes"},
                 "attributeValue": str(repeat)}]}, save_as="set"),
            ocpp.answer(setVariableResult=[{"attributeStatus": "Accepted"}] * 2, of="set")]


def sign_requests(n: int, *, within_s: float, then_none_for_s: float):
    """Exactly `n` SignCertificate requests arrive (the first and its repetitions), none after."""
    def check(ctx):
        import time
        t_end = time.monotonic() + within_s
        def reqs():
            return [f for f in ctx.csms.frames if f.direction == "in" and f.msg_type == 2
                    and f.action == "SignCertificate" and f.t >= ctx.vars["_case_t0"]]
        while len(reqs()) < n and time.monotonic() < t_end:
            time.sleep(0.1)
        time.sleep(then_none_for_s)
        got = reqs()
        ctx.attach("SignCertificate times", [round(f.t - ctx.vars["_case_t0"], 2) for f in got])
        if len(got) != n:
            raise Nonconformance(f"{len(got)} SignCertificate request(s); with no CertificateSigned the request is "
                                 f"repeated CertSigningRepeatTimes times ({n} in all) and then no more",
                                 req="A02.FR.17")
    return step(f"{n} SignCertificate requests in all (CertSigningWaitMinimum doubling), then none", check,
                kind="expect")


def mark_t0(ctx):
    import time
    ctx.vars["_case_t0"] = time.monotonic()


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
    tc("TC_A_11_CS", "CSMS-triggered renewal of the station's OCPP certificate", block="A",
       steps=[*renewal("ChargingStationCertificate", "SignChargingStationCertificate"),
              certificate_signed("ChargingStationCertificate"), ocpp.answer(status="Accepted")]),
    tc("TC_A_12_CS", "CSMS-triggered renewal of the V2G (SECC) certificate", block="A", requires=("ISO15118-20",),
       steps=[*renewal("V2GCertificate", "SignV2GCertificate"),
              certificate_signed("V2GCertificate"), ocpp.answer(status="Accepted")]),
    tc("TC_A_14_CS", "A CertificateSigned that is not for the station's key is refused, with a security event",
       block="A",
       steps=[*renewal("ChargingStationCertificate", "SignChargingStationCertificate"),
              certificate_signed("ChargingStationCertificate", for_other_key=True), ocpp.answer(status="Rejected"),
              ocpp.expect("SecurityEventNotification", within_s=10, type="InvalidChargingStationCertificate")]),
    tc("TC_A_15_CS", "The CSMS rejects the SignCertificate request: the station does not insist", block="A",
       steps=[*cert_timing(1, 2),
              step("the CSMS will answer SignCertificate Rejected",
                   lambda ctx: ctx.csms.respond("SignCertificate", {"status": "Rejected"}, times=3),
                   kind="stimulus"),
              step("mark the start", mark_t0, kind="stimulus"),
              ocpp.call("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}),
              ocpp.answer(status="Accepted"),
              sign_requests(1, within_s=10, then_none_for_s=3.5),
              ocpp.call("GetVariables", {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"},
                                                              "variable": {"name": "HeartbeatInterval"}}]}),
              ocpp.answer(getVariableResult=[{"attributeStatus": "Accepted"}])]),
    tc("TC_A_23_CS", "No CertificateSigned after the request: the station repeats it (doubling), then stops",
       block="A", slow=True,                                # 1 + 2 + 4 s of CertSigningWaitMinimum doubling
       steps=[*cert_timing(1, 2),
              step("mark the start", mark_t0, kind="stimulus"),
              ocpp.call("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}),
              ocpp.answer(status="Accepted"),
              sign_requests(3, within_s=6, then_none_for_s=4.5)]),
    tc("TC_A_01_CS", "SP1: the station connects with HTTP Basic auth (identity and password)", block="A",
       requires=("SP1",), actions=("power_cycle",),
       steps=[step("mark the start", mark_t0, kind="stimulus"),
              ocpp.dut_action("power_cycle"),
              step("the new connection is accepted with the station's Basic-auth credentials",
                   reconnected_with_basic_auth, kind="expect"),
              ocpp.expect("BootNotification", within_s=20, reason="PowerUp")]),

]

test_block_a = cases_test(CASES)
