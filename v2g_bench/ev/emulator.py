"""EV emulator (role `ev`): the iso15118 EVCC, in-process, driven by our EVModel and a session plan.

    ev = EVEmulator(iface="evm1a2b01a", netns="evnm1a2b01")      # or EVEmulator.open(cfg, ctx)
    res = ev.run_session(protocol="ISO15118-20", service="DC_BPT", control_mode="scheduled",
                         plan=[Phase(5000, 5), Phase(-5000, 5)], timeout=60)
    assert res.passed, res.summary()

Threads: the EVCC runs on its own asyncio loop thread (v2g_bench.harness.asyncrt.LoopThread). If `netns` is
given, that thread (and its executor threads) enter the EV's network namespace; the JVM stays in
the root namespace (see codec.py). Every call has a timeout; a dead, late or garbage-answering
charger gives a failed SessionResult naming the step and the last messages - never a hang.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from v2g_bench.harness.asyncrt import LoopThread
from v2g_bench.errors import BenchError, SafeStateError
from v2g_bench.ev import compat
from v2g_bench.ev.codec import shared_codec
from v2g_bench.ev.misbehaviour import Injector, Misbehaviour
from v2g_bench.ev.model import EVModel, Phase, PlanCursor
from v2g_bench.ev.trace import Trace
from v2g_bench.roles import BenchContext, RoleConfig, RoleDriver

PROTOCOLS = {  # (our name, service kind) -> iso15118 Protocol name
    ("ISO15118-20", "DC"): "ISO_15118_20_DC",
    ("ISO15118-20", "AC"): "ISO_15118_20_AC",
    ("ISO15118-2", "DC"): "ISO_15118_2",
    ("ISO15118-2", "AC"): "ISO_15118_2",
    ("DIN70121", "DC"): "DIN_SPEC_70121",
}
SERVICES = ("DC", "DC_BPT", "AC", "AC_BPT")
CONTROL_MODES = ("scheduled", "dynamic")
OPTIONS = {  # [roles.ev] keys -> meaning (docs/ev-emulator.md)
    "interface": "the EV's interface (veth end / PLC modem NIC); never the host NIC",
    "netns": "network namespace the EV's interface lives in (optional)",
    "protocol": "ISO15118-20 | ISO15118-2 | DIN70121",
    "service": "DC_BPT | DC | AC_BPT | AC",
    "control_mode": "scheduled | dynamic (-20 only)",
    "codec": "jar (default) | own",
    "tls": "true/false: request TLS in SDP (TLS 1.3 for -20)",
    "auth": "EIM | PnC",
    "pki_path": "directory of the test PKI (shared with the charger); default: generated at test time",
    "session_timeout_s": "upper bound for one session",
    "energy_from": "role name of a power analyzer whose DC element counters (WP+/WP-) move the SOC",
    "energy_element": "that analyzer's DC element (default 1)",
    "model": "table: EVModel fields (capacity_wh, soc, target_soc, min_soc, ...)",
    "response_timeout_floor_s": "the EV waits at least this long for any response (conformance runs judge "
                                "response times from the capture; default: the stack's timeouts)",
}


def _kind(service: str) -> str:
    return "AC" if service.startswith("AC") else "DC"


@dataclass
class SessionResult:
    verdict: str                      # passed | failed
    protocol: str
    service: str
    control_mode: str
    step: str                         # where it ended / failed (last message or SDP)
    reason: str
    last_messages: list[str]
    wall_s: float
    charge_loops: int
    soc_start: float
    soc_end: float
    moved_wh: float
    trace_path: str | None = None
    history: list[dict] = field(default_factory=list)
    tx_names: list[str] = field(default_factory=list)
    rx_names: list[str] = field(default_factory=list)
    loop_cycle_s: list[float] = field(default_factory=list)
    turnaround_s: list[float] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def summary(self) -> str:
        return (f"{self.verdict}: {self.protocol} {self.service} {self.control_mode} at {self.step}: "
                f"{self.reason}; {self.charge_loops} charge loops, SOC {self.soc_start:.4f}->{self.soc_end:.4f} "
                f"({self.moved_wh:+.2f} Wh) in {self.wall_s:.1f} s; last: {' | '.join(self.last_messages)}")






def analyzer_energy_source(ctx: BenchContext | None, role: str, element: int = 1):
    """(import Wh, export Wh) of `element` of the analyzer role `role` (its WP+/WP-), for EVModel.

    The analyzer is opened (and its socket connected) now, from this root-namespace thread: the EV's
    loop thread, which calls the source, lives in the EV's netns where 127.0.0.1 is another host.
    """
    roles = getattr(ctx, "roles", None)
    if roles is None or not hasattr(roles, "role"):
        raise BenchError(f"energy_from = {role!r} needs the bench's roles", where="roles.ev.energy_from",
                         fix="open the EV through the Bench, or set EVModel.energy_source yourself")
    analyzer = roles.role(role)
    if not hasattr(analyzer, "energy_wh"):
        raise BenchError(f"role {role!r} ({type(analyzer).__name__}) has no energy_wh()", where="roles.ev.energy_from",
                         fix="name a power analyzer role")
    return counters_of(analyzer, element)


def counters_of(analyzer, element: int = 1):
    """Energy source from an opened PowerAnalyzer: its integrator is started if it is not running
    (the EV's SOC needs running counters); returns () -> (WP+ Wh, WP- Wh) of `element`."""
    try:
        state = analyzer.integration_state()
        if not state.startswith("STAR"):
            analyzer.integration_start()
    except NotImplementedError:
        pass                                 # analyzers whose counters always run
    return lambda: analyzer.energy_wh(element)


def _step(entries) -> str:
    """Where the session ended: the last message, or for an unreadable answer the request it answered."""
    if not entries:
        return "SDP (no V2GTP message exchanged)"
    last = entries[-1]
    if last.direction == "rx" and last.name in ("undecodable", "?"):
        req = next((e.name for e in reversed(entries) if e.direction == "tx"), "?")
        return f"{req} (answer undecodable)"
    if last.direction == "rx" and last.name.endswith("Req"):
        # A SECC never sends a request: a garbled answer can still decode as one. Name the step
        # by the request it should have answered.
        req = next((e.name for e in reversed(entries) if e.direction == "tx"), "?")
        return f"{req} (answered by a {last.name})"
    return last.name


class EVEmulator(RoleDriver):
    roles: ClassVar[tuple[str, ...]] = ("ev",)
    transport: ClassVar[str] = "iso15118"
    description: ClassVar[str] = "ISO 15118-20/-2/DIN EV on the iso15118 EVCC with an EV battery model"

    def __init__(self, iface: str, *, netns: str | None = None, codec: str = "jar",
                 protocol: str = "ISO15118-20", service: str = "DC_BPT", control_mode: str = "scheduled",
                 tls: bool = False, auth: str = "EIM", model: EVModel | None = None,
                 session_timeout_s: float = 120.0, trace_path: str | Path | None = None,
                 on_message=None, pki_path: str | Path | None = None,
                 response_timeout_floor_s: float | None = None):
        if not iface:
            raise BenchError("no interface given", where="roles.ev.interface",
                             fix="set the EV's veth end / PLC NIC; the host NIC is never used by default")
        self.iface, self.netns, self.codec_kind = iface, netns, codec
        self.defaults = dict(protocol=protocol, service=service, control_mode=control_mode, tls=tls, auth=auth)
        self.model = model or EVModel()
        self.session_timeout_s = session_timeout_s
        self.pki_path = pki_path
        self.trace_path = trace_path
        self.on_message = on_message        # callback(entry) for the CLI's live printout
        self.response_timeout_floor_s = response_timeout_floor_s
        self.linger_s: float | None = None    # after the session's end, wait this long for the charger to close TCP
        self.keylog_path: Path | None = None   # where TLS sessions log their keys (set with a capture)
        self.injector = Injector()
        compat.apply_all()
        self._codec = shared_codec(codec)    # in THIS (root-namespace) thread: one JVM per process
        self._loop = LoopThread(f"ev-{iface}")
        self._running: concurrent.futures.Future | None = None
        self._closed = False
        if netns:
            from v2g_bench.ev.netns import EvNetns

            ns = EvNetns.__new__(EvNetns)
            ns.name, ns._deleted = netns, True     # borrowed: we never delete it
            self._loop.run(self._enter_netns(ns), 5.0)

    @staticmethod
    async def _enter_netns(ns) -> None:
        ns.enter_current_thread()
        # getaddrinfo(fe80::..%iface) runs in the default executor: its threads must be in the EV's
        # namespace too, or the scoped address does not resolve
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="ev-exec",
                                                  initializer=ns.enter_current_thread))

    # --- RoleDriver ------------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, cfg: RoleConfig) -> list[str]:
        o = cfg.options
        problems = []
        for key in o:
            if key not in OPTIONS:
                problems.append(f"{cfg.where(key)}: unknown option (known: {', '.join(OPTIONS)})")
        # no interface: taken from the lab's ready file ("iso15118") at open(); checked there
        if o.get("protocol", "ISO15118-20") not in {p for p, _ in PROTOCOLS}:
            problems.append(f"{cfg.where('protocol')}: {o.get('protocol')!r} not one of ISO15118-20, ISO15118-2, DIN70121")
        if o.get("service", "DC_BPT") not in SERVICES:
            problems.append(f"{cfg.where('service')}: {o.get('service')!r} not one of {', '.join(SERVICES)}")
        if o.get("control_mode", "scheduled") not in CONTROL_MODES:
            problems.append(f"{cfg.where('control_mode')}: not one of scheduled, dynamic")
        if o.get("codec", "jar") not in ("jar", "own"):
            problems.append(f"{cfg.where('codec')}: not one of jar, own")
        if str(o.get("auth", "EIM")).upper() not in ("EIM", "PNC"):
            problems.append(f"{cfg.where('auth')}: not one of EIM, PnC")
        return problems

    @classmethod
    def open(cls, cfg: RoleConfig, ctx: BenchContext) -> "EVEmulator":
        problems = cls.validate_config(cfg)
        if problems:
            from v2g_bench.errors import ProfileError
            raise ProfileError(problems, where=cfg.source)
        o = dict(cfg.options)
        iface, ns = o.pop("interface", None) or cfg.resource, o.pop("netns", None)
        # the virtual lab's SECC wire (v2g_bench.ev.labnet): its ready file says where the EV end is
        wire = (getattr(getattr(ctx, "lab", None), "info", None) or {}).get("iso15118") or {}
        if wire.get("pki_path") and not o.get("pki_path"):
            o["pki_path"] = wire["pki_path"]        # trust the lab SECC's PKI
        if not iface:
            iface, ns = wire.get("ev_iface"), ns or wire.get("ev_netns")
            if not iface:
                from v2g_bench.errors import ProfileError
                raise ProfileError([f"{cfg.where('interface')}: missing, and the lab runs no ISO 15118 SECC "
                                    "(no \"iso15118\" in its ready file)"], where=cfg.source)
        energy_from, element = o.pop("energy_from", None), int(o.pop("energy_element", 1))
        model = EVModel(**o.pop("model", {}))
        if energy_from:
            model.energy_source = analyzer_energy_source(ctx, energy_from, element)
        ev = cls(iface, netns=ns, codec=o.pop("codec", "jar"),
                 model=model, session_timeout_s=float(o.pop("session_timeout_s", 120.0)),
                 tls=bool(o.pop("tls", False)), auth=str(o.pop("auth", "EIM")), **o)
        ev.name = cfg.role
        return ev

    def identify(self) -> str:
        from iso15118 import __version__

        return f"v2g-bench EV emulator (iso15118 {__version__} EVCC, codec {self.codec_kind}) on {self.iface}"

    def safe_state(self) -> None:
        """No session running (the EV stops requesting power). Verified: the loop has no session task."""
        fut = self._running
        if fut is not None and not fut.done():
            fut.cancel()
            try:
                fut.result(timeout=5.0)
            except (concurrent.futures.CancelledError, Exception):  # noqa: BLE001 - we only need it ended
                pass
            if not fut.done():
                raise SafeStateError("EV session did not stop within 5 s", where=f"roles.{self.name}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.stop(5.0)

    # --- misbehaviour (one call each) --------------------------------------------------------------
    def misbehave(self, kind: Misbehaviour | str, at: str, nth: int = 1, **params) -> None:
        """Arm one misbehaviour for the next session: `kind` when sending the `nth` message named `at`
        (e.g. "DCChargeLoopReq"). Kinds: delay (seconds=), out_of_sequence, wrong_session_id,
        malformed_header, corrupt_exi, abrupt_close, stop_answering."""
        self.injector.arm(Misbehaviour(kind), at, nth, **params)

    # --- sessions ------------------------------------------------------------------------------
    def run_session(self, *, protocol: str | None = None, service: str | None = None,
                    control_mode: str | None = None, plan: list | None = None, timeout: float | None = None,
                    tls: bool | None = None, auth: str | None = None, trace_path: str | Path | None = None,
                    ) -> SessionResult:
        """One whole session (SDP ... SessionStop) following `plan`; returns its verdict. Bounded by
        `timeout` (plus 10 s for teardown)."""
        d = self.defaults
        protocol = protocol or d["protocol"]
        service = service or d["service"]
        control_mode = control_mode or d["control_mode"]
        tls = d["tls"] if tls is None else tls
        auth = (auth or d["auth"]).upper()
        timeout = timeout or self.session_timeout_s
        if (protocol, _kind(service)) not in PROTOCOLS:
            raise BenchError(f"{protocol} has no {service}", where="EVEmulator.run_session",
                             fix="DIN70121 is DC only; BPT needs ISO15118-20")
        if service.endswith("BPT") and protocol != "ISO15118-20":
            raise BenchError(f"{service} needs ISO15118-20 (got {protocol})", where="EVEmulator.run_session")
        if control_mode not in CONTROL_MODES:
            raise BenchError(f"control_mode {control_mode!r}", where="EVEmulator.run_session",
                             fix="scheduled or dynamic")
        phases = [Phase.parse(p) for p in (plan or [Phase(power_w=self.model.max_charge_power_w, duration_s=5)])]
        if tls:
            # a PKI that cannot be made is a failed verdict naming the step, never a crash
            from v2g_bench.ev.pki import ensure_pki
            try:
                ensure_pki(self.pki_path)
            except BenchError as exc:
                return SessionResult(verdict="failed", protocol=protocol, service=service,
                                     control_mode=control_mode, step="PKI (before SDP)", reason=str(exc),
                                     last_messages=[], wall_s=0.0, charge_loops=0, soc_start=self.model.soc,
                                     soc_end=self.model.soc, moved_wh=0.0)
        trace = Trace(trace_path) if (trace_path or self.trace_path) else Trace.for_current_test()
        if trace_path is None and self.trace_path:
            trace = Trace(self.trace_path)
        # Full garbage collections in this (test) process paused the EV's loop thread by up to ~0.3 s,
        # which the charge-loop timing then blamed on the charger: move what exists now out of the
        # collector's view for the session (gc.freeze), so only the session's own garbage is scanned.
        gc.collect()
        gc.freeze()
        self._running = self._loop.submit(self._session(protocol, service, control_mode, phases, timeout,
                                                        tls, auth, trace))
        try:
            return self._running.result(timeout + 15.0)
        except concurrent.futures.TimeoutError:
            self.safe_state()
            raise BenchError(f"EV session did not return within {timeout + 15:g} s",
                             where="EVEmulator.run_session", fix="see the v2gtp trace") from None
        finally:
            gc.unfreeze()
            trace.close()

    async def _session(self, protocol, service, control_mode, phases, timeout, tls, auth, trace) -> SessionResult:
        from iso15118.evcc.evcc_config import EVCCConfig
        from iso15118.shared.messages.enums import ControlMode
        from iso15118.shared.settings import shared_settings

        from v2g_bench.ev.controller import BenchEVController
        from v2g_bench.ev.session import BenchEVCCHandler

        shared_settings.setdefault("PKI_PATH", "/nonexistent/")
        shared_settings.update({"MESSAGE_LOG_JSON": False, "MESSAGE_LOG_EXI": False,
                                "ENABLE_TLS_1_3": bool(tls and protocol == "ISO15118-20")})
        from v2g_bench.ev import patience
        patience.set_floor(self.response_timeout_floor_s)
        proto_name = PROTOCOLS[(protocol, _kind(service))]
        etm = ("DC_extended" if _kind(service) == "DC" else "AC_three_phase_core")
        cfg = EVCCConfig(supportedProtocols=[proto_name], supportedEnergyServices=[service if protocol == "ISO15118-20" else "DC"],
                         useTls=tls, enforceTls=tls, sdpRetryCycles=1, energyTransferMode=etm,
                         isCertInstallNeeded=False)
        cfg.load_raw_values()
        model = self.model
        controller = BenchEVController(cfg, model, PlanCursor(phases))
        handler = BenchEVCCHandler(cfg, self.iface, self._codec, controller, trace=trace,
                                   injector=self.injector, on_message=self.on_message,
                                   wanted_control_mode=ControlMode.SCHEDULED if control_mode == "scheduled" else ControlMode.DYNAMIC,
                                   allow_pnc=(auth == "PNC"))
        handler.linger_s = self.linger_s
        if tls and self.keylog_path is not None:
            compat.TLS_KEYLOG.set(self.keylog_path)
        watch = compat.SessionEndWatch()
        handler._rcv_queue = watch
        model.start()
        soc0 = model.soc
        t0 = time.monotonic()
        verdict, reason = "failed", ""
        try:
            stop = await compat.run_until_session_end(handler.start_session_handler(), watch, timeout)
            ok = bool(stop.successful)
            reason = stop.reason
            if ok and not controller.plan.done and not controller.stop_requested:
                ok, reason = False, f"session ended before the plan was done ({reason})"
            verdict = "passed" if ok else "failed"
        except asyncio.TimeoutError as exc:
            reason = str(exc) or f"no session end within {timeout:g} s"
        except asyncio.CancelledError:
            reason = "cancelled (safe_state)"
            raise
        except Exception as exc:  # noqa: BLE001 - a charger's garbage must end in a verdict, not a crash
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self.injector.disarm_all()
        model.update_soc()
        entries = list(trace.entries)
        step = _step(entries)
        tx_t = [e.t for e in entries if e.direction == "tx" and e.name.startswith(("DC_ChargeLoopReq", "AC_ChargeLoopReq", "CurrentDemandReq", "ChargingStatusReq"))]
        turn = [b.t - a.t for a, b in zip(entries, entries[1:]) if a.direction == "tx" and b.direction == "rx"]
        return SessionResult(
            verdict=verdict, protocol=protocol, service=service, control_mode=control_mode, step=step,
            reason=reason, last_messages=trace.last(6), wall_s=time.monotonic() - t0,
            charge_loops=controller.charge_loops, soc_start=soc0, soc_end=model.soc, moved_wh=model.moved_wh(),
            trace_path=str(trace.path) if trace.path else None, history=controller.history,
            tx_names=trace.names("tx"), rx_names=trace.names("rx"),
            loop_cycle_s=[b - a for a, b in zip(tx_t, tx_t[1:])], turnaround_s=turn)

    # --- pcap ------------------------------------------------------------------------------------
    def start_capture(self, path: str | Path | None = None):
        """Start a pcap of the EV's interface (sniffer started from the EV's thread/namespace)."""
        from v2g_bench.ev.pcap import PcapCapture

        if path is None:
            try:
                from v2g_bench.harness.evidence import Evidence
                ev = Evidence.current()
                path = ev.path("ev.pcap") if ev else Path("ev.pcap")
            except ImportError:
                path = Path("ev.pcap")
        cap = PcapCapture(self.iface, path)
        # TLS sessions during the capture log their keys beside it (<pcap>.keylog): the oracle decrypts with them
        self.keylog_path = Path(path).with_suffix(".keylog")

        async def _start():
            cap.start()
        self._loop.run(_start(), 5.0)
        return cap

    def stop_capture(self, cap) -> Path:
        async def _stop():
            return cap.stop()
        self.keylog_path = None
        return self._loop.run(_stop(), 10.0)
