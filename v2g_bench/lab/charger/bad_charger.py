"""A charger that misbehaves on purpose: the real iso15118 SECC (lab_secc on a Plant, in this process)
whose answers are spoiled on demand. Used to prove that the EV emulator turns a bad charger into a
failed verdict naming the step, within its timeout (never a hang, never a crash).

    with FakeCharger() as charger:                  # own EV netns + veth pair, SECC in a loop thread
        charger.spoil("garbage_exi", state="DCChargeLoop", nth=2)
        ev = EVEmulator(charger.ev_iface, netns=charger.ev_netns)

Faults (applied to the SECC's answer while in SECC state `state`, the `nth` time):
  garbage_exi   valid V2GTP header, random EXI body
  garbage       random bytes, not even a V2GTP header
  late          the answer `seconds` late
  stop_answering  no answer; the TCP connection stays open
  close         TCP reset instead of the answer
Hand-written because the stack has no fault hook on the SECC side; the patch is a no-op unless a
fault is armed, and only touches SECCCommunicationSession (the EV side is another class).
"""
from __future__ import annotations

import asyncio
import os
import struct
import threading
from dataclasses import dataclass, field

FAULTS = ("garbage_exi", "garbage", "late", "stop_answering", "close")

_lock = threading.Lock()
_armed: list["ChargerFault"] = []


@dataclass
class ChargerFault:
    kind: str
    state: str
    nth: int = 1
    seconds: float = 0.0
    seen: int = 0
    fired: bool = False
    log: list[str] = field(default_factory=list)


def _take(state_name: str) -> ChargerFault | None:
    with _lock:
        for f in _armed:
            if not f.fired and f.state == state_name:
                f.seen += 1
                if f.seen == f.nth:
                    f.fired = True
                    return f
    return None


def _patch_secc_send() -> None:
    from v2g_bench.ev import compat

    compat.import_stack()
    from iso15118.secc.comm_session_handler import SECCCommunicationSession

    if getattr(SECCCommunicationSession.send, "_v2g_bench_fake", False):
        return
    original = SECCCommunicationSession.send

    async def send(self, message):
        fault = _take(type(self.current_state).__name__) if _armed else None
        if fault is None:
            return await original(self, message)
        fault.log.append(f"{fault.kind} in state {type(self.current_state).__name__}")
        frame = message.to_bytes()
        if fault.kind == "garbage_exi":
            body = os.urandom(max(8, len(frame) - 8))
            frame = frame[:4] + struct.pack(">I", len(body)) + body
        elif fault.kind == "garbage":
            frame = b"\x55\xaa" + os.urandom(30)
        elif fault.kind == "late":
            await asyncio.sleep(fault.seconds)
        elif fault.kind == "stop_answering":
            self.last_message_sent = message
            # silent until the EV gives up and closes (then this session ends like any other)
            for _ in range(1200):
                if self.reader.at_eof():
                    break
                await asyncio.sleep(0.05)
            raise ConnectionResetError("fake charger: stopped answering; the EV closed the connection")
        elif fault.kind == "close":
            self.writer.transport.abort()
            raise ConnectionResetError("fake charger: TCP reset instead of an answer")
        self.writer.write(frame)
        await self.writer.drain()
        self.last_message_sent = message

    send._v2g_bench_fake = True
    SECCCommunicationSession.send = send


class FakeCharger:
    """The lab SECC on its own Plant and its own wire, in a loop thread of this process."""

    def __init__(self, secc_cfg: dict | None = None):
        from v2g_bench.harness.asyncrt import LoopThread
        from v2g_bench.ev import netns
        from v2g_bench.lab.charger import secc as lab_secc
        from v2g_bench.lab.plant import Plant

        _patch_secc_send()
        self.ns = netns.EvNetns()
        self.pair = None
        self._loop = None
        try:
            self.pair = netns.VethPair.create(ev_netns=self.ns)
            self.plant = Plant()
            self.plant.set_battery_output(True)    # its own DC link: no bench drives an emulator here
            self._loop = LoopThread("fake-charger")
            self.service = self._loop.run(
                lab_secc.start_service(self.plant, {"iface": self.pair.secc_iface, **(secc_cfg or {})}, None), 60)
        except BaseException:
            self.close()
            raise
        self.ev_iface, self.ev_netns = self.pair.ev_iface, self.ns.name

    def spoil(self, kind: str, state: str, nth: int = 1, seconds: float = 0.0) -> ChargerFault:
        if kind not in FAULTS:
            raise ValueError(f"unknown charger fault {kind!r} (known: {', '.join(FAULTS)})")
        f = ChargerFault(kind, state, nth, seconds)
        with _lock:
            _armed.append(f)
        return f

    def clear(self) -> None:
        with _lock:
            _armed.clear()

    def close(self) -> None:
        self.clear()
        if self._loop is not None:
            try:
                self._loop.run(self.service.stop(), 10)
            except Exception:  # noqa: BLE001 - teardown continues
                pass
            self._loop.stop()
            self._loop = None
        if self.pair is not None:
            self.pair.remove()
        self.ns.delete()

    def __enter__(self) -> "FakeCharger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
