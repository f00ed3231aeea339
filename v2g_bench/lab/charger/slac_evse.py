"""The simulated charger's SLAC (ISO 15118-3, EVSE side) on `pyslac`, and the PLC modems it needs.

`pyslac` (package index, an implementation independent of our EV side) is the EVSE-HLE: it answers
CM_SLAC_PARM, collects the attenuation profiles of the EV's sounds, sends CM_ATTEN_CHAR.IND and
CM_SLAC_MATCH.CNF. It expects a HomePlug Green PHY modem next to it for CM_SET_KEY and for turning
every CM_MNBC_SOUND.IND into a CM_ATTEN_PROFILE.IND. The virtual lab has no modem, so
`PlcModems` plays both modems of the PLC link on the SECC end of the veth pair (the veth IS the
wire): it answers CM_SET_KEY.REQ sent to a modem address (from pyslac, or from the EV across the
wire) and reports an attenuation profile for each sound. The lab's own code thus stands in for
hardware only; the protocol logic on both ends is pyslac's and ours.

Matching follows the control pilot as a charger does: CP B/C/D starts it (pyslac's
`process_cp_state`), A/E/F cancels it; without an EV-side board it starts at once (`start = "always"`).

pyslac 0.8.3 adjustments (its defects, see docs/physical-layer.md): it waits SLAC_SETTLE_TIME = 10 s
after CM_SET_KEY (set from `settle_time_s`); its Config reads a .env file from the CWD, so the lab
builds the Config directly; it expects `environs<10` in its metadata but works with the environs the
iso15118 stack needs (installed with --no-deps, see scripts/bootstrap.sh).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

log = logging.getLogger("v2g_bench.lab.charger.slac_evse")

ETH_P_HPAV = 0x88E1
ETH_P_ALL = 0x0003
MODEM_MACS = {bytes.fromhex("00b052000001")}      # the local-management address every GP modem answers
SET_KEY_REQ, SET_KEY_CNF = 0x6008, 0x6009
MNBC_SOUND_IND, ATTEN_PROFILE_IND = 0x6076, 0x6086
SLAC_GROUPS = 58


class PlcModems:
    """Both HomePlug GP modems of the PLC link, on one end of the veth (see module doc)."""

    def __init__(self, iface: str, *, evse_host_mac: bytes, attenuation_db: int = 20, mute: bool = False):
        self.iface = iface
        self.evse_host_mac = evse_host_mac
        self.attenuation_db = int(attenuation_db)
        self.mute = mute                       # fault: a modem that never answers
        # ETH_P_ALL: only "all" taps see the frames other sockets SEND on this interface (pyslac's
        # CM_SET_KEY.REQ to its modem never crosses the wire)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._filter = _attach_hpav_filter(self.sock)      # only HomePlug frames wake us (not the V2GTP traffic)
        self.sock.bind((iface, ETH_P_ALL))
        self.sock.setblocking(False)
        self.modem_mac = bytes.fromhex("00b052000001")
        self.handled = {"set_key": 0, "sounds": 0}

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._readable)

    def stop(self) -> None:
        try:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        except (RuntimeError, ValueError):
            pass
        self.sock.close()

    def _readable(self) -> None:
        while True:
            try:
                raw, addr = self.sock.recvfrom(2048)
            except (BlockingIOError, OSError):
                return
            if len(raw) < 19 or self.mute or raw[12:14] != b"\x88\xe1":
                continue
            if raw[14] == 0x01 and len(raw) >= 19:
                mm = int.from_bytes(raw[15:17], "little")
            else:
                continue
            dst, src = raw[0:6], raw[6:12]
            if mm == SET_KEY_REQ and dst in MODEM_MACS:
                self._send(src, SET_KEY_CNF, self._set_key_cnf(raw))
                self.handled["set_key"] += 1
            elif mm == MNBC_SOUND_IND and addr[2] != socket.PACKET_OUTGOING:
                # the EVSE's modem measured this sound: one attenuation profile to its host
                payload = src + bytes([SLAC_GROUPS, 0]) + bytes([self.attenuation_db]) * SLAC_GROUPS
                self._send(self.evse_host_mac, ATTEN_PROFILE_IND, payload)
                self.handled["sounds"] += 1

    @staticmethod
    def _set_key_cnf(req: bytes) -> bytes:
        # HomePlug AV 1.1 CM_SET_KEY.CNF: Result(0=success) MyNonce YourNonce(=their MyNonce) PID PRN PMN CCoCap
        body = req[19:]
        their_nonce = body[1:5] if len(body) >= 5 else b"\x00" * 4
        return b"\x00" + os.urandom(4) + their_nonce + b"\x04" + b"\x00\x00" + b"\x00" + b"\x00"

    def _send(self, dst: bytes, mm: int, payload: bytes) -> None:
        frame = dst + self.modem_mac + ETH_P_HPAV.to_bytes(2, "big") + b"\x01" + mm.to_bytes(2, "little") + \
            b"\x00\x00" + payload
        frame += b"\x00" * max(0, 60 - len(frame))
        try:
            self.sock.send(frame)
        except OSError as e:
            log.warning("PLC modem emulation could not send: %s", e)


def import_pyslac():
    """pyslac's modules call logging.basicConfig(level=DEBUG) on import: undo that on the root logger, so the
    process (a test worker, the lab) keeps its own logging level and handlers."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    import pyslac.session as ps
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    return ps


