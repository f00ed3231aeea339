"""SCPI over raw TCP ("SOCKET" resource, newline-terminated), for one simulated instrument.

One asyncio protocol per connection; the instrument (settings, status, error queue) is shared by
all connections, as on a real LAN instrument. Lines are executed as they arrive, so pyvisa-py's
`TCPIP0::127.0.0.1::<port>::SOCKET` with read_termination="\\n" talks to it unchanged.

Bad input: a line longer than the instrument's cap -> -363 and the rest of that line is discarded;
non-ASCII/control bytes -> -102; a client that disconnects in the middle of a query -> -420 in the
(shared) error queue; a new command while the previous answer is still unread in the socket buffer
-> -410. Transport faults booked on the plant act here: drop (no answers), delay (answers late),
disconnect (connections closed).
"""
from __future__ import annotations

import asyncio
import logging

from v2g_bench.lab.plant import Plant
from v2g_bench.lab.frontends.scpi import ScpiInstrument
from v2g_bench.harness.asyncrt import close_server

log = logging.getLogger("v2g_bench.lab.frontends.scpi")


class _ScpiConn(asyncio.Protocol):
    def __init__(self, srv: "ScpiServer"):
        self.srv = srv
        self.buf = bytearray()
        self.discarding = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport):
        self.transport = transport
        self.srv.conns.add(self)

    def connection_lost(self, exc):
        self.srv.conns.discard(self)
        self.srv.last_had_answer.pop(self, None)
        if self.buf and b"?" in self.buf and not self.discarding:
            self.srv.inst.push_error(-420, "connection closed before the query was terminated")
        self.buf.clear()

    def data_received(self, data: bytes) -> None:
        srv = self.srv
        fault_key = srv.name
        plant = srv.plant
        if plant._faults and plant.fault("disconnect", fault_key):
            self.transport.close()
            return
        self.buf += data
        cap = srv.inst.max_line
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                if len(self.buf) > cap:
                    if not self.discarding:
                        srv.inst.push_error(-363, f"line longer than {cap} characters")
                    self.discarding = True
                    self.buf.clear()
                return
            raw = bytes(self.buf[:nl])
            del self.buf[: nl + 1]
            if self.discarding:                    # tail of an over-long line
                self.discarding = False
                continue
            line = raw.rstrip(b"\r").decode("latin-1")
            self._line(line)

    def _line(self, line: str) -> None:
        srv = self.srv
        pending = self.transport.get_write_buffer_size() > 0 and srv.last_had_answer.get(self, False)
        if srv.on_io is not None:
            srv.on_io()
        out = srv.inst.execute(line, output_pending=pending)
        srv.last_had_answer[self] = out is not None
        srv.queries += 1
        if out is None:
            return
        plant = srv.plant
        if plant._faults:
            if plant.fault("drop", srv.name):
                return
            d = plant.fault("delay", srv.name)
            if d:
                asyncio.get_running_loop().call_later(float(d["delay_s"]), self._write, out)
                return
        self._write(out)

    def _write(self, out: str) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(out.encode("latin-1") + b"\n")


class ScpiServer:
    """A TCP listener for one instrument; `name` is its transport name for faults (battery_scpi)."""

    def __init__(self, name: str, inst: ScpiInstrument, plant: Plant):
        self.name, self.inst, self.plant = name, inst, plant
        self.conns: set[_ScpiConn] = set()
        self.last_had_answer: dict[_ScpiConn, bool] = {}
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.queries = 0
        self.on_io = getattr(inst, "on_io", None)

    async def start(self, host: str, port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        if hasattr(self.inst, "attach_loop"):
            self.inst.attach_loop(loop)
        self.server = await loop.create_server(lambda: _ScpiConn(self), host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def drop_connections(self) -> None:
        for c in list(self.conns):
            if c.transport is not None:
                c.transport.close()

    async def stop(self) -> None:
        if hasattr(self.inst, "close"):
            self.inst.close()
        self.drop_connections()
        await close_server(self.server, 2.0)
