"""Every workaround for a defect of `iso15118` (Josev) 0.31.2, and nothing else.

Each one is a small, named function with its own test in tests/unit/ev/test_ev_compat.py.
Call `apply_all()` once per process before starting an EVCC or SECC (idempotent).

| defect (0.31.2)                                                      | workaround here                 |
|----------------------------------------------------------------------|---------------------------------|
| importing iso15118.evcc/.secc runs logging.config.fileConfig on root  | `import_stack()` restores root  |
| -20 SECC DCChargeLoop calls send_charging_command(v, i, is_bpt): the  | `fix_send_charging_command`     |
|   BPT flag lands in the `is_precharge` parameter                      |   (decorator for EVSE ctrl)    |
| -20 PnC offered/selected without TLS                                  | `secc_auth_modes()` (SECC) and  |
|                                                                       | `patch_evcc_no_pnc_without_tls` |
|                                                                       | `patch_secc_no_pnc_without_tls` |
| EVCC never returns after a failed session (retries SDP, then hangs)  | `SessionEndWatch` + wait_for    |
| 2 s + 3 s fixed sleeps in V2GCommunicationSession.stop()              | `patch_stop_delays()`           |
| simulated EV flips coins (random.getrandbits) in schedule processing  | `patch_sim_ev_coin_flips()`     |
| rcv_loop reads reader.read(7000): no V2GTP framing (split/coalesced)  | `FramedReader`, `patch_framing` |
| SECC: a -20 DC ChargeParameterDiscovery replaces session_limits and  | `patch_secc_keep_ac_limits()`   |
|   drops the AC limits; the next -20 AC charge loop crashes (None > 0) |                                 |
"""
from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import struct
import threading
from typing import Any, Callable

_applied = False
_lock = threading.Lock()

V2GTP_HEADER = struct.Struct(">BBHI")
V2GTP_MAX_PAYLOAD = 1 << 20  # far above any ISO 15118 message; guards against garbage lengths


# --- logging --------------------------------------------------------------------------------

def import_stack() -> None:
    """Import iso15118's EVCC/SECC packages without letting them reconfigure root logging.

    `iso15118.evcc` and `iso15118.secc` call logging.config.fileConfig(), which replaces the root
    logger's handlers (a stdout handler at DEBUG) and level. We snapshot and restore root, and keep
    the stack's own loggers at WARNING unless the user configured them.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        import iso15118.evcc  # noqa: F401
        import iso15118.secc  # noqa: F401
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        for h in handlers:
            if h not in root.handlers:
                root.addHandler(h)
        root.setLevel(level)
        stack = logging.getLogger("iso15118")
        if stack.level == logging.NOTSET:
            stack.setLevel(logging.WARNING)


# --- BPT flag in the wrong parameter ----------------------------------------------------------

def fix_send_charging_command(fn: Callable) -> Callable:
    """Decorate an EVSE controller's `send_charging_command`.

    The -20 DCChargeLoop calls `send_charging_command(v, i, is_session_bpt)` positionally, so the
    BPT flag arrives as `is_precharge`. Every precharge caller passes `is_precharge=` by keyword, so a
    third POSITIONAL argument is the BPT flag.
    """

    @functools.wraps(fn)
    async def wrapper(self, ev_target_voltage, ev_target_current, *args, is_precharge: bool = False,
                      is_session_bpt: bool = False):
        if args:
            is_session_bpt = bool(args[0])
            if len(args) > 1:
                is_session_bpt = bool(args[1]) or is_session_bpt
        return await fn(self, ev_target_voltage, ev_target_current,
                        is_precharge=is_precharge, is_session_bpt=is_session_bpt)

    return wrapper


# --- PnC without TLS ----------------------------------------------------------------------------

def secc_auth_modes(tls: bool, wanted: list[str] | None = None) -> list[str]:
    """Auth modes for the SECC Config: never offer PnC on an unencrypted -20 session."""
    wanted = [m.upper() for m in (wanted or ["EIM", "PNC"])]
    return [m for m in wanted if tls or m != "PNC"] or ["EIM"]


def patch_evcc_no_pnc_without_tls() -> None:
    """The -20 EVCC picks PnC whenever the SECC lists it, even over plain TCP; drop it there."""
    from iso15118.evcc.states import iso15118_20_states as st
    from iso15118.shared.messages.enums import AuthEnum

    cls = st.AuthorizationSetup
    if getattr(cls.process_message, "_v2g_bench_patched", False):
        return
    original = cls.process_message

    async def process_message(self, message, message_exi=None):
        services = getattr(message, "auth_services", None)
        # also the bench's own choice: an EV configured for EIM never picks PnC (the stack always would)
        no_pnc = not getattr(self.comm_session, "is_tls", False) or getattr(self.comm_session, "allow_pnc", True) is False
        if services is not None and no_pnc and AuthEnum.PNC in services:
            message.auth_services = [s for s in services if s != AuthEnum.PNC] or [AuthEnum.EIM]
        return await original(self, message, message_exi)

    process_message._v2g_bench_patched = True
    cls.process_message = process_message


def patch_secc_no_pnc_without_tls() -> None:
    """The -20 SECC lists PnC in AuthorizationSetupRes whenever its config allows it, also over plain TCP
    (Plug & Charge needs the TLS channel): over TCP it offers the other modes only."""
    from iso15118.secc.states import iso15118_20_states as st
    from iso15118.shared.messages.enums import AuthEnum

    cls = st.AuthorizationSetup
    if getattr(cls.process_message, "_v2g_bench_patched", False):
        return
    original = cls.process_message

    async def process_message(self, message, message_exi=None):
        cfg = self.comm_session.config
        saved = list(cfg.supported_auth_options or [])
        if getattr(self.comm_session, "is_tls", False) or AuthEnum.PNC not in saved:
            return await original(self, message, message_exi)
        # the options are read before the handler's first await: one SECC session at a time
        cfg.supported_auth_options = [a for a in saved if a != AuthEnum.PNC] or [AuthEnum.EIM]
        try:
            return await original(self, message, message_exi)
        finally:
            cfg.supported_auth_options = saved

    process_message._v2g_bench_patched = True
    cls.process_message = process_message


# --- EVCC never returns after a failure ---------------------------------------------------------

class SessionEndWatch(asyncio.Queue):
    """Drop-in for the EVCC handler's receive queue that resolves `ended` on the first StopNotification.

    The EVCC handler, after a failed session, restarts SDP and then waits forever; after a successful
    one its UDP task keeps running. We await `ended` (with a timeout) and cancel the handler task.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ended: asyncio.Future = asyncio.get_running_loop().create_future()

    def put_nowait(self, item: Any) -> None:
        from iso15118.shared.notifications import StopNotification

        if isinstance(item, StopNotification) and not self.ended.done():
            self.ended.set_result(item)
        super().put_nowait(item)


