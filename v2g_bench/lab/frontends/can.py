"""CAN front-end: a socketcand-compatible TCP server (a virtual CAN bus) with the lab's BMS node.

This kernel has no SocketCAN, and python-can's `virtual` bus is process-local, so the lab speaks the
socketcand ASCII protocol (linux-can/socketcand README, "Protocol") over TCP; python-can's
`can.Bus(interface="socketcand", host=..., port=..., channel="can0")` connects unchanged:

    server: < hi >            client: < open can0 >     server: < ok >
    client: < rawmode >       server: < ok >
    server: < frame ID SEC.USEC DATA >      (ID hex, 3 digits = standard, 8 = extended; DATA hex)
    client: < send ID LEN B0 B1 ... >       (bytes as hex, space separated)

Every frame a client sends is delivered to every OTHER client in raw mode (a bus, no echo).
Errors (unknown command, bad id/length, more than 8 data bytes, an element longer than 256
characters, garbage outside `< >`) are answered with `< error <reason> >` and the connection stays
up. Frame timestamps are PLANT time (seconds since the lab started, scaled).

The lab's BMS node sends the SMA/Pylontech "CAN-bus BMS" set every `period_s` (wall seconds) while
at least one client is in raw mode: 0x351 limits (CVL/CCL/DCL/DVL), 0x355 SOC/SOH, 0x356 voltage/
current/temperature (current + = charging), 0x35A alarms/warnings (2 bits each: 1 ok, 2 active).
Encoding uses cantools with the project's DBC `instruments/can/bms_sma.dbc` when it is present,
and the same layout by hand otherwise.
"""
from __future__ import annotations

import asyncio
import logging
import re
import struct
import weakref
from pathlib import Path

from v2g_bench.lab.plant import Plant
from v2g_bench.harness.asyncrt import close_server

log = logging.getLogger("v2g_bench.lab.frontends.can")

DBC_PATH = Path(__file__).resolve().parents[3] / "instruments" / "can" / "bms_sma.dbc"
MAX_ELEMENT = 256
_SEND = re.compile(r"^send\s+([0-9A-Fa-f]{1,8})\s+([0-9A-Fa-f]{1,2})((?:\s+[0-9A-Fa-f]{1,2})*)\s*$")


def _load_db():
    try:
        import cantools
        if DBC_PATH.exists():
            return cantools.database.load_file(str(DBC_PATH))
    except Exception as e:           # a broken DBC must not stop the lab; fall back, but say so
        log.warning("cannot load %s (%s); encoding BMS frames by hand", DBC_PATH, e)
    return None


class BmsNode:
    """Builds the BMS frames from the plant."""

    def __init__(self, plant: Plant):
        self.plant = plant
        self.db = _load_db()

    def signals(self) -> dict[int, dict[str, float]]:
        s = self.plant.state()
        m = self.plant.measure("can")
        b = self.plant.cfg.battery
        soc_pct = max(0.0, min(100.0, m.soc * 100.0))
        ccl = b.max_charge_current_a if s.soc < b.soc_max else 0.0
        dcl = b.max_discharge_current_a if s.soc > b.soc_min else 0.0
        prot = self.plant.protection
        faults = {f.split(":")[0] for f in s.faults}
        alarm = lambda on: 2 if on else 1          # noqa: E731  (1 ok, 2 active)
        alarms = {
            "GeneralAlarm": alarm(bool(prot) or "contactor" in faults),
            "HighVoltageAlarm": alarm("OV" in prot), "LowVoltageAlarm": 1,
            "HighTemperatureAlarm": 1, "LowTemperatureAlarm": 1, "HighTempChargeAlarm": 1,
            "LowTempChargeAlarm": 1, "HighDischargeCurrentAlarm": alarm("OC" in prot and s.dc_current_a < 0),
            "HighChargeCurrentAlarm": alarm("OC" in prot), "ContactorAlarm": alarm("contactor" in faults),
            "ShortCircuitAlarm": 1, "BmsInternalAlarm": 1, "CellImbalanceAlarm": 1,
            "GeneralWarning": alarm(s.soc >= b.soc_max or s.soc <= b.soc_min),
            "HighVoltageWarning": alarm(s.soc >= b.soc_max), "LowVoltageWarning": alarm(s.soc <= b.soc_min),
            "HighTemperatureWarning": 1, "LowTemperatureWarning": 1, "HighTempChargeWarning": 1,
            "LowTempChargeWarning": 1, "HighDischargeCurrentWarning": 1, "HighChargeCurrentWarning": 1,
            "ContactorWarning": 1, "ShortCircuitWarning": 1, "BmsInternalWarning": 1,
            "CellImbalanceWarning": 1,
        }
        return {
            0x351: {"ChargeVoltageLimit": b.charge_voltage_limit_v, "ChargeCurrentLimit": ccl,
                    "DischargeCurrentLimit": dcl, "DischargeVoltageLimit": b.discharge_voltage_limit_v},
            0x355: {"SOC": round(soc_pct), "SOH": round(b.soh_pct), "SOC_HiRes": round(soc_pct, 2)},
            0x356: {"BatteryVoltage": round(m.dc_voltage_v, 2), "BatteryCurrent": round(m.dc_current_a, 1),
                    "BatteryTemperature": b.temperature_c},
            0x35A: alarms,
        }

    def frames(self) -> list[tuple[int, bytes]]:
        out = []
        for fid, sig in self.signals().items():
            if self.db is not None:
                msg = self.db.get_message_by_frame_id(fid)
                out.append((fid, msg.encode(sig, scaling=True, strict=False)))
            else:
                out.append((fid, _encode_by_hand(fid, sig)))
        return out


