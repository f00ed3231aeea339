"""Targets in the virtual lab process, over its real transports: SCPI (battery emulator and power
analyzer dialects), Modbus TCP (charger control + meter) and socketcand (the CAN bus).

One lab process serves every lab target of a campaign (`python -m v2g_bench.lab`, started like the
harness starts it). After each batch a health probe on a FRESH connection must get the right answer
within the hang limit: a dead lab is a crash, a silent one a hang. Memory and fds are the lab's."""
from __future__ import annotations

import atexit
import random
import re
import socket
import struct
import time
from pathlib import Path

import psutil

from v2g_bench.fuzz.campaign import CRASH, HANG, OK, TYPED, Target, TargetBroken, hypothesis_examples, with_mutants

_lab = None


def shared_lab(workdir: Path):
    """The campaign's lab process (started once, stopped at exit)."""
    global _lab
    if _lab is None or not _lab.alive():
        from v2g_bench.harness.labproc import start_lab
        # the simulated station too (it connects only when the station target asks it to)
        _lab = start_lab(workdir=workdir / "lab", timeout_s=120,
                         overrides={"services.station.enabled": "true", "services.station.ocpp_version": '"2.0.1"'})
        atexit.register(stop_shared_lab)
    return _lab


def stop_shared_lab() -> None:
    global _lab
    if _lab is not None:
        _lab.stop()
        _lab = None


def _connect(port: int, timeout: float) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def _read_until(s: socket.socket, marker: bytes, timeout: float, buf: bytes = b"") -> bytes | None:
    """Read until `marker` appears; None on timeout; b'' on a closed connection without it."""
    deadline = time.monotonic() + timeout
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            return b""
        if not chunk:
            return buf if marker in buf else b""
        buf += chunk
    return buf


class _LabTarget(Target):
    port_name = ""
    hang_s = 5.0

    def setup(self, workdir: Path) -> None:
        self.lab = shared_lab(workdir)
        self.port = self.lab.ports[self.port_name]
        self.process = psutil.Process(self.lab.pid)

    def alive_or_broken(self) -> None:
        if not self.lab.alive():
            raise TargetBroken(f"the lab process died:\n{self.lab.log_tail(15)}")


# ------------------------------------------------------------------------------------------------
SCPI_DIALECTS = Path(__file__).resolve().parents[1] / "lab" / "frontends" / "dialects"


def _scpi_headers() -> list[str]:
    """Command headers of the lab's dialects, in the short/long forms a user may type."""
    pats = set()
    for f in list(SCPI_DIALECTS.glob("*.py")) + [SCPI_DIALECTS.parent / "scpi.py"]:
        pats.update(re.findall(r'Command\("([^"]+)"', f.read_text()))
    out = set()
    for p in pats:
        long_ = re.sub(r"[\[\]]", "", p)
        short = ":".join(re.sub(r"[a-z]+", "", part) or part for part in re.sub(r"\[[^\]]*\]", "", p).split(":"))
        out.update({long_, short, long_.lower()})
    return sorted(x for x in out if x)


