"""EXI codec benchmark: own codec vs the stack's Java codec, same messages, same run.

    python -m benchmarks.exi_codec [--no-jar] [--n 2000]

Messages: SessionSetupReq (-20), DC_ChargeLoopReq (-20 DC, BPT dynamic) and a certificate-bearing
CertificateInstallationReq (~2 kB). Prints encode/decode per message in microseconds.
"""
from __future__ import annotations

import argparse
import base64
import os
import time

from v2g_bench.exi.codec import Decoder, Encoder, get_grammar

HDR = {"SessionID": "0102030405060708", "TimeStamp": 1700000000}
RN = lambda v, e=0: {"Exponent": e, "Value": v}  # noqa: E731
CERT = base64.b64encode(os.urandom(1000)).decode()

MESSAGES = {
    "SessionSetupReq": ("iso20_common", {"SessionSetupReq": {"Header": HDR, "EVCCID": "WMIV1234567890ABCDEX"}}),
    "DC_ChargeLoopReq": ("iso20_dc", {"DC_ChargeLoopReq": {
        "Header": HDR, "DisplayParameters": {"PresentSOC": 55}, "MeterInfoRequested": False,
        "EVPresentVoltage": RN(400),
        "BPT_Dynamic_DC_CLReqControlMode": {
            "EVTargetEnergyRequest": RN(40, 3), "EVMaximumEnergyRequest": RN(60, 3),
            "EVMinimumEnergyRequest": RN(-20, 3), "EVMaximumChargePower": RN(50, 3),
            "EVMinimumChargePower": RN(0), "EVMaximumChargeCurrent": RN(125), "EVMaximumVoltage": RN(500),
            "EVMinimumVoltage": RN(200), "EVMaximumDischargePower": RN(50, 3),
            "EVMinimumDischargePower": RN(0), "EVMaximumDischargeCurrent": RN(125)}}}),
    "CertificateInstallationReq(2kB)": ("iso20_common", {"CertificateInstallationReq": {
        "Header": HDR, "OEMProvisioningCertificateChain": {
            "Id": "id1", "Certificate": CERT, "SubCertificates": {"Certificate": [CERT]}},
        "ListOfRootCertificateIDs": {"RootCertificateID": [
            {"X509IssuerName": "CN=V2G Root CA", "X509SerialNumber": 12345}]},
        "MaximumContractCertificateChains": 1}}),
}


def _time(fn, n: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--jar-n", type=int, default=30)
    ap.add_argument("--no-jar", action="store_true")
    a = ap.parse_args(argv)
    jar = None
    if not a.no_jar:
        from v2g_bench.exi import jar as jar

        t0 = time.perf_counter()
        jar.jar_codec()
        print(f"jar gateway start: {(time.perf_counter() - t0) * 1e3:.0f} ms")
    print(f"{'message':34} {'bytes':>6} {'own enc us':>11} {'own dec us':>11} {'jar enc us':>11} "
          f"{'jar dec us':>11} {'identical':>9}")
    for name, (s, msg) in MESSAGES.items():
        enc, dec = Encoder(get_grammar(s)), Decoder(get_grammar(s))
        data = enc.encode(msg)
        assert dec.decode(data) == msg
        te = _time(lambda: enc.encode(msg), a.n)
        td = _time(lambda: dec.decode(data), a.n)
        je = jd = float("nan")
        same = "-"
        if jar:
            jb = jar.jar_encode(msg, s)
            same = "yes" if jb == data else "NO"
            je = _time(lambda: jar.jar_encode(msg, s), a.jar_n)
            jd = _time(lambda: jar.jar_decode(data, s), a.jar_n)
        print(f"{name:34} {len(data):6d} {te:11.1f} {td:11.1f} {je:11.1f} {jd:11.1f} {same:>9}")
    if jar:
        jar.shutdown()


if __name__ == "__main__":
    main()
