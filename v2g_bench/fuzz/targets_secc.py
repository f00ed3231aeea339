"""V2GTP/EXI into the lab's SECC (the iso15118 SECC of the simulated charger) over the real ISO
15118 wire: a veth pair with the EV end in its own network namespace, SDP over UDP 15118, V2GTP over
TCP. Every socket of the EV side is made in a thread that entered the EV namespace, so every byte
crosses the veth as from a real EV.

Inputs: V2GTP frames from scapy's V2GTP layer with fuzzed header fields, a valid
supportedAppProtocolReq followed by a -20 message from the grammar walk (so the fuzz reaches the
-20 state machine's decoder), and byte mutants of both; one TCP connection per input. After each
batch the health probe does SDP + supportedAppProtocolReq on a fresh connection and must get the
response. Typed = the SECC closed the connection or answered with a failure; a SECC that stops
answering SDP or the handshake is a hang."""
from __future__ import annotations

import concurrent.futures
import ipaddress
import random
import socket
import struct
import time
from pathlib import Path

from v2g_bench.fuzz.campaign import CRASH, HANG, OK, TYPED, ExamplePool, Target, TargetBroken, with_mutants

SDP_PORT = 15118
SAP_REQ = {"supportedAppProtocolReq": {"AppProtocol": [
    {"ProtocolNamespace": "urn:iso:std:iso:15118:-20:DC", "VersionNumberMajor": 1, "VersionNumberMinor": 0,
     "SchemaID": 1, "Priority": 1}]}}


def v2gtp(payload: bytes, ptype: int = 0x8001) -> bytes:
    return struct.pack(">BBHI", 0x01, 0xFE, ptype, len(payload)) + payload


class WireClient:
    """SDP and TCP from the EV's network namespace."""

    def __init__(self, ns, iface: str, timeout: float):
        self.iface, self.timeout = iface, timeout
        self.pool = concurrent.futures.ThreadPoolExecutor(1, initializer=ns.enter_current_thread)
        self.scope = socket.if_nametoindex  # resolved inside the namespace

    def _in_ns(self, fn, *args):
        return self.pool.submit(fn, *args).result(self.timeout * 3)

    def sdp(self) -> tuple[str, int] | None:
        def go():
            idx = socket.if_nametoindex(self.iface)
            with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
                s.settimeout(0.5)
                for _ in range(int(self.timeout / 0.5) + 1):
                    s.sendto(v2gtp(b"\x10\x00", 0x9000), ("ff02::1", SDP_PORT, 0, idx))
                    try:
                        data, _ = s.recvfrom(256)
                    except socket.timeout:
                        continue
                    if len(data) >= 28 and data[2:4] == b"\x90\x01":
                        ip = str(ipaddress.IPv6Address(data[8:24]))
                        return ip, int.from_bytes(data[24:26], "big")
            return None
        return self._in_ns(go)

    def connect(self, addr: tuple[str, int]) -> socket.socket:
        def go():
            idx = socket.if_nametoindex(self.iface)
            s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            s.connect((addr[0], addr[1], 0, idx))
            return s
        return self._in_ns(go)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def read_v2gtp(s: socket.socket, timeout: float) -> bytes | None:
    """One V2GTP message; b'' if the peer closed; None on timeout."""
    s.settimeout(timeout)
    buf = b""
    try:
        while len(buf) < 8 or len(buf) < 8 + int.from_bytes(buf[4:8], "big"):
            chunk = s.recv(65536)
            if not chunk:
                return b""
            buf += chunk
            if len(buf) >= 8 and int.from_bytes(buf[4:8], "big") > 1 << 20:
                return buf
    except socket.timeout:
        return None
    except OSError:
        return b""
    return buf