def _encode_by_hand(fid: int, s: dict[str, float]) -> bytes:
    """Same layout as the DBC (little-endian): used when the DBC file is absent."""
    if fid == 0x351:
        return struct.pack("<HhhH", round(s["ChargeVoltageLimit"] * 10), round(s["ChargeCurrentLimit"] * 10),
                           round(s["DischargeCurrentLimit"] * 10), round(s["DischargeVoltageLimit"] * 10))
    if fid == 0x355:
        return struct.pack("<HHH", round(s["SOC"]), round(s["SOH"]), round(s["SOC_HiRes"] * 100))
    if fid == 0x356:
        return struct.pack("<Hhh", round(s["BatteryVoltage"] * 100), round(s["BatteryCurrent"] * 10),
                           round(s["BatteryTemperature"] * 10))
    order = ["GeneralAlarm", "HighVoltageAlarm", "LowVoltageAlarm", "HighTemperatureAlarm",
             "LowTemperatureAlarm", "HighTempChargeAlarm", "LowTempChargeAlarm",
             "HighDischargeCurrentAlarm", "HighChargeCurrentAlarm", "ContactorAlarm",
             "ShortCircuitAlarm", "BmsInternalAlarm", "CellImbalanceAlarm"]
    word = 0
    for k, name in enumerate(order):
        word |= (int(s[name]) & 3) << (2 * k)
        word |= (int(s[name.replace("Alarm", "Warning")]) & 3) << (32 + 2 * k)
    return word.to_bytes(8, "little")


# Fairness between clients (a flooding client must not starve the others, issue 16): a client's
# elements are handled at most ELEMENTS_PER_TURN at a time before the loop serves the others, and its
# frames enter the bus at most CLIENT_MAX_FPS (a 500 kbit/s bus carries ~4,000 frames/s; no node
# gets it all): beyond that its socket is no longer read (TCP back-pressure, nothing is lost). A
# receiver that does not read loses frames beyond MAX_PENDING_WRITE (counted), like a CAN
# controller's full receive queue, instead of growing the lab's memory.
ELEMENTS_PER_TURN = 64
CLIENT_MAX_FPS = 2000.0
CLIENT_BURST = 200.0
MAX_PENDING_WRITE = 1 << 20