async def run_until_session_end(handler_coro, watch: SessionEndWatch, timeout: float):
    """Run the EVCC handler until its session ends or `timeout`; always cancels the handler.

    Returns the StopNotification or raises asyncio.TimeoutError. Never hangs.
    """
    task = asyncio.ensure_future(handler_coro)
    try:
        done, _ = await asyncio.wait({task, watch.ended}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if watch.ended.done():
            return watch.ended.result()
        if task.done():
            exc = task.exception()
            raise exc if exc else RuntimeError("EVCC handler returned without ending a session")
        raise asyncio.TimeoutError(f"EVCC session did not end within {timeout:g} s")
    finally:
        if not task.done():
            task.cancel()
            # the handler's own cleanup may await the stack's sleeps: bounded as well
            await asyncio.wait({task}, timeout=2.0)


# --- fixed sleeps after SessionStop ------------------------------------------------------------

class _ScaledAsyncio:
    """Stands in for the `asyncio` module inside iso15118.shared.comm_session: sleep() is replaced."""

    def __init__(self, delays: dict[float, float]):
        self._delays = delays

    async def sleep(self, seconds, result=None):
        return await asyncio.sleep(self._delays.get(seconds, seconds), result)

    def __getattr__(self, name):
        return getattr(asyncio, name)


def patch_stop_delays(data_link_s: float = 0.05, tcp_close_s: float = 0.05) -> None:
    """stop() sleeps 2 s before signalling the data link and 3 s before closing TCP; shorten them.

    The SECC's last response is already drained when stop() runs, so a few ms suffice.
    """
    from iso15118.shared import comm_session

    comm_session.asyncio = _ScaledAsyncio({2: data_link_s, 3: tcp_close_s})


# --- random coin flips in the simulated EV -------------------------------------------------------

class _AlwaysReady:
    """`random` replacement for iso15118.evcc.controller.simulator: every coin lands 'ready'."""

    @staticmethod
    def getrandbits(k: int) -> int:
        return (1 << k) - 1

    def __getattr__(self, name):
        import random
        return getattr(random, name)


def patch_sim_ev_coin_flips() -> None:
    from iso15118.evcc.controller import simulator

    simulator.random = _AlwaysReady()


# --- V2GTP framing -----------------------------------------------------------------------------

class FramedReader:
    """Wraps a StreamReader so that read(n) returns exactly one V2GTP message (header + payload).

    The stack's rcv_loop does `reader.read(7000)`: a message split over TCP segments is processed
    half, two coalesced messages as one. EOF mid-frame returns b"" (the stack then ends the session).
    """

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader

    async def read(self, n: int = -1) -> bytes:
        try:
            header = await self._reader.readexactly(V2GTP_HEADER.size)
        except asyncio.IncompleteReadError as exc:
            return exc.partial if exc.partial else b""
        _ver, _inv, _ptype, length = V2GTP_HEADER.unpack(header)
        if length > V2GTP_MAX_PAYLOAD:
            return header  # garbage length: hand over the header, the stack rejects it
        try:
            return header + await self._reader.readexactly(length)
        except asyncio.IncompleteReadError as exc:
            return header + exc.partial

    def __getattr__(self, name):
        return getattr(self._reader, name)


def patch_framing() -> None:
    from iso15118.shared.comm_session import V2GCommunicationSession

    if getattr(V2GCommunicationSession.__init__, "_v2g_bench_patched", False):
        return
    original = V2GCommunicationSession.__init__

    @functools.wraps(original)
    def __init__(self, transport, *args, **kwargs):
        reader, writer = transport
        if not isinstance(reader, FramedReader):
            reader = FramedReader(reader)
        original(self, (reader, writer), *args, **kwargs)

    __init__._v2g_bench_patched = True
    V2GCommunicationSession.__init__ = __init__


# --- SECC: DC session limits wipe the AC ones ------------------------------------------------------

def patch_secc_keep_ac_limits() -> None:
    """`EVSEDataContext.update_dc_charge_parameters_v20` builds a new EVSESessionLimits holding only DC
    limits; the AC limits (set once by the controller) are lost, so on the same SECC a -20 AC charge
    loop after any -20 DC session raises TypeError ('>' between None and int). Keep the AC limits."""
    from iso15118.secc.controller.evse_data import EVSEDataContext

    if getattr(EVSEDataContext.update_dc_charge_parameters_v20, "_v2g_bench_patched", False):
        return
    original = EVSEDataContext.update_dc_charge_parameters_v20

    @functools.wraps(original)
    def update_dc_charge_parameters_v20(self, *args, **kwargs):
        ac = getattr(self.session_limits, "ac_limits", None)
        try:
            return original(self, *args, **kwargs)
        finally:
            if ac is not None:
                self.session_limits.ac_limits = ac

    update_dc_charge_parameters_v20._v2g_bench_patched = True
    EVSEDataContext.update_dc_charge_parameters_v20 = update_dc_charge_parameters_v20


def patch_secc_session_end() -> None:
    """A second stop for a peer whose session was already ended (the EV reconnected from the same
    address before the old session's stop was processed) makes `end_current_session` raise KeyError
    from its `finally` (del comm_sessions[ip]) BEFORE it resumes the paused SDP server; the caller
    swallows the KeyError, so the SECC never answers SDP again (no TCP server either): a dead
    charger until restart. Found by the fuzz/soak of the lab SECC. Finish the clean-up instead."""
    from iso15118.secc.comm_session_handler import CommunicationSessionHandler

    if getattr(CommunicationSessionHandler.end_current_session, "_v2g_bench_patched", False):
        return
    original = CommunicationSessionHandler.end_current_session

    @functools.wraps(original)
    async def end_current_session(self, peer_ip_address, session_stop_action):
        try:
            await original(self, peer_ip_address, session_stop_action)
        except KeyError:
            self.tcp_server_handler = None
            self._current_peer_ip = None
            if self.udp_server:
                self.udp_server.resume_udp_server()

    end_current_session._v2g_bench_patched = True
    CommunicationSessionHandler.end_current_session = end_current_session


def patch_session_closes_its_connection() -> None:
    """A communication session whose task is cancelled (the SECC ends the previous session of the same
    EV address while a new one already runs) never closes its TCP connection. On Python >= 3.12
    `Server.wait_closed()` waits for every connection, and the SECC awaits it (in the one task that
    also serves SDP) when it ends a session or restarts its TCP server for the next SDP request: one
    orphaned connection blocks that task for good and the charger never answers SDP again (found by
    the fuzz campaign in seconds; seen once after ~20 min of malformed V2GTP). Close the connection
    whenever the session task ends, cancelled or not."""
    from iso15118.shared.comm_session import V2GCommunicationSession

    if getattr(V2GCommunicationSession.start, "_v2g_bench_patched", False):
        return
    original = V2GCommunicationSession.start

    @functools.wraps(original)
    async def start(self, timeout):
        try:
            return await original(self, timeout)
        finally:
            writer = getattr(self, "writer", None)
            if writer is not None and not writer.is_closing():
                writer.close()

    start._v2g_bench_patched = True
    V2GCommunicationSession.start = start


def patch_secc_bounded_cancel(limit_s: float = 2.0) -> None:
    """The SECC's one notification task (TCP clients, SDP, session ends) cancels its TCP server task
    and awaits it; that task awaits `Server.wait_closed()`, which on Python >= 3.12 waits for every
    open connection - including a client accepted just before, whose notification sits behind in
    the same queue: a deadlock, after which SDP is never answered again (found by the fuzz
    campaign). Cancel, wait at most `limit_s`, go on (the server's socket is closed at once; the
    task ends when its last connection does). Also accept None (the stack passes it after a first
    end and then skips the rest of the clean-up)."""
    import iso15118.secc.comm_session_handler as csh

    if getattr(csh.cancel_task, "_v2g_bench_patched", False):
        return

    async def cancel_task(task):
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task}, timeout=limit_s)

    cancel_task._v2g_bench_patched = True
    csh.cancel_task = cancel_task