class SeccTarget(Target):
    name = "secc"
    hang_s = 6.0
    sdp_wait_s = 25.0       # the stack pauses SDP while a session lives (setup timeout 20 s)
    reply_wait_s = 0.05

    def setup(self, workdir: Path) -> None:
        import psutil

        from v2g_bench.ev.labnet import lab_network
        from v2g_bench.exi.codec import encode, get_grammar
        from v2g_bench.exi.randmsg import MessageGenerator
        from v2g_bench.harness.labproc import start_lab

        self._net_cm = lab_network({"secc": {"codec": "own", "sequence_timeout_s": 2.0}})
        self.net = self._net_cm.__enter__()
        if self.net.unavailable:
            self._net_cm.__exit__(None, None, None)
            raise TargetBroken(f"no ISO 15118 wire: {self.net.unavailable}")
        self.lab = start_lab(workdir=workdir / "secc-lab", overrides=self.net.overrides, timeout_s=120)
        self.process = psutil.Process(self.lab.pid)
        self.wire = WireClient(self.net.ns, self.net.pair.ev_iface, self.sdp_wait_s)
        self.addr = self.wire.sdp()
        if self.addr is None:
            raise TargetBroken("the SECC does not answer SDP")
        self.sap = v2gtp(encode(SAP_REQ, "appprotocol"))
        self.gens = {s: MessageGenerator(get_grammar(s), budget=25, max_bytes=32) for s in ("iso20_common", "iso20_dc")}
        self.encode = encode
        self.pool = ExamplePool(size=40, reuse=10)

    def batches(self, rng: random.Random):
        from scapy.packet import fuzz

        from v2g_bench.ev.scapy_v2gtp import V2GTP
        from v2g_bench.exi.errors import EXIEncodeError
        while True:
            seeds: list[bytes] = [self.sap]
            for _ in range(4):
                s = rng.choice(list(self.gens))
                msg = self.pool.draw(s, self.gens[s].strategy(), rng)
                try:
                    seeds.append(self.sap + v2gtp(self.encode(msg, s), 0x8002 if s == "iso20_common" else 0x8004))
                except EXIEncodeError:
                    pass
            for _ in range(3):
                seeds.append(bytes(fuzz(V2GTP())) + rng.randbytes(rng.randint(0, 40)))
            yield with_mutants(seeds, rng, 6)

    def _one(self, data: bytes) -> tuple[str, str | None]:
        try:
            s = self.wire.connect(self.addr)
        except (OSError, concurrent.futures.TimeoutError):
            # the SECC ends its TCP server with each session: a real EV does SDP again
            s = None
            for _ in range(3):     # as an EV does (ISO 15118-2: SDP is retried): the port may have moved
                addr = self.wire.sdp()
                if addr is None:
                    return HANG, f"SDP unanswered for {self.sdp_wait_s:g} s"
                self.addr = addr
                try:
                    s = self.wire.connect(addr)
                    break
                except (OSError, concurrent.futures.TimeoutError) as e:
                    err = e
            if s is None:
                return CRASH, f"TCP connect to the SECC refused right after 3 SDP answers: {err}"
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)      # end of input: the SECC need not wait for more bytes
            got = read_v2gtp(s, self.reply_wait_s)
        except OSError:
            got = b""
        finally:
            s.close()
        if got is None or got == b"":
            return TYPED, None                     # closed or ignored by the SECC
        if got[2:4] == b"\x80\x01" and data.startswith(self.sap) and len(data) == len(self.sap):
            return OK, None                        # the valid handshake answered
        return OK, None

    def _probe(self) -> tuple[str, str | None]:
        if not self.lab.alive():
            raise TargetBroken(f"the lab process died:\n{self.lab.log_tail(15)}")
        t0 = time.monotonic()
        addr = self.wire.sdp()
        if addr is None:
            return HANG, "SDP unanswered"
        self.addr = addr
        try:
            s = self.wire.connect(addr)
        except (OSError, concurrent.futures.TimeoutError) as e:
            return CRASH, f"TCP connect to the SECC failed after SDP: {e}"
        try:
            s.sendall(self.sap)
            got = read_v2gtp(s, self.hang_s)
        finally:
            s.close()
        if got is None:
            return HANG, f"supportedAppProtocolReq unanswered ({time.monotonic() - t0:.1f} s)"
        if len(got) < 8 or got[2:4] != b"\x80\x01":
            return CRASH, f"bad handshake answer {got[:16]!r}"
        return OK, None

    def run_batch(self, inputs):
        out = [self._one(d) for d in inputs]
        health = self._probe()
        if health[0] != OK:
            out[-1] = health
        return out

    def teardown(self) -> None:
        try:
            self.wire.close()
            self.lab.stop()
        finally:
            self._net_cm.__exit__(None, None, None)