class ScpiTarget(_LabTarget):
    """SCPI lines into both instruments: headers of their command tables with hostile parameters,
    queries, compound lines, and byte mutants (control bytes, long lines, stray terminators).
    Typed = entries the instrument put in its error queue (drained after each batch)."""

    name = "scpi"
    ports = ("battery_scpi", "analyzer_scpi")

    def setup(self, workdir: Path) -> None:
        self.lab = shared_lab(workdir)
        self.process = psutil.Process(self.lab.pid)
        self.headers = _scpi_headers()
        self.conns: dict[str, socket.socket] = {}

    def _conn(self, name: str) -> socket.socket:
        if name not in self.conns:
            self.conns[name] = _connect(self.lab.ports[name], self.hang_s)
        return self.conns[name]

    def _drop(self, name: str) -> None:
        s = self.conns.pop(name, None)
        if s is not None:
            s.close()

    def batches(self, rng: random.Random):
        from hypothesis import strategies as st
        params = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                           st.sampled_from(["ON", "OFF", "1", "0", "MAX", "MIN", "DEF", "#H1F", "'x'", '"', "1e309",
                                            "-0", "NAN", "INF", "9" * 400, "1,2,3", "(@1)", "BATT", "BATTery"]),
                           st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12))
        line = st.builds(lambda h, q, ps, sep: h + ("?" if q else "") + ((" " + sep.join(ps)) if ps else ""),
                         st.sampled_from(self.headers), st.booleans(), st.lists(params, max_size=3),
                         st.sampled_from([",", ", ", " "]))
        compound = st.lists(line, min_size=1, max_size=3).map(lambda xs: ";:".join(xs))
        while True:
            seeds = [x.encode("latin-1", "replace") for x in hypothesis_examples(compound, 10, rng.getrandbits(32))]
            yield [(rng.choice(self.ports), m.replace(b"\n", b" ")) for m in with_mutants(seeds, rng, 30)]

    def _probe(self, name: str) -> tuple[str, str | None]:
        """*IDN? on a fresh connection must answer within the hang limit."""
        self.alive_or_broken()
        try:
            with _connect(self.lab.ports[name], self.hang_s) as s:
                s.sendall(b"*IDN?\n")
                got = _read_until(s, b"\n", self.hang_s)
        except OSError as e:
            self.alive_or_broken()
            return CRASH, f"{name}: cannot connect after the batch ({e})"
        if got is None:
            return HANG, f"{name}: *IDN? unanswered for {self.hang_s} s on a fresh connection"
        if not got or b"," not in got:
            return CRASH, f"{name}: bad *IDN? answer {got[:80]!r}"
        return OK, None

    def run_batch(self, inputs):
        for name in self.ports:
            self._drop(name)
        sent = {n: 0 for n in self.ports}
        for name, line in inputs:
            try:
                self._conn(name).sendall(line + b"\n")
                sent[name] += 1
            except OSError:
                self._drop(name)
        errors = 0
        results: dict[str, tuple[str, str | None]] = {}
        for name in self.ports:
            # drain this connection's answers, then count the error queue
            s = self.conns.get(name)
            if s is not None:
                try:
                    s.sendall(b"*OPC?\n")
                    _read_until(s, b"1\n", self.hang_s)
                except OSError:
                    pass
            self._drop(name)
            outcome = self._probe(name)
            results[name] = outcome
            if outcome[0] != OK:
                continue
            with _connect(self.lab.ports[name], self.hang_s) as s:
                for _ in range(60):
                    s.sendall(b"SYST:ERR?\n")
                    ans = _read_until(s, b"\n", self.hang_s)
                    if not ans or ans.startswith((b"0,", b"+0,")):
                        break
                    errors += 1
        out = []
        for name, _ in inputs:
            if results[name][0] != OK:
                out.append(results[name])
            elif errors > 0:
                errors -= 1
                out.append((TYPED, None))
            else:
                out.append((OK, None))
        return out

    def teardown(self) -> None:
        for name in list(self.conns):
            self._drop(name)


# ------------------------------------------------------------------------------------------------
class ModbusTarget(_LabTarget):
    """Modbus TCP ADUs: scapy's Modbus layers with fuzzed fields (scapy.contrib.modbus), valid
    requests for both units from Hypothesis, and byte mutants (MBAP length/protocol id, truncated
    PDUs, trailing junk). One connection per input. Typed = exception response, or the connection
    closed on a malformed MBAP; ok = a normal response; a silent server on a fresh probe = hang."""

    name = "modbus"
    port_name = "modbus"
    reply_wait_s = 0.02

    def batches(self, rng: random.Random):
        from hypothesis import strategies as st
        from scapy.contrib import modbus as mb
        from scapy.packet import fuzz

        layers = [mb.ModbusPDU03ReadHoldingRegistersRequest, mb.ModbusPDU04ReadInputRegistersRequest,
                  mb.ModbusPDU06WriteSingleRegisterRequest, mb.ModbusPDU10WriteMultipleRegistersRequest,
                  mb.ModbusPDU01ReadCoilsRequest, mb.ModbusPDU2B0EReadDeviceIdentificationRequest]
        req = st.builds(
            lambda tid, unit, fc, addr, cnt: struct.pack(">HHHBBHH", tid, 0, 6, unit, fc, addr, cnt),
            st.integers(0, 0xFFFF), st.sampled_from([0, 1, 2, 3, 255]), st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16, 43, 0x7F]),
            st.sampled_from([0, 0x51, 0x101, 0x102, 0x20E, 0x219, 0x21A, 0x46, 0xFFFF]), st.integers(0, 130))
        while True:
            seeds = hypothesis_examples(req, 5, rng.getrandbits(32))
            for _ in range(5):
                pdu = fuzz(rng.choice(layers)())
                adu = mb.ModbusADURequest(transId=rng.getrandbits(16), unitId=rng.choice([1, 2, 7])) / pdu
                seeds.append(bytes(adu))
            yield with_mutants(seeds, rng, 8)

    def _one(self, frame: bytes) -> tuple[str, str | None]:
        try:
            with _connect(self.port, self.hang_s) as s:
                s.sendall(frame)
                s.settimeout(self.reply_wait_s)
                try:
                    data = s.recv(512)
                except socket.timeout:
                    return TYPED, None          # ignored (incomplete frame / unknown unit): refused silently
                if not data:
                    return TYPED, None          # closed: malformed MBAP
                if len(data) >= 8 and data[7] & 0x80:
                    return TYPED, None          # exception response
                return OK, None
        except ConnectionResetError:
            return TYPED, None
        except OSError as e:
            self.alive_or_broken()
            return CRASH, f"connect/send failed: {e}"

    def _probe(self) -> tuple[str, str | None]:
        probe = struct.pack(">HHHBBHH", 0x4242, 0, 6, 1, 3, 0x219, 1)
        try:
            with _connect(self.port, self.hang_s) as s:
                s.sendall(probe)
                s.settimeout(self.hang_s)
                data = s.recv(64)
        except socket.timeout:
            return HANG, "FC03 probe unanswered on a fresh connection"
        except OSError as e:
            self.alive_or_broken()
            return CRASH, f"probe failed: {e}"
        if len(data) < 11 or data[:2] != b"\x42\x42" or data[7] != 3:
            return CRASH, f"bad probe answer {data!r}"
        return OK, None

    def run_batch(self, inputs):
        out = [self._one(f) for f in inputs]
        health = self._probe()
        if health[0] != OK:
            out[-1] = health
        return out


