"""scapy layers for SDP (UDP 15118) and V2GTP (TCP, port learned from the SDP response).

    from v2g_bench.ev.scapy_v2gtp import decode_pcap
    frames = decode_pcap("ev.pcap")   # [(time, "SDPRes"|"V2GTP", fields)], TCP port followed from SDP
"""
from __future__ import annotations

import ipaddress

from scapy.all import ByteField, IntField, ShortEnumField, XByteField, rdpcap, bind_layers, split_layers
from scapy.layers.inet import TCP, UDP
from scapy.packet import Packet, Raw

SDP_PORT = 15118
PAYLOAD_TYPES = {0x8001: "EXI", 0x8002: "-20 main", 0x8003: "-20 AC", 0x8004: "-20 DC",
                 0x8005: "-20 ACDP", 0x8006: "-20 WPT", 0x9000: "SDPReq", 0x9001: "SDPRes"}


class V2GTP(Packet):
    name = "V2GTP"
    fields_desc = [XByteField("version", 0x01), XByteField("inverse_version", 0xFE),
                   ShortEnumField("payload_type", 0x8001, PAYLOAD_TYPES), IntField("length", None)]

    def post_build(self, p, pay):
        if self.length is None:
            p = p[:4] + len(pay).to_bytes(4, "big") + p[8:]
        return p + pay

    def extract_padding(self, s):
        return s[: self.length], s[self.length:]

    @property
    def valid_header(self) -> bool:
        return self.version ^ 0xFF == self.inverse_version


class SDPRequest(Packet):
    name = "SDPRequest"
    fields_desc = [XByteField("security", 0x10), XByteField("transport", 0x00)]


class SDPResponse(Packet):
    name = "SDPResponse"
    fields_desc = [IntField("ip0", 0), IntField("ip1", 0), IntField("ip2", 0), IntField("ip3", 0),
                   ShortEnumField("port", 0, {}), XByteField("security", 0x10), ByteField("transport", 0)]

    @property
    def address(self) -> str:
        raw = b"".join(x.to_bytes(4, "big") for x in (self.ip0, self.ip1, self.ip2, self.ip3))
        return str(ipaddress.IPv6Address(raw))


bind_layers(UDP, V2GTP, dport=SDP_PORT)
bind_layers(UDP, V2GTP, sport=SDP_PORT)
bind_layers(V2GTP, SDPRequest, payload_type=0x9000)
bind_layers(V2GTP, SDPResponse, payload_type=0x9001)


def bind_tcp_port(port: int) -> None:
    """The SECC's TCP port is dynamic: bind V2GTP to the port an SDP response announced."""
    bind_layers(TCP, V2GTP, sport=port)
    bind_layers(TCP, V2GTP, dport=port)


def unbind_tcp_port(port: int) -> None:
    for kw in ({"sport": port}, {"dport": port}):
        try:
            split_layers(TCP, V2GTP, **kw)
        except Exception:  # noqa: BLE001 - not bound
            pass


def decode_pcap(path: str) -> list[tuple[float, str, dict]]:
    """Decode a capture: SDP frames, then V2GTP frames on the TCP port the SDP response named.
    TCP payloads are reassembled per direction so split/coalesced frames decode correctly."""
    pkts = rdpcap(str(path))
    out: list[tuple[float, str, dict]] = []
    ports: set[int] = set()
    for p in pkts:
        if p.haslayer(SDPResponse):
            r = p[SDPResponse]
            ports.add(int(r.port))
            out.append((float(p.time), "SDPRes", {"address": r.address, "port": int(r.port),
                                                  "security": r.security}))
        elif p.haslayer(SDPRequest):
            out.append((float(p.time), "SDPReq", {"security": p[SDPRequest].security}))
    streams: dict[tuple, bytearray] = {}
    for p in pkts:
        if TCP in p and (p[TCP].sport in ports or p[TCP].dport in ports):
            data = bytes(p[TCP].payload)
            if isinstance(p[TCP].payload, Raw) is False and p[TCP].payload.__class__.__name__ == "NoPayload":
                continue
            key = (p[TCP].sport, p[TCP].dport)
            buf = streams.setdefault(key, bytearray())
            buf += data
            while len(buf) >= 8:
                n = int.from_bytes(buf[4:8], "big")
                if len(buf) < 8 + n:
                    break
                frame = V2GTP(bytes(buf[: 8 + n]))
                del buf[: 8 + n]
                out.append((float(p.time), "V2GTP", {
                    "dir": "ev->secc" if p[TCP].dport in ports else "secc->ev",
                    "payload_type": int(frame.payload_type), "length": int(frame.length),
                    "valid_header": frame.valid_header, "exi": bytes(frame.payload).hex()}))
    return out
