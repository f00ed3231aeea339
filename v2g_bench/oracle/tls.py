"""Decrypt the TLS records of a captured ISO 15118 connection with a key log (NSS SSLKEYLOGFILE format).

ISO 15118-20 runs over TLS 1.3 only and -2 PnC over TLS 1.2, so a capture of a real session is encrypted:
without keys neither the oracle nor the wire response times could see a single message. The EV emulator writes
the key log of its own sessions next to its pcap (`ev.keylog`); a lab with another client (a real car through a
tap, Wireshark's SSLKEYLOGFILE) gives its own with `v2g-bench analyze --keylog`.

Written by hand on `cryptography`'s AEAD, CBC and HKDF primitives: scapy's TLS layer (the library the capture
is read with) decrypted the TLS 1.3 handshake of a test capture but not its application records, and failed in
its TCP session reassembly on loopback captures. What is here is small: record framing, the key schedules of
RFC 8446 §7.1-7.3 (TLS 1.3) and RFC 5246 §5/§6.3 (TLS 1.2 PRF), and the AEAD/CBC record protections those use.

Suites: TLS 1.3 AES-128/256-GCM, ChaCha20-Poly1305, AES-128-CCM(-8); TLS 1.2 AES-GCM and AES-CBC-SHA256/384
(ISO 15118-2 mandates TLS_ECDH(E)_ECDSA_WITH_AES_128_CBC_SHA256), with or without encrypt_then_mac.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass, field
from pathlib import Path

from v2g_bench.errors import BenchError

HANDSHAKE, CCS, ALERT, APPDATA = 22, 20, 21, 23
EXT_SUPPORTED_VERSIONS, EXT_ENCRYPT_THEN_MAC = 0x002B, 0x0016

# suite -> (kind, key length, hash name, fixed IV length, MAC length, tag length)
TLS13_SUITES = {
    0x1301: ("aesgcm", 16, "sha256", 12, 0, 16), 0x1302: ("aesgcm", 32, "sha384", 12, 0, 16),
    0x1303: ("chacha", 32, "sha256", 12, 0, 16), 0x1304: ("aesccm", 16, "sha256", 12, 0, 16),
    0x1305: ("aesccm", 16, "sha256", 12, 0, 8),
}
TLS12_SUITES = {
    0xC02B: ("aesgcm", 16, "sha256", 4, 0, 16), 0xC02C: ("aesgcm", 32, "sha384", 4, 0, 16),
    0xC02F: ("aesgcm", 16, "sha256", 4, 0, 16), 0xC030: ("aesgcm", 32, "sha384", 4, 0, 16),
    0x009C: ("aesgcm", 16, "sha256", 4, 0, 16), 0x009D: ("aesgcm", 32, "sha384", 4, 0, 16),
    0xC023: ("cbc", 16, "sha256", 16, 32, 0), 0xC025: ("cbc", 16, "sha256", 16, 32, 0),
    0xC027: ("cbc", 16, "sha256", 16, 32, 0), 0x003C: ("cbc", 16, "sha256", 16, 32, 0),
    0x003D: ("cbc", 32, "sha256", 16, 32, 0), 0xC024: ("cbc", 32, "sha384", 16, 48, 0),
    0xC028: ("cbc", 32, "sha384", 16, 48, 0),
}


class KeyLog:
    """Secrets from an NSS key log file, by (label, client random)."""

    def __init__(self, secrets: dict[tuple[str, bytes], bytes] | None = None, source: str = ""):
        self.secrets = secrets or {}
        self.source = source

    @classmethod
    def load(cls, path: str | Path) -> KeyLog:
        p = Path(path)
        try:
            text = p.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise BenchError(f"cannot read the TLS key log {p}: {exc}", where="oracle.tls",
                             fix="give an NSS key log file (SSLKEYLOGFILE format)") from None
        secrets: dict[tuple[str, bytes], bytes] = {}
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            try:
                label, cr, secret = parts[0], bytes.fromhex(parts[1]), bytes.fromhex(parts[2])
            except (IndexError, ValueError):
                raise BenchError(f"{p}:{n}: not a key log line ({line[:60]!r})", where="oracle.tls",
                                 fix="each line is '<LABEL> <client random hex> <secret hex>'") from None
            secrets[(label, cr)] = secret
        return cls(secrets, str(p))

    def get(self, label: str, client_random: bytes) -> bytes | None:
        return self.secrets.get((label, client_random))

    def __len__(self) -> int:
        return len(self.secrets)


@dataclass
class Record:
    offset: int               # byte offset of the record's header in its direction's TCP stream
    end: int                  # offset after the record
    type: int
    version: int
    body: bytes


@dataclass
class DecryptedStream:
    """Per direction ("c" EV/client, "s" SECC/server): [(plaintext offset, stream offset of the record's end,
    application bytes)], and what could not be done."""
    version: str = ""
    suite: int = 0
    chunks: dict[str, list[tuple[int, int, bytes]]] = field(default_factory=lambda: {"c": [], "s": []})
    problem: str = ""


def records(buf: bytes) -> tuple[list[Record], int]:
    """The TLS records of one direction's bytes; -> (records, bytes left over)."""
    out, pos = [], 0
    while len(buf) - pos >= 5:
        typ, ver, n = struct.unpack(">BHH", buf[pos:pos + 5])
        if len(buf) - pos - 5 < n:
            break
        out.append(Record(pos, pos + 5 + n, typ, ver, buf[pos + 5:pos + 5 + n]))
        pos += 5 + n
    return out, len(buf) - pos