# ------------------------------------------------------------------------------------------------
class SocketcandTarget(_LabTarget):
    """socketcand elements (open/rawmode/send/echo with hostile ids, lengths and data, garbage
    outside elements, long elements) pipelined on one connection, synchronised by `< echo >`.
    Typed = `< error ... >` replies."""

    name = "socketcand"
    port_name = "can"

    def batches(self, rng: random.Random):
        from hypothesis import strategies as st
        hexs = st.text(alphabet="0123456789ABCDEFabcdefXZ-", min_size=0, max_size=10)
        send = st.builds(lambda i, n, d: f"< send {i} {n} {' '.join(d)} >", hexs, hexs, st.lists(hexs, max_size=10))
        other = st.sampled_from(["< open can0 >", "< open can9 >", "< rawmode >", "< bcmmode >", "< echo >", "< >",
                                 "<", ">", "< open >", "< rawmode", "garbage", "<<>>", "< " + "A" * 300 + " >",
                                 "< send 7FF 8 00 00 00 00 00 00 00 00 >", "< send 1FFFFFFF 0 >", "\x00\xff"])
        elems = st.lists(st.one_of(send, other), min_size=1, max_size=6).map(lambda xs: " ".join(xs))
        while True:
            seeds = [x.encode("latin-1", "replace") for x in hypothesis_examples(elems, 10, rng.getrandbits(32))]
            yield with_mutants(seeds, rng, 20)

    def run_batch(self, inputs):
        out = []
        try:
            s = _connect(self.port, self.hang_s)
        except OSError as e:
            self.alive_or_broken()
            raise TargetBroken(f"cannot connect: {e}") from None
        try:
            if _read_until(s, b"< hi >", self.hang_s) is None:
                return [(HANG, "no < hi >")] * len(inputs)
            s.sendall(b"< open can0 >< rawmode >")
            for data in inputs:
                # '>' closes an element the input left open, so the echo is read as one
                s.sendall(data + b" > < echo >")
                got = _read_until(s, b"< echo >", self.hang_s)
                if got is None or got == b"":
                    health = self._probe()
                    out.append(health if health[0] != OK else (TYPED, None))
                    s.close()
                    s = _connect(self.port, self.hang_s)
                    _read_until(s, b"< hi >", self.hang_s)
                    s.sendall(b"< open can0 >< rawmode >")
                    continue
                out.append((TYPED, None) if b"< error" in got.split(b"< echo >")[0] else (OK, None))
        finally:
            s.close()
        return out

    def _probe(self) -> tuple[str, str | None]:
        self.alive_or_broken()
        try:
            with _connect(self.port, self.hang_s) as p:
                if _read_until(p, b"< hi >", self.hang_s) is None:
                    return HANG, "no < hi > on a fresh connection"
                p.sendall(b"< open can0 >< echo >")
                if not _read_until(p, b"< echo >", self.hang_s):
                    return HANG, "no < echo > on a fresh connection"
        except OSError as e:
            return CRASH, f"probe: {e}"
        return OK, None
