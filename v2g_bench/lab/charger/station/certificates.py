"""Certificates of the simulated station (block A02/A03: the CSMS renews the station's OCPP client certificate
or its ISO 15118 V2G certificate): a fresh key and CSR per request (SignCertificate), the CSMS's
CertificateSigned checked and installed, the request repeated when no certificate comes
(CertSigningWaitMinimum, doubled each time, CertSigningRepeatTimes), a security event for an invalid one.

Keys and CSRs with `cryptography` (ECDSA P-256, as the bench's test PKI); nothing is written to disk."""
from __future__ import annotations

import asyncio
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

KINDS = {"SignChargingStationCertificate": "ChargingStationCertificate", "SignV2GCertificate": "V2GCertificate"}


class CertificatesMixin:
    def _cert_state(self) -> dict:
        if not hasattr(self, "_certs"):
            self._certs = {"pending": {}, "installed": {}, "retry": {}}
        return self._certs

    def csr_pem(self, kind: str) -> str:
        """A new key for `kind` and its CSR: CN = the station identity (A00/A02), O = OrganizationName."""
        key = ec.generate_private_key(ec.SECP256R1())
        self._cert_state()["pending"][kind] = key
        cn = self.cfg.station_id
        if self.defects.on("csr_wrong_identity"):
            cn = "not-" + cn
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                             self.device.get("SecurityCtrlr", "OrganizationName") or "v2g-bench")])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    async def request_certificate(self, kind: str) -> None:
        """SignCertificate for `kind`; Accepted -> wait for CertificateSigned, repeating the request (new CSR)
        after CertSigningWaitMinimum x 2^n, CertSigningRepeatTimes times (A02.FR.17/18)."""
        st = self._cert_state()
        wait = float(self.device.get("SecurityCtrlr", "CertSigningWaitMinimum"))
        repeat = int(self.device.get("SecurityCtrlr", "CertSigningRepeatTimes"))
        for attempt in range(repeat + 1):
            r = await self._call("SignCertificate", csr=self.csr_pem(kind), certificate_type=kind)
            if r.status != "Accepted":
                self.errors.append(f"SignCertificate {kind}: {r.status} (no retry)")
                if not self.defects.on("cert_retry_after_rejected"):
                    return
                await asyncio.sleep(wait)
                continue
            if self.defects.on("no_cert_signing_retry"):
                return
            await asyncio.sleep(wait * 2 ** attempt)
            if kind in st["installed"] and st["installed"][kind][1] > st.get("asked_at", {}).get(kind, 0):
                return
        self.errors.append(f"no CertificateSigned for {kind} after {repeat + 1} request(s)")

    def start_certificate_request(self, kind: str) -> None:
        st = self._cert_state()
        old = st["retry"].pop(kind, None)
        if old is not None:
            old.cancel()                  # a new request replaces one still waiting
        st.setdefault("asked_at", {})[kind] = asyncio.get_running_loop().time()
        st["retry"][kind] = asyncio.ensure_future(self._safe(self.request_certificate(kind)))
        self._tasks.append(st["retry"][kind])

    def certificate_signed(self, chain: str, kind: str | None) -> tuple[str, str]:
        """Check the chain's leaf against the pending request: PEM, valid now, our key, our identity."""
        kind = kind or "ChargingStationCertificate"
        st = self._cert_state()
        why = self._invalid_certificate(chain, kind)
        if why and not self.defects.on("accept_any_certificate"):
            event = "InvalidChargingStationCertificate" if kind == "ChargingStationCertificate" else \
                "InvalidTLSCertificate"
            self._spawn(self.security_event(event, why))
            return "Rejected", why
        st["installed"][kind] = (chain, asyncio.get_running_loop().time())
        task = st["retry"].pop(kind, None)
        if task is not None:
            task.cancel()
        st["pending"].pop(kind, None)
        return "Accepted", ""

    def _invalid_certificate(self, chain: str, kind: str) -> str:
        key = self._cert_state()["pending"].get(kind)
        if key is None:
            return f"no {kind} was requested"
        try:
            certs = x509.load_pem_x509_certificates(chain.encode())
        except ValueError as e:
            return f"certificateChain is not PEM: {e}"[:255]
        leaf = certs[0]
        now = dt.datetime.now(dt.timezone.utc)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            return "the certificate is not valid now"
        pub = serialization.PublicFormat.SubjectPublicKeyInfo
        if (leaf.public_key().public_bytes(serialization.Encoding.DER, pub)
                != key.public_key().public_bytes(serialization.Encoding.DER, pub)):
            return "the certificate is not for the key of the station's request"
        cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if kind == "ChargingStationCertificate" and (not cns or cns[0].value != self.cfg.station_id):
            return "the certificate's CN is not the station identity"
        return ""