def _hello(rec: Record | None, want: int) -> bytes | None:
    if rec is None or rec.type != HANDSHAKE or len(rec.body) < 4 or rec.body[0] != want:
        return None
    return rec.body[4:4 + int.from_bytes(rec.body[1:4], "big")]


def _server_hello(body: bytes) -> tuple[bytes, int, int, bool]:
    """-> (server random, cipher suite, negotiated version, encrypt_then_mac)."""
    random = body[2:34]
    sid = body[34]
    pos = 35 + sid
    suite = int.from_bytes(body[pos:pos + 2], "big")
    pos += 3
    version, etm = int.from_bytes(body[0:2], "big"), False
    if pos + 2 <= len(body):
        end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
        pos += 2
        while pos + 4 <= end:
            et, el = struct.unpack(">HH", body[pos:pos + 4])
            if et == EXT_SUPPORTED_VERSIONS and el == 2:
                version = int.from_bytes(body[pos + 4:pos + 6], "big")
            elif et == EXT_ENCRYPT_THEN_MAC:
                etm = True
            pos += 4 + el
    return random, suite, version, etm


# --- key schedules ---------------------------------------------------------------------------------
def _hkdf_expand_label(secret: bytes, label: str, length: int, hash_name: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label.encode()
    info = struct.pack(">H", length) + bytes([len(full)]) + full + b"\x00"
    algo = hashes.SHA256() if hash_name == "sha256" else hashes.SHA384()
    return HKDFExpand(algo, length, info).derive(secret)


def _prf12(secret: bytes, label: bytes, seed: bytes, length: int, hash_name: str) -> bytes:
    """RFC 5246 §5 P_hash."""
    h = getattr(hashlib, hash_name)
    out, a = b"", label + seed
    while len(out) < length:
        a = hmac.new(secret, a, h).digest()
        out += hmac.new(secret, a + label + seed, h).digest()
    return out[:length]


class _Protection:
    """One direction's record protection: AEAD (TLS 1.3 / 1.2 GCM) or CBC + HMAC (TLS 1.2)."""

    def __init__(self, kind: str, key: bytes, iv: bytes, tag: int = 16, mac_key: bytes = b"",
                 hash_name: str = "sha256", tls13: bool = True, etm: bool = False):
        self.kind, self.key, self.iv, self.tag, self.mac_key = kind, key, iv, tag, mac_key
        self.hash_name, self.tls13, self.etm, self.seq = hash_name, tls13, etm, 0

    def _aead(self):
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

        if self.kind == "aesgcm":
            return AESGCM(self.key)
        if self.kind == "chacha":
            return ChaCha20Poly1305(self.key)
        return AESCCM(self.key, tag_length=self.tag)

    def open(self, rec: Record) -> tuple[int, bytes]:
        """-> (content type, plaintext). Raises ValueError when the record does not authenticate."""
        from cryptography.exceptions import InvalidTag

        seq = self.seq
        self.seq += 1
        header = struct.pack(">BHH", rec.type, rec.version, len(rec.body))
        try:
            if self.tls13:
                nonce = bytes(a ^ b for a, b in zip(self.iv, seq.to_bytes(12, "big")))
                inner = self._aead().decrypt(nonce, rec.body, header)
                inner = inner.rstrip(b"\x00")
                if not inner:
                    raise ValueError("an empty TLS 1.3 inner plaintext")
                return inner[-1], inner[:-1]
            if self.kind != "cbc":
                explicit, ct = rec.body[:8], rec.body[8:]
                aad = struct.pack(">QBHH", seq, rec.type, rec.version, len(ct) - self.tag)
                return rec.type, self._aead().decrypt(self.iv + explicit, ct, aad)
        except InvalidTag:
            raise ValueError(f"record {seq} does not authenticate with the logged keys") from None
        return rec.type, self._cbc(rec, seq)

    def _cbc(self, rec: Record, seq: int) -> bytes:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        h, mlen = getattr(hashlib, self.hash_name), len(self.mac_key)
        body = rec.body
        if self.etm:
            body, mac = body[:-mlen], body[-mlen:]
            want = hmac.new(self.mac_key, struct.pack(">QBHH", seq, rec.type, rec.version, len(body)) + body,
                            h).digest()
            if not hmac.compare_digest(mac, want):
                raise ValueError(f"record {seq}: the encrypt-then-MAC does not verify with the logged keys")
        iv, ct = body[:16], body[16:]
        if not ct or len(ct) % 16:
            raise ValueError(f"record {seq}: CBC ciphertext of {len(ct)} bytes")
        dec = Cipher(algorithms.AES(self.key), modes.CBC(iv)).decryptor()
        p = dec.update(ct) + dec.finalize()
        pad = p[-1]
        if pad + 1 > len(p):
            raise ValueError(f"record {seq}: bad CBC padding (wrong keys?)")
        p = p[:-(pad + 1)]
        if self.etm:
            return p
        content, mac = p[:-mlen], p[-mlen:]
        want = hmac.new(self.mac_key, struct.pack(">QBHH", seq, rec.type, rec.version, len(content)) + content,
                        h).digest()
        if not hmac.compare_digest(mac, want):
            raise ValueError(f"record {seq}: the MAC does not verify with the logged keys")
        return content


def decrypt(client: bytes, server: bytes, keylog: KeyLog) -> DecryptedStream:
    """Both directions of one TLS connection -> their application data, or the reason it cannot be had."""
    out = DecryptedStream()
    crecs, _ = records(client)
    srecs, _ = records(server)
    ch = _hello(crecs[0] if crecs else None, 1)
    sh = _hello(srecs[0] if srecs else None, 2)
    if ch is None or sh is None:
        out.problem = "no ClientHello/ServerHello at the start of the connection (capture started mid-session?)"
        return out
    client_random = ch[2:34]
    try:
        server_random, suite, version, etm = _server_hello(sh)
    except (IndexError, struct.error):
        out.problem = "a malformed ServerHello"
        return out
    if len(client_random) != 32 or len(server_random) != 32:
        out.problem = "a truncated ClientHello/ServerHello"
        return out
    out.suite = suite
    if version == 0x0304:
        out.version = "TLS 1.3"
        spec = TLS13_SUITES.get(suite)
        if spec is None:
            out.problem = f"TLS 1.3 cipher suite {suite:#06x} is not supported by the oracle"
            return out
        kind, klen, hname, ivlen, _, tag = spec
        secrets = {d: (keylog.get(f"{'CLIENT' if d == 'c' else 'SERVER'}_HANDSHAKE_TRAFFIC_SECRET", client_random),
                       keylog.get(f"{'CLIENT' if d == 'c' else 'SERVER'}_TRAFFIC_SECRET_0", client_random))
                   for d in "cs"}
        if not all(a and b for a, b in secrets.values()):
            out.problem = (f"the key log {keylog.source or ''} has no TLS 1.3 secrets for client random "
                           f"{client_random.hex()[:16]}…")
            return out
        for d, recs in (("c", crecs), ("s", srecs)):
            hs, app = secrets[d]
            try:
                _open13(recs, hs, app, kind, klen, hname, ivlen, tag, out.chunks[d])
            except ValueError as exc:
                out.problem = f"{'EV' if d == 'c' else 'SECC'} direction: {exc}"
                return out
        return out
    out.version = {0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0"}.get(version, f"{version:#06x}")
    spec = TLS12_SUITES.get(suite)
    if version != 0x0303 or spec is None:
        out.problem = f"{out.version} cipher suite {suite:#06x} is not supported by the oracle"
        return out
    master = keylog.get("CLIENT_RANDOM", client_random)
    if master is None:
        out.problem = f"the key log {keylog.source or ''} has no CLIENT_RANDOM for {client_random.hex()[:16]}…"
        return out
    kind, klen, hname, ivlen, mlen, tag = spec
    fixed_iv = 0 if kind == "cbc" else ivlen
    kb = _prf12(master, b"key expansion", server_random + client_random, 2 * (mlen + klen + fixed_iv), hname)
    cmac, smac = kb[:mlen], kb[mlen:2 * mlen]
    ckey, skey = kb[2 * mlen:2 * mlen + klen], kb[2 * mlen + klen:2 * (mlen + klen)]
    civ = kb[2 * (mlen + klen):2 * (mlen + klen) + fixed_iv]
    siv = kb[2 * (mlen + klen) + fixed_iv:]
    for d, recs, key, iv, mac in (("c", crecs, ckey, civ, cmac), ("s", srecs, skey, siv, smac)):
        prot = _Protection(kind, key, iv, tag, mac, hname, tls13=False, etm=etm)
        encrypted, plain_off = False, 0
        try:
            for rec in recs:
                if rec.type == CCS:
                    encrypted = True
                    continue
                if not encrypted:
                    continue
                typ, data = prot.open(rec)
                if typ == APPDATA and data:
                    out.chunks[d].append((plain_off, rec.end, data))
                    plain_off += len(data)
        except ValueError as exc:
            out.problem = f"{'EV' if d == 'c' else 'SECC'} direction: {exc}"
            return out
    return out


def _open13(recs: list[Record], hs_secret: bytes, app_secret: bytes, kind: str, klen: int, hname: str,
            ivlen: int, tag: int, chunks: list) -> None:
    def prot(secret: bytes) -> _Protection:
        return _Protection(kind, _hkdf_expand_label(secret, "key", klen, hname),
                           _hkdf_expand_label(secret, "iv", ivlen, hname), tag, hash_name=hname)

    current, secret, phase, plain_off = prot(hs_secret), app_secret, "handshake", 0
    for rec in recs:
        if rec.type != APPDATA:          # ClientHello/ServerHello, the compatibility CCS, plaintext alerts
            continue
        typ, data = current.open(rec)
        if typ == HANDSHAKE:
            msgs = _handshake_types(data)
            if phase == "handshake" and 20 in msgs:          # Finished: application keys from the next record
                current, phase = prot(app_secret), "application"
            elif phase == "application" and 24 in msgs:      # KeyUpdate (RFC 8446 §7.2)
                secret = _hkdf_expand_label(secret, "traffic upd", hashlib.new(hname).digest_size, hname)
                current = prot(secret)
        elif typ == APPDATA and data:
            chunks.append((plain_off, rec.end, data))
            plain_off += len(data)


def _handshake_types(data: bytes) -> list[int]:
    out, pos = [], 0
    while pos + 4 <= len(data):
        out.append(data[pos])
        pos += 4 + int.from_bytes(data[pos + 1:pos + 4], "big")
    return out


def find_keylog(capture: str | Path) -> Path | None:
    """The key log that goes with a capture: `<capture stem>.keylog` or `keylog.txt`/`sslkeys.log` beside it."""
    p = Path(capture)
    for cand in (p.with_suffix(".keylog"), p.parent / "keylog.txt", p.parent / "sslkeys.log"):
        if cand.is_file():
            return cand
    return None