async def keep_sdp_answering(handler, period_s: float = 1.0) -> None:
    """Watchdog for the SECC's SDP service. The stack pauses its UDP (SDP) server while a TCP client
    is connected and resumes it when that session's StopNotification is processed; when sessions of
    one EV address overlap (an EV that reconnects fast, or malformed V2GTP ending sessions early),
    a session task can be cancelled by another session's end before it reports its own end. Then
    SDP stays paused with no live session and no TCP server: the charger never answers an EV again
    (seen after ~20 min of malformed V2GTP; the fuzz campaign hits it in seconds). Two checks in a
    row with SDP paused and no running session task: close the orphaned connections, resume SDP."""
    log = logging.getLogger("v2g_bench.ev.compat")
    strikes = 0
    while True:
        await asyncio.sleep(period_s)
        udp = getattr(handler, "udp_server", None)
        sessions = getattr(handler, "comm_sessions", {}) or {}
        if udp is None or not getattr(udp, "pause_server", False) or \
                any(not task.done() for _, task in list(sessions.values())):
            strikes = 0
            continue
        strikes += 1
        if strikes < 2:
            continue
        strikes = 0
        for sess, _ in list(sessions.values()):
            writer = getattr(sess, "writer", None)
            if writer is not None and not writer.is_closing():
                writer.close()
        log.warning("SECC: SDP was left paused with no live session (iso15118 session hand-over defect); "
                    "resuming it")
        handler._current_peer_ip = None
        udp.resume_udp_server()


