"""pcap of the EV's interface (scapy AsyncSniffer), written to the test's evidence folder.

The sniffer's thread is started from the calling thread; if the interface lives in the EV's network
namespace, call start() from a thread in that namespace (EVEmulator.capture() does).
"""
from __future__ import annotations

from pathlib import Path

from scapy.all import AsyncSniffer, wrpcap


class PcapCapture:
    def __init__(self, iface: str, path: str | Path):
        self.iface, self.path = iface, Path(path)
        self._sniffer: AsyncSniffer | None = None
        self.count = 0

    def start(self) -> None:
        # no BPF filter: libpcap filter compilation is not guaranteed here; the veth carries only
        # our SDP/V2GTP (plus IPv6 ND), which is what the evidence should show anyway
        self._sniffer = AsyncSniffer(iface=self.iface, store=True)
        self._sniffer.start()

    def stop(self) -> Path:
        if self._sniffer is None:
            return self.path
        try:
            pkts = self._sniffer.stop(join=True)
        except Exception:  # noqa: BLE001 - never started (e.g. interface vanished)
            pkts = self._sniffer.results or []
        self._sniffer = None
        self.count = len(pkts or [])
        wrpcap(str(self.path), pkts or [])
        return self.path
