"""Test-time PKI for OCPP security profiles 2 and 3 (never committed: made fresh in a temp dir).

A CSMS root CA signs the CSMS server certificate (SAN: localhost, 127.0.0.1, ::1) and one client
certificate per charging station whose subject CN is the station identity (the OCPP
security profile 3 ties the certificate CN to the station identity). ECDSA P-256 keys: allowed by
the OCPP security profiles and fast to generate.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, key, cert) -> tuple[Path, Path]:
    key_path = path.with_suffix(".key")
    cert_path = path.with_suffix(".pem")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _cert(subject_cn: str, key, issuer_name, issuer_key, *, ca: bool, days: int = 2, sans=(), eku=None,
          not_before: dt.datetime | None = None):
    now = not_before or dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "v2g-bench test PKI")])
    b = (x509.CertificateBuilder()
         .subject_name(subject)
         .issuer_name(issuer_name or subject)      # a root is its own issuer
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


@dataclass
class TestPKI:
    """Files of one test PKI; `station_cert(id)` issues a client certificate with CN = id."""

    dir: Path
    ca_cert: Path = None
    ca_key: Path = None
    server_cert: Path = None
    server_key: Path = None
    _ca: tuple = field(default=None, repr=False)

    @classmethod
    def create(cls, directory: str | Path | None = None, *, ca_name: str = "v2g-bench CSMS root CA") -> "TestPKI":
        d = Path(directory or tempfile.mkdtemp(prefix="v2g-csms-pki-"))
        d.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca = _cert(ca_name, ca_key, None, None, ca=True, days=3)
        pki = cls(dir=d)
        pki.ca_cert, pki.ca_key = _write(d / "csms-root-ca", ca_key, ca)
        pki._ca = (ca, ca_key)
        skey = _key()
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1"))]
        server = _cert("localhost", skey, ca.subject, ca_key, ca=False, sans=sans, eku=ExtendedKeyUsageOID.SERVER_AUTH)
        pki.server_cert, pki.server_key = _write(d / "csms-server", skey, server)
        return pki

    def station_cert(self, station_id: str, *, expired: bool = False) -> tuple[Path, Path]:
        """Client certificate (CN = station_id) signed by this CA -> (cert path, key path)."""
        ca, ca_key = self._ca
        key = _key()
        nb = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10) if expired else None
        cert = _cert(station_id, key, ca.subject, ca_key, ca=False, days=1, eku=ExtendedKeyUsageOID.CLIENT_AUTH,
                     not_before=nb)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in station_id)
        return _write(self.dir / f"station-{safe}{'-expired' if expired else ''}", key, cert)

    def expired_server_cert(self) -> tuple[Path, Path]:
        """A server certificate for localhost from this CA that expired days ago -> (cert path, key path):
        a CSMS misconfigured with it is refused by every station that checks its certificates."""
        ca, ca_key = self._ca
        key = _key()
        sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        cert = _cert("localhost", key, ca.subject, ca_key, ca=False, days=1, sans=sans,
                     eku=ExtendedKeyUsageOID.SERVER_AUTH,
                     not_before=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=10))
        return _write(self.dir / "csms-server-expired", key, cert)

    # -- ssl contexts -----------------------------------------------------------------------
    def server_context(self, *, require_client_cert: bool) -> ssl.SSLContext:
        return server_ssl_context(self.server_cert, self.server_key, self.ca_cert if require_client_cert else None)

    def client_context(self, station_id: str | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_cert))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if station_id:
            cert, key = self.station_cert(station_id)
            ctx.load_cert_chain(str(cert), str(key))
        return ctx


def server_ssl_context(cert: str | Path, key: str | Path, client_ca: str | Path | None) -> ssl.SSLContext:
    """TLS >= 1.2 server context; with `client_ca`, a client certificate is required (profile 3)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2   # OCPP security profiles 2 and 3 require TLS 1.2 or above
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca:
        ctx.load_verify_locations(str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