# --- TLS key log of the EV's sessions -------------------------------------------------------------
# The stack builds the EVCC's SSLContext itself (ssl.SSLContext(PROTOCOL_TLS), which ignores SSLKEYLOGFILE).
# The EV emulator sets this per session (a context variable: concurrent EVs in one process keep their own),
# so a TLS session's capture can be decrypted by the oracle and its response times taken from the wire.
TLS_KEYLOG: contextvars.ContextVar = contextvars.ContextVar("v2g_bench_tls_keylog", default=None)


def patch_evcc_tls_keylog() -> None:
    from iso15118.evcc.transport import tcp_client

    original = tcp_client.get_ssl_context

    def get_ssl_context(server_side: bool):
        ctx = original(server_side)
        path = TLS_KEYLOG.get()
        if ctx is not None and path:
            ctx.keylog_filename = str(path)
        return ctx
    tcp_client.get_ssl_context = get_ssl_context


# --- all of them ---------------------------------------------------------------------------------

def apply_all(*, stop_delay_s: float = 0.05) -> None:
    """Apply every workaround (once per process)."""
    global _applied
    with _lock:
        if _applied:
            return
        import_stack()
        patch_stop_delays(stop_delay_s, stop_delay_s)
        patch_sim_ev_coin_flips()
        patch_evcc_no_pnc_without_tls()
        patch_secc_no_pnc_without_tls()
        patch_framing()
        patch_secc_keep_ac_limits()
        patch_secc_session_end()
        patch_session_closes_its_connection()
        patch_secc_bounded_cancel()
        patch_evcc_tls_keylog()
        _applied = True