def _attach_hpav_filter(sock: socket.socket):
    """A classic BPF program (the one pyslac uses): accept EtherType 0x88E1 only. Returns the buffer the
    kernel copied from (kept alive with the socket)."""
    import ctypes
    import struct
    from pyslac.sockets.async_linux_socket import filters_list
    from pyslac.sockets.enums import SO_ATTACH_FILTER
    buf = ctypes.create_string_buffer(b"".join(filters_list))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(filters_list), ctypes.addressof(buf)))
    return buf


class SlacEvseService:
    """pyslac's EVSE session on the SECC interface, driven by the control pilot."""

    def __init__(self, plant, iface: str, cfg: dict):
        ps = import_pyslac()
        from pyslac.environment import Config
        from pyslac.enums import Timers

        ps.SLAC_SETTLE_TIME = float(cfg.get("settle_time_s", 0.2))   # 10 s in pyslac; a bench need not wait
        logging.getLogger("slac_session").setLevel(logging.INFO)
        logging.getLogger("async_linux_socket").setLevel(logging.INFO)
        self.plant = plant
        self.iface = iface
        self.start_mode = cfg.get("start", "cp")
        config = Config(slac_init_timeout=float(cfg.get("init_timeout_s", Timers.SLAC_INIT_TIMEOUT)),
                        slac_atten_results_timeout=None, log_level="INFO")
        self.session = ps.SlacEvseSession(str(cfg.get("evse_id", "VLAB-EVSE-1")), iface, config)
        self.controller = ps.SlacSessionController()
        self.modems = PlcModems(iface, evse_host_mac=self.session.evse_mac,
                                attenuation_db=int(cfg.get("attenuation_db", 20)))
        self.matches = 0
        self.last_state = None
        self.events: list[tuple[float, str]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.modems.start()
        await asyncio.wait_for(self.session.evse_set_key(), 5.0)
        self._note("set_key done")
        self.plant.pilot.add_listener(self._on_pilot)
        if self.start_mode == "always":
            await self._cp("B")

    def _on_pilot(self, what: str, r) -> None:
        if what == "pwm" or self._loop is None:
            return
        st = r.state or "E"
        if st != self.last_state:
            self.last_state = st
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self._cp(st)))

    async def _cp(self, st: str) -> None:
        try:
            await self.controller.process_cp_state(self.session, st)
            self._note(f"CP {st}: matching {'running' if self.session.matching_process_task else 'idle'}")
        except Exception as e:  # noqa: BLE001 - pyslac failures must not stop the lab
            log.warning("pyslac on CP %s: %r", st, e)

    def _note(self, what: str) -> None:
        self.events.append((time.time(), what))
        del self.events[:-50]

    def status(self) -> dict:
        from pyslac.enums import STATE_MATCHED, STATE_MATCHING
        st = {STATE_MATCHED: "matched", STATE_MATCHING: "matching"}.get(self.session.state, "unmatched")
        return {"iface": self.iface, "state": st, "evse_mac": self.session.evse_mac.hex(":"),
                "task": bool(self.session.matching_process_task), "modems": dict(self.modems.handled),
                "modem_mute": self.modems.mute, "events": [[round(t, 3), w] for t, w in self.events[-10:]]}

    async def stop(self) -> None:
        t = self.session.matching_process_task
        if t is not None:
            t.cancel()
            try:
                await asyncio.wait_for(t, 1.0)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):  # noqa: BLE001
                pass
        self.modems.stop()
        try:
            self.session.socket.close()
        except OSError:
            pass


class _NoWire:
    """No ISO 15118 wire in this lab (no veth): SLAC has nothing to run on; status says why."""

    def status(self) -> dict:
        return {"state": "off", "why": "no ISO 15118 wire (services.secc without a veth interface)"}

    async def stop(self) -> None:
        return None


async def start_service(plant, cfg: dict, ctx) -> SlacEvseService | _NoWire:
    iface = cfg.get("iface") or ((ctx.ready.get("iso15118") or {}).get("secc_iface") if ctx else None)
    if not iface:
        log.info("SLAC off: no ISO 15118 wire")
        off = _NoWire()
        if ctx is not None:
            ctx.register_op("slac.status", off.status)
        return off
    svc = SlacEvseService(plant, iface, cfg)
    await svc.start()
    if ctx is not None:
        ctx.ready["slac"] = {"iface": iface, "evse_mac": svc.session.evse_mac.hex(":")}

        def slac_fault(modem_mute: bool | None = None) -> dict:
            if modem_mute is not None:
                svc.modems.mute = bool(modem_mute)
            return svc.status()
        ctx.register_op("slac.status", svc.status)
        ctx.register_op("slac.fault", slac_fault)
    return svc
