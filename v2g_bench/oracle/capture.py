"""A capture (pcap/pcapng) -> SDP exchanges and V2GTP frames per TCP stream, with wire timestamps.

TCP is reassembled by sequence number per direction (retransmissions and out-of-order segments of a
real capture are handled; a gap ends the stream's decodable part). Streams are V2GTP when the SDP
response named their port or when their first bytes are a V2GTP header; TLS streams are recognised
by their record header and decrypted when a key log is given or lies beside the capture (oracle/tls.py),
else reported, not decoded. SLAC / HomePlug frames (EtherType 0x88E1)
are counted and skipped.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from pathlib import Path

from v2g_bench.errors import BenchError

SDP_PORT = 15118
HOMEPLUG_ETHERTYPE = 0x88E1
V2GTP_HEADER = 8


@dataclass
class SDPExchange:
    t: float
    direction: str                     # "ev->secc" (request) | "secc->ev" (response)
    version: int
    inverse_version: int
    payload_type: int
    security: int | None
    transport: int | None
    address: str | None = None         # response only
    port: int | None = None
    raw: bytes = b""


@dataclass
class Frame:
    t: float                           # wire time of the segment that completed the frame
    t_first: float                     # wire time of its first byte
    stream: int                        # index of the TCP connection in the capture
    direction: str                     # "ev->secc" | "secc->ev"
    version: int
    inverse_version: int
    payload_type: int
    length: int                        # as the header says
    payload: bytes                     # what followed (may be shorter if the stream ended)
    offset: int                        # byte offset of the frame in its direction's stream

    @property
    def header_ok(self) -> bool:
        return self.version == 0x01 and self.inverse_version == 0xFE

    @property
    def complete(self) -> bool:
        return len(self.payload) == self.length


@dataclass
class Stream:
    index: int
    ev: tuple[str, int]
    secc: tuple[str, int]
    tls: bool = False
    decrypted: bool = False            # a TLS stream opened with a key log
    tls_version: str = ""
    tls_suite: int = 0
    tls_problem: str = ""              # why a TLS stream could not be decrypted
    t_open: float | None = None
    closed_by: str | None = None       # "secc" | "ev" (first FIN/RST seen)
    t_closed: float | None = None
    frames: list[Frame] = field(default_factory=list)
    leftover: int = 0                  # bytes that did not form a whole frame
    gap: bool = False                  # a sequence gap (lost capture data) ended decoding


@dataclass
class Capture:
    path: str
    packets: int
    slac_frames: int
    sdp: list[SDPExchange]
    streams: list[Stream]
    t0: float | None
    keylog: str | None = None

    @property
    def frames(self) -> list[Frame]:
        return sorted((f for s in self.streams for f in s.frames), key=lambda f: f.t)


def _sdp(t: float, direction: str, data: bytes) -> SDPExchange | None:
    if len(data) < V2GTP_HEADER:
        return None
    ver, inv, ptype, n = struct.unpack(">BBHI", data[:8])
    body = data[8:8 + n]
    sec = tr = None
    addr = port = None
    if ptype == 0x9000 and len(body) >= 2:
        sec, tr = body[0], body[1]
    elif ptype == 0x9001 and len(body) >= 20:
        addr = str(ipaddress.IPv6Address(body[:16]))
        port = int.from_bytes(body[16:18], "big")
        sec, tr = body[18], body[19]
    return SDPExchange(t, direction, ver, inv, ptype, sec, tr, addr, port, data)


def read_capture(path: str | Path, keylog: str | Path | None = None) -> Capture:
    """Read a pcap/pcapng file; a file that is not a capture is a BenchError naming it. TLS streams are
    decrypted with `keylog` (NSS format), or with the key log found beside the capture (oracle.tls.find_keylog)."""
    from v2g_bench.oracle.tls import KeyLog, find_keylog

    from scapy.utils import rdpcap
    from scapy.layers.inet import TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    p = Path(path)
    if not p.is_file():
        raise BenchError(f"no capture at {p}", where="oracle.read_capture", fix="give a .pcap/.pcapng file")
    try:
        pkts = rdpcap(str(p))
    except Exception as exc:  # noqa: BLE001 - scapy raises plain Scapy_Exception / struct errors
        raise BenchError(f"{p} is not a readable pcap/pcapng: {exc}", where="oracle.read_capture") from None
    slac = 0
    sdp: list[SDPExchange] = []
    announced: set[int] = set()
    segs: dict[tuple, list] = {}       # (src, sport, dst, dport) -> [(seq, t, payload, flags)]
    t0 = float(pkts[0].time) if len(pkts) else None
    for pkt in pkts:
        t = float(pkt.time)
        if Ether in pkt and pkt[Ether].type == HOMEPLUG_ETHERTYPE:
            slac += 1
            continue
        ip = pkt[IPv6] if IPv6 in pkt else (pkt["IP"] if pkt.haslayer("IP") else None)
        if ip is None:
            continue
        if UDP in pkt and SDP_PORT in (pkt[UDP].sport, pkt[UDP].dport):
            data = bytes(pkt[UDP].payload)
            ex = _sdp(t, "ev->secc" if pkt[UDP].dport == SDP_PORT else "secc->ev", data)
            if ex is not None:
                sdp.append(ex)
                if ex.port:
                    announced.add(ex.port)
            continue
        if TCP in pkt:
            tcp = pkt[TCP]
            key = (str(ip.src), int(tcp.sport), str(ip.dst), int(tcp.dport))
            segs.setdefault(key, []).append((int(tcp.seq), t, bytes(tcp.payload), int(tcp.flags)))
    kl_path = keylog if keylog is not None else find_keylog(p)
    kl = KeyLog.load(kl_path) if kl_path is not None else None
    streams = _streams(segs, announced, kl)
    return Capture(str(p), len(pkts), slac, sdp, streams, t0, str(kl_path) if kl_path else None)


def _reassemble(items: list) -> tuple[list[tuple[int, float, bytes]], int | None, float | None, bool]:
    """-> ([(offset, t, data)] in stream order, FIN/RST time, SYN time, gap)."""
    syn = next((s for s in items if s[3] & 0x02), None)
    isn = (syn[0] + 1) if syn else min((s[0] for s in items if s[2]), default=0)
    t_open = syn[1] if syn else None
    end_t = next((s[1] for s in items if s[3] & 0x05), None)        # FIN or RST
    data = sorted(((s[0] - isn) % (1 << 32), s[1], s[2]) for s in items if s[2])
    out, expect, gap = [], 0, False
    for off, t, payload in data:
        if off + len(payload) <= expect:
            continue                                   # retransmission
        if off > expect:
            gap = True
            break
        cut = expect - off
        out.append((expect, t, payload[cut:]))
        expect += len(payload) - cut
    return out, end_t, t_open, gap


def _secc_is_dst(src, sport, dst, dport, items: list, back: list, announced: set[int]) -> bool:
    """Which end is the SECC: the port its SDP response announced; else the end that answered a SYN (the EV
    connects); else the end that did not speak first (the EV's supportedAppProtocolReq or ClientHello opens every
    connection); else the lower port."""
    if dport in announced or sport in announced:
        return dport in announced
    if any(f & 0x12 == 0x02 for _, _, _, f in items):          # a SYN without ACK: this direction is the EV's
        return True
    if any(f & 0x12 == 0x02 for _, _, _, f in back):
        return False
    mine = min((t for _, t, d, _ in items if d), default=None)
    theirs = min((t for _, t, d, _ in back if d), default=None)
    if mine is not None and (theirs is None or mine < theirs):
        return True
    if theirs is not None and (mine is None or theirs < mine):
        return False
    return dport < sport


def _streams(segs: dict, announced: set[int], keylog=None) -> list[Stream]:
    conns: dict[tuple, dict] = {}
    for (src, sport, dst, dport), items in segs.items():
        secc_is_dst = _secc_is_dst(src, sport, dst, dport, items, segs.get((dst, dport, src, sport), []), announced)
        secc, ev = ((dst, dport), (src, sport)) if secc_is_dst else ((src, sport), (dst, dport))
        c = conns.setdefault((ev, secc), {})
        c["ev->secc" if secc_is_dst else "secc->ev"] = items
    out: list[Stream] = []
    for (ev, secc), dirs in conns.items():
        st = Stream(len(out), ev, secc)
        frames: list[Frame] = []
        reassembled: dict[str, list] = {}
        for direction, items in sorted(dirs.items()):
            chunks, end_t, t_open, gap = _reassemble(items)
            st.gap = st.gap or gap
            if t_open is not None and (st.t_open is None or t_open < st.t_open):
                st.t_open = t_open
            if end_t is not None and (st.t_closed is None or end_t < st.t_closed):
                st.t_closed, st.closed_by = end_t, direction.split("->")[0]
            reassembled[direction] = chunks
        first_bytes = b"".join(c[2] for c in reassembled.get("ev->secc", []))[:3]
        if first_bytes[:1] == b"\x16" and first_bytes[1:2] == b"\x03":
            st.tls = True
            if keylog is not None:
                frames = _tls_frames(st, reassembled, keylog)
        else:
            v2gtp_seen = False
            # the EV's direction first: a V2GTP request there makes the SECC's replies V2GTP whatever their header
            for direction, chunks in sorted(reassembled.items()):
                got, left = _frames(st.index, direction, chunks, known=secc[1] in announced or v2gtp_seen)
                v2gtp_seen = v2gtp_seen or any(f.header_ok for f in got)
                frames += got
                st.leftover += left
            if not frames and secc[1] not in announced:
                continue                                   # some other TCP traffic
        st.frames = sorted(frames, key=lambda f: f.t)
        out.append(st)
    for i, s in enumerate(out):
        s.index = i
        for f in s.frames:
            f.stream = i
    return out


def _tls_frames(st: Stream, reassembled: dict[str, list], keylog) -> list[Frame]:
    """Decrypt a TLS stream with the key log; its V2GTP frames are timed by the TCP segment that completed
    the TLS record carrying their last byte."""
    from v2g_bench.oracle.tls import decrypt

    bufs = {d: b"".join(c[2] for c in chunks) for d, chunks in reassembled.items()}
    dec = decrypt(bufs.get("ev->secc", b""), bufs.get("secc->ev", b""), keylog)
    st.tls_version, st.tls_suite = dec.version, dec.suite
    if dec.problem:
        st.tls_problem = dec.problem
    else:
        st.decrypted = True
    frames: list[Frame] = []
    for direction, side in (("ev->secc", "c"), ("secc->ev", "s")):
        chunks = reassembled.get(direction, [])
        plain = [(off, _time_at(chunks, end - 1), data) for off, end, data in dec.chunks[side]]
        if plain:
            got, left = _frames(st.index, direction, plain, known=True)
            frames += got
            st.leftover += left
    return frames


def _time_at(chunks: list, offset: int) -> float:
    """Wire time of the segment holding byte `offset` of a reassembled direction."""
    for off, t, data in chunks:
        if offset < off + len(data):
            return t
    return chunks[-1][1] if chunks else 0.0


MAX_PLAUSIBLE_LENGTH = 1 << 20


def _frames(stream: int, direction: str, chunks: list, known: bool = False) -> tuple[list[Frame], int]:
    """Cut one direction's byte stream into V2GTP frames, each timed by the segment that completed it."""
    buf = b"".join(c[2] for c in chunks)
    ends = []                        # (end offset, t) per chunk
    for off, t, data in chunks:
        ends.append((off + len(data), t))

    def time_at(offset: int) -> float:
        for end, t in ends:
            if offset < end:
                return t
        return ends[-1][1]

    frames, pos = [], 0
    while len(buf) - pos >= V2GTP_HEADER:
        ver, inv, ptype, n = struct.unpack(">BBHI", buf[pos:pos + 8])
        if not frames and (ver, inv) != (0x01, 0xFE) and not (known and n <= MAX_PLAUSIBLE_LENGTH):
            break                    # not V2GTP at all (on a stream not known to carry it)
        payload = buf[pos + 8: pos + 8 + n]
        last = pos + 8 + max(len(payload), 1) - 1
        frames.append(Frame(time_at(min(last, len(buf) - 1)), time_at(pos), stream, direction, ver, inv, ptype,
                            n, payload, pos))
        if len(payload) < n:
            pos = len(buf)           # the length runs past the data: the rest is this frame's
            break
        pos += 8 + n
    return frames, len(buf) - pos