class _Client(asyncio.Protocol):
    def __init__(self, hub: "SocketcandServer"):
        self.hub = hub
        self.buf = bytearray()
        self.state = "hello"          # hello -> open -> raw
        self.transport: asyncio.Transport | None = None
        self.tokens, self.t_tokens = CLIENT_BURST, 0.0
        self.paused = False
        self.scheduled = False
        self.dropped = 0              # frames this client did not read in time

    def connection_made(self, transport):
        self.transport = transport
        self.hub.clients.add(self)
        self.t_tokens = asyncio.get_running_loop().time()
        transport.write(b"< hi >")

    def connection_lost(self, exc):
        self.hub.clients.discard(self)
        self.transport = None

    def send(self, text: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(text.encode("ascii"))

    def deliver(self, line: str) -> None:
        """A bus frame to this client, dropped (and counted) when it does not read."""
        t = self.transport
        if t is None or t.is_closing():
            return
        if t.get_write_buffer_size() > MAX_PENDING_WRITE:
            self.dropped += 1
            return
        t.write(line.encode("ascii"))

    def error(self, reason: str) -> None:
        self.send(f"< error {reason} >")

    def data_received(self, data: bytes) -> None:
        if self.hub.plant.fault("disconnect", "can"):
            self.transport.close()
            return
        self.buf += data
        self._drain()

    def _pause(self) -> None:
        if not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self.paused and self.transport is not None and not self.transport.is_closing():
            self.paused = False
            self.transport.resume_reading()

    def _later(self, delay: float) -> None:
        """Come back to this client's buffer after the others had their turn."""
        self._pause()
        if not self.scheduled:
            self.scheduled = True
            loop = asyncio.get_running_loop()

            def again():
                self.scheduled = False
                if self.transport is not None:
                    self._drain()
            loop.call_later(delay, again) if delay > 0 else loop.call_soon(again)

    def _take_token(self) -> float:
        """0 if this client may put a frame on the bus now, else seconds until it may."""
        now = asyncio.get_running_loop().time()
        self.tokens = min(CLIENT_BURST, self.tokens + (now - self.t_tokens) * CLIENT_MAX_FPS)
        self.t_tokens = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / CLIENT_MAX_FPS

    def _drain(self) -> None:
        buf = self.buf
        pos = 0
        handled = 0
        try:
            while True:
                if handled >= ELEMENTS_PER_TURN:
                    self._later(0)
                    return
                start = buf.find(b"<", pos)
                if start < 0:
                    if bytes(buf[pos:]).strip():
                        self.error("garbage_outside_element")
                    pos = len(buf)
                    break
                if start > pos and bytes(buf[pos:start]).strip():
                    self.error("garbage_outside_element")
                pos = start
                end = buf.find(b">", pos)
                if end < 0:
                    if len(buf) - pos > MAX_ELEMENT:
                        self.error("element_too_long")
                        pos = len(buf)
                    break
                elem = bytes(buf[pos + 1:end])
                if end - pos > MAX_ELEMENT:
                    pos = end + 1
                    self.error("element_too_long")
                    handled += 1
                    continue
                try:
                    text = elem.decode("ascii").strip()
                except UnicodeDecodeError:
                    pos = end + 1
                    self.error("non_ascii")
                    handled += 1
                    continue
                if text.startswith("send"):
                    wait = self._take_token()
                    if wait > 0:
                        self._later(wait)           # over its share of the bus: read it later
                        return
                pos = end + 1
                handled += 1
                self.handle(text)
            self._resume()
        finally:
            del buf[:pos]

    def handle(self, text: str) -> None:
        if text.startswith("open "):
            ch = text[5:].strip()
            if ch not in self.hub.channels:
                self.error("no_such_channel")
                return
            self.state = "open"
            self.send("< ok >")
            return
        if self.state == "hello":
            self.error("not_open")
            return
        if text == "rawmode":
            self.state = "raw"
            self.send("< ok >")
            return
        if text in ("bcmmode", "controlmode", "isotpmode"):
            self.state = "open"
            self.send("< ok >")
            return
        if text == "echo":
            self.send("< echo >")
            return
        if text.startswith("send"):
            m = _SEND.match(text)
            if not m:
                self.error("bad_send_syntax")
                return
            fid_txt, n_txt, data_txt = m.groups()
            n = int(n_txt, 16)
            data = bytes(int(x, 16) for x in data_txt.split())
            if n > 8 or len(data) != n:
                self.error("bad_length")
                return
            fid = int(fid_txt, 16)
            ext = len(fid_txt) > 3
            if (not ext and fid > 0x7FF) or fid > 0x1FFFFFFF:
                self.error("bad_id")
                return
            self.hub.broadcast(fid, data, ext, sender=self)
            return
        self.error("unknown_command")


_hubs: "weakref.WeakKeyDictionary[Plant, SocketcandServer]" = weakref.WeakKeyDictionary()


def hub_for(plant: Plant) -> "SocketcandServer | None":
    """The CAN bus of `plant` (lab services add their nodes with `hub.nodes.append(node)`)."""
    return _hubs.get(plant)


def _fmt_frame(fid: int, data: bytes, ext: bool, t: float) -> str:
    ident = f"{fid:08X}" if ext else f"{fid:03X}"
    return f"< frame {ident} {t:.6f} {data.hex().upper()} >"


class SocketcandServer:
    def __init__(self, plant: Plant, *, channels: tuple[str, ...] = ("can0",), period_s: float = 0.1):
        self.plant = plant
        self.channels = channels
        self.period_s = period_s
        self.clients: set[_Client] = set()
        self.bms = BmsNode(plant)
        self.nodes: list = []          # in-lab nodes (e.g. the CHAdeMO charger): on_frame(fid, data, ext, t)
        _hubs[plant] = self
        self.server: asyncio.base_events.Server | None = None
        self._task: asyncio.Task | None = None
        self.port = 0
        self.frames_sent = 0

    def broadcast(self, fid: int, data: bytes, ext: bool = False, sender: _Client | None = None) -> None:
        if self.plant.fault("drop", "can"):
            return
        t = self.plant.clock.now()
        line = _fmt_frame(fid, data, ext, t)
        if sender is not None:
            for node in list(self.nodes):
                try:
                    node.on_frame(fid, data, ext, t)
                except Exception:        # a broken node must not break the bus
                    log.exception("CAN node %r failed on frame %03X", node, fid)
        d = self.plant.fault("delay", "can")
        for c in list(self.clients):
            if c is not sender and c.state == "raw":
                if d:
                    asyncio.get_running_loop().call_later(float(d["delay_s"]), c.deliver, line)
                else:
                    c.deliver(line)
        self.frames_sent += 1

    async def _bms_loop(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            if any(c.state == "raw" for c in self.clients):
                try:
                    for fid, data in self.bms.frames():
                        self.broadcast(fid, data)
                except Exception:            # keep the bus alive; the log says why
                    log.exception("BMS frame generation failed")

    async def start(self, host: str, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Client(self), host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        self._task = asyncio.create_task(self._bms_loop())
        return self.port

    def drop_connections(self) -> None:
        for c in list(self.clients):
            if c.transport is not None:
                c.transport.close()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self.drop_connections()
        await close_server(self.server, 2.0)
