"""ISO 15118-3 SLAC, the EV side (PEV-HLE), on scapy's HomePlug AV/GP layers over a raw Ethernet socket.

The EV host talks through its HomePlug Green PHY modem to the charger (on a real bench: a GP modem
on the named interface; in the virtual lab: a veth pair whose far end holds the charger's SLAC, an
independent implementation: `pyslac`). The sequence (ISO 15118-3:2015 clause 9.2 and Annex A):

    CM_SLAC_PARM.REQ (broadcast) ........................ -> CM_SLAC_PARM.CNF       TT_match_response
    CM_START_ATTEN_CHAR.IND x C_EV_start_atten_char_inds (3), CM_MNBC_SOUND.IND x NUM_SOUNDS (10),
        TP_EV_batch_msg_interval apart ................... <- CM_ATTEN_CHAR.IND     TT_EV_atten_results
    CM_ATTEN_CHAR.RSP
    CM_SLAC_MATCH.REQ (unicast to the EVSE) .............. -> CM_SLAC_MATCH.CNF (NID, NMK)  TT_match_response
    CM_SET_KEY.REQ to the EV's own modem (NMK, NID) ...... -> CM_SET_KEY.CNF: the modems join one AVLN

Retries as C_EV_match_retry. Every frame sent and received goes to a pcap with its capture time
(`pcap_path`), and each step is recorded (`SlacResult.steps`) with the time it took, so the bench
judges the charger's timing from the capture, not from this process's scheduling.
Errors name the step: `SlacError(step=..., what=...)`; a timeout is `SlacTimeout`.
"""
from __future__ import annotations

import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field

from v2g_bench.errors import BenchError
from v2g_bench.roles import RoleDriver

ETH_P_HPAV = 0x88E1
BROADCAST = "ff:ff:ff:ff:ff:ff"
LOCAL_MODEM_MAC = "00:b0:52:00:00:01"      # the HomePlug local-management address every modem answers
MMTYPE = {"CM_SET_KEY": 0x6008, "CM_SLAC_PARM": 0x6064, "CM_START_ATTEN_CHAR": 0x6068,
          "CM_ATTEN_CHAR": 0x606C, "CM_MNBC_SOUND": 0x6074, "CM_SLAC_MATCH": 0x607C,
          "CM_ATTEN_PROFILE": 0x6084}
REQ, CNF, IND, RSP = 0, 1, 2, 3


@dataclass(frozen=True)
class SlacTimers:
    """ISO 15118-3:2015 Table A.1 (EV-side values). `scale` stretches the waits for a loaded host:
    what the charger did is judged from the capture's timestamps against the nominal values."""
    tt_match_response_s: float = 0.2          # TT_match_response: wait for a .CNF
    tt_ev_atten_results_s: float = 1.2        # TT_EV_atten_results: wait for CM_ATTEN_CHAR.IND
    tp_ev_batch_msg_interval_s: float = 0.02  # TP_EV_batch_msg_interval: 20..50 ms between indications
    c_ev_match_retry: int = 2                 # C_EV_match_retry
    c_ev_start_atten_char_inds: int = 3       # C_EV_start_atten_char_inds
    c_ev_match_mnbc: int = 10                 # C_EV_match_MNBC: sounds
    tt_evse_match_mnbc_100ms: int = 6         # TT_EVSE_match_MNBC = 600 ms, sent as 6
    tt_set_key_s: float = 1.0                 # the EV's own modem answering CM_SET_KEY.REQ
    scale: float = 1.0


class SlacError(BenchError):
    def __init__(self, what: str, *, step: str, fix: str | None = None):
        self.step = step
        super().__init__(what, where=f"SLAC {step}", fix=fix)


class SlacTimeout(SlacError):
    pass


@dataclass
class SlacStep:
    name: str             # e.g. "CM_SLAC_PARM.CNF"
    sent_t: float         # capture time of the request that started it (time.time())
    got_t: float | None   # capture time of the answer (None: not answered)
    attempt: int = 1

    @property
    def latency_s(self) -> float | None:
        return None if self.got_t is None else self.got_t - self.sent_t


@dataclass
class SlacResult:
    matched: bool
    run_id: bytes
    evse_mac: str | None = None
    nid: bytes | None = None
    nmk: bytes | None = None
    attenuation_db: float | None = None
    started_t: float = 0.0
    ended_t: float = 0.0
    steps: list[SlacStep] = field(default_factory=list)
    frames: int = 0

    @property
    def duration_s(self) -> float:
        return self.ended_t - self.started_t


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


def _mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def open_raw_socket(iface: str, netns: str | None = None) -> socket.socket:
    """An AF_PACKET socket on `iface` for HomePlug frames; created inside network namespace `netns`
    (by a short-lived thread that enters it), usable from any thread afterwards."""
    box: dict = {}

    def make():
        try:
            if netns:
                fd = os.open(netns if netns.startswith("/") else f"/run/netns/{netns}", os.O_RDONLY)
                try:
                    os.setns(fd, os.CLONE_NEWNET)
                finally:
                    os.close(fd)
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_HPAV))
            s.bind((iface, ETH_P_HPAV))
            box["s"] = s
        except BaseException as e:  # noqa: BLE001 - reported to the caller below
            box["e"] = e

    t = threading.Thread(target=make, name="slac-socket")
    t.start()
    t.join(5.0)
    if "e" in box:
        e = box["e"]
        raise SlacError(f"cannot open a raw socket on {iface!r}: {e}", step="open",
                        fix="needs root/CAP_NET_RAW and an existing interface (the PLC modem's Ethernet port)") from e
    return box["s"]


class EvSlac:
    """One EV (PEV-HLE) running SLAC on `iface`. Synchronous; call `match()` from a worker thread."""

    def __init__(self, iface: str, *, netns: str | None = None, timers: SlacTimers | None = None,
                 ev_id: bytes = b"\x00" * 17, pcap_path: str | os.PathLike | None = None,
                 ev_modem_mac: str = LOCAL_MODEM_MAC, set_key: bool = True, misbehave: str | None = None):
        self.iface, self.netns = iface, netns
        self.timers = timers or SlacTimers()
        self.ev_id = ev_id
        self.ev_modem_mac = ev_modem_mac
        self.set_key = set_key
        self.misbehave = misbehave          # "wrong_run_id" (negative cases of the charger side)
        self.sock = open_raw_socket(iface, netns)
        self.mac = self._own_mac()
        self._pcap = None
        if pcap_path is not None:
            from scapy.utils import PcapWriter
            self._pcap = PcapWriter(str(pcap_path), append=False, sync=True, linktype=1)
        self.frames = 0

    def _own_mac(self) -> str:
        return _mac_str(self.sock.getsockname()[4][:6])

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            if self._pcap is not None:
                self._pcap.close()
                self._pcap = None

    # -- frames ----------------------------------------------------------------------------------
    def _send(self, dst: str, mm: str, kind: int, payload) -> float:
        from scapy.contrib.homeplugav import HomePlugAV
        from scapy.layers.l2 import Ether
        frame = Ether(dst=dst, src=self.mac, type=ETH_P_HPAV) / HomePlugAV(version=1, HPtype=MMTYPE[mm] | kind) / payload
        raw = bytes(frame)
        raw += b"\x00" * max(0, 60 - len(raw))
        self.sock.send(raw)
        t = time.time()
        self._record(raw, t)
        return t

    def _record(self, raw: bytes, t: float) -> None:
        self.frames += 1
        if self._pcap is not None:
            from scapy.layers.l2 import Ether
            pkt = Ether(raw)
            pkt.time = t
            self._pcap.write(pkt)

    def _recv(self, mm: str, kind: int, timeout_s: float, *, step: str, pred=None):
        """The next frame of type mm|kind for us within timeout_s: (scapy packet, capture time)."""
        from scapy.contrib.homeplugav import HomePlugAV
        from scapy.layers.l2 import Ether
        want = MMTYPE[mm] | kind
        deadline = time.monotonic() + timeout_s * self.timers.scale
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SlacTimeout(f"no {step} within {timeout_s * 1000:.0f} ms"
                                  + (f" (x{self.timers.scale:g} for this host)" if self.timers.scale != 1 else ""),
                                  step=step)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            raw, addr = self.sock.recvfrom(2048)
            if addr[2] == socket.PACKET_OUTGOING:
                continue                      # our own frames (AF_PACKET taps see both directions)
            t = time.time()
            self._record(raw, t)
            try:
                pkt = Ether(raw)
            except Exception:   # noqa: BLE001 - a malformed frame is ignored, as a modem would
                continue
            if HomePlugAV not in pkt or pkt[HomePlugAV].HPtype != want:
                continue
            if pkt.dst.lower() not in (self.mac, BROADCAST):
                continue
            if pred is not None and not pred(pkt):
                continue
            return pkt, t

    # -- the sequence ------------------------------------------------------------------------------
    def match(self) -> SlacResult:
        from scapy.contrib import homepluggp as gp
        tm = self.timers
        run_id = os.urandom(8)
        res = SlacResult(matched=False, run_id=run_id, started_t=time.time())
        try:
            for attempt in range(1, tm.c_ev_match_retry + 2):
                try:
                    self._attempt(gp, run_id, res, attempt)
                    res.matched = True
                    return res
                except SlacTimeout:
                    if attempt > tm.c_ev_match_retry:
                        raise
            raise AssertionError("unreachable")
        finally:
            res.ended_t = time.time()
            res.frames = self.frames

    def _attempt(self, gp, run_id: bytes, res: SlacResult, attempt: int) -> None:
        tm = self.timers
        # 1. CM_SLAC_PARM
        t0 = self._send(BROADCAST, "CM_SLAC_PARM", REQ, gp.CM_SLAC_PARM_REQ(RunID=run_id))
        cnf, t1 = self._recv("CM_SLAC_PARM", CNF, tm.tt_match_response_s, step="CM_SLAC_PARM.CNF",
                             pred=lambda p: p[gp.CM_SLAC_PARM_CNF].RunID == run_id)
        res.steps.append(SlacStep("CM_SLAC_PARM.CNF", t0, t1, attempt))
        evse_mac = cnf.src.lower()
        c = cnf[gp.CM_SLAC_PARM_CNF]
        n_sounds = int(c.NumberMSounds) or tm.c_ev_match_mnbc
        timeout_100ms = int(c.TimeOut) or tm.tt_evse_match_mnbc_100ms
        # 2. CM_START_ATTEN_CHAR.IND x3, then the sounds
        t_start = None
        for _ in range(tm.c_ev_start_atten_char_inds):
            t = self._send(BROADCAST, "CM_START_ATTEN_CHAR", IND, gp.CM_START_ATTEN_CHAR_IND(
                NumberOfSounds=n_sounds, TimeOut=timeout_100ms, ResponseType=1, ForwardingSTA=self.mac,
                RunID=run_id))
            t_start = t_start or t
            time.sleep(tm.tp_ev_batch_msg_interval_s)
        for k in range(n_sounds):
            self._send(BROADCAST, "CM_MNBC_SOUND", IND, gp.CM_MNBC_SOUND_IND(
                SenderID=self.ev_id, Countdown=n_sounds - 1 - k, RunID=run_id, RandomValue=os.urandom(16)))
            time.sleep(tm.tp_ev_batch_msg_interval_s)
        # 3. CM_ATTEN_CHAR.IND from the EVSE -> .RSP
        ind, t2 = self._recv("CM_ATTEN_CHAR", IND, tm.tt_ev_atten_results_s + timeout_100ms * 0.1,
                             step="CM_ATTEN_CHAR.IND", pred=lambda p: p[gp.CM_ATTEN_CHAR_IND].RunID == run_id)
        res.steps.append(SlacStep("CM_ATTEN_CHAR.IND", t_start, t2, attempt))
        a = ind[gp.CM_ATTEN_CHAR_IND]
        groups = [g.group for g in a.Groups] if a.Groups else []
        res.attenuation_db = sum(groups) / len(groups) if groups else None
        self._send(evse_mac, "CM_ATTEN_CHAR", RSP, gp.CM_ATTEN_CHAR_RSP(
            SourceAdress=self.mac, RunID=run_id, SourceID=self.ev_id, ResponseID=a.ResponseID, Result=0))
        # 4. CM_SLAC_MATCH
        rid = os.urandom(8) if self.misbehave == "wrong_run_id" else run_id
        t3 = self._send(evse_mac, "CM_SLAC_MATCH", REQ, gp.CM_SLAC_MATCH_REQ(
            MatchVariableFieldLen=62, VariableField=gp.SLAC_varfield(
                EVID=self.ev_id, EVMAC=self.mac, EVSEID=b"\x00" * 17, EVSEMAC=evse_mac, RunID=rid)))
        m, t4 = self._recv("CM_SLAC_MATCH", CNF, tm.tt_match_response_s, step="CM_SLAC_MATCH.CNF",
                           pred=lambda p: p[gp.CM_SLAC_MATCH_CNF].VariableField.RunID == run_id)
        res.steps.append(SlacStep("CM_SLAC_MATCH.CNF", t3, t4, attempt))
        v = m[gp.CM_SLAC_MATCH_CNF].VariableField
        res.evse_mac, res.nid, res.nmk = evse_mac, bytes(v.NetworkID), bytes(v.NMK)
        # 5. our modem joins the EVSE's logical network
        if self.set_key:
            t5 = self._send(self.ev_modem_mac, "CM_SET_KEY", REQ, gp.CM_SET_KEY_REQ(
                KeyType=1, MyNonce=int.from_bytes(os.urandom(4), "big"), PID=4, NetworkID=res.nid,
                NewEncKeySelect=1, NewKey=res.nmk))
            _, t6 = self._recv("CM_SET_KEY", CNF, tm.tt_set_key_s, step="CM_SET_KEY.CNF")
            res.steps.append(SlacStep("CM_SET_KEY.CNF", t5, t6, attempt))


def run_slac(iface: str, *, timeout_s: float = 30.0, **kw) -> SlacResult:
    """Match once on `iface` (blocking, in a worker thread so a stuck socket cannot hang the caller)."""
    ev = EvSlac(iface, **kw)
    box: dict = {}

    def work():
        try:
            box["r"] = ev.match()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["e"] = e

    t = threading.Thread(target=work, name="ev-slac", daemon=True)
    t.start()
    t.join(timeout_s)
    ev_closed = False
    try:
        if t.is_alive():
            ev.close()
            ev_closed = True
            raise SlacTimeout(f"SLAC did not finish within {timeout_s:g} s", step="match")
        if "e" in box:
            raise box["e"]
        return box["r"]
    finally:
        if not ev_closed:
            ev.close()


class SlacEvRole(RoleDriver):
    """Role `plc` (driver `slac_ev`): the EV's HomePlug Green PHY link. `match()` runs SLAC on the EV's
    interface (a real GP modem's Ethernet port, or the virtual lab's veth end from its ready file);
    a bench runs it before SDP, as an EV does after plug-in."""

    roles = ("plc",)
    transport = "ethernet"
    description = "EV-side ISO 15118-3 SLAC over a HomePlug GP modem (scapy HomePlug layers, raw socket)"

    def __init__(self, iface: str, netns: str | None, *, timers: SlacTimers, timeout_s: float, ev_modem_mac: str):
        self.iface, self.netns, self.timers, self.timeout_s = iface, netns, timers, timeout_s
        self.ev_modem_mac = ev_modem_mac
        self.results: list[SlacResult] = []
        self.evidence = None

    @classmethod
    def validate_config(cls, cfg) -> list[str]:
        s = cfg.options.get("timer_scale", 1.0)
        return [] if isinstance(s, (int, float)) and 1.0 <= s <= 10.0 else [
            f"{cfg.where('timer_scale')}: {s!r} must be 1..10 (1 = the -3 timers as specified)"]

    @classmethod
    def open(cls, cfg, ctx=None) -> "SlacEvRole":
        o = cfg.options
        iface, ns = o.get("interface") or cfg.resource, o.get("netns")
        wire = (getattr(getattr(ctx, "lab", None), "info", None) or {}).get("iso15118") or {}
        if not iface:
            iface, ns = wire.get("ev_iface"), ns or wire.get("ev_netns")
        if not iface:
            from v2g_bench.errors import ProfileError
            raise ProfileError([f"{cfg.where('interface')}: missing (the EV's PLC modem interface, e.g. eth1), "
                                "and the lab has no ISO 15118 wire"], where=cfg.source)
        role = cls(iface, ns, timers=SlacTimers(scale=float(o.get("timer_scale", 1.0))),
                   timeout_s=float(o.get("match_timeout_s", 30.0)),
                   ev_modem_mac=str(o.get("modem_mac", LOCAL_MODEM_MAC)))
        role.evidence = getattr(ctx, "evidence", None)
        open_raw_socket(iface, ns).close()          # the interface exists and we may use it
        return role

    def identify(self) -> str:
        return f"v2g-bench SLAC EV side on {self.iface}" + (f" (netns {self.netns})" if self.netns else "")

    def self_test(self) -> str:
        return "ok: " + self.identify()

    def match(self, **kw) -> SlacResult:
        """One SLAC run; the capture goes to the test's evidence (slac.pcap) when there is one."""
        pcap = kw.pop("pcap_path", None)
        if pcap is None and self.evidence is not None:
            pcap = self.evidence.path(f"slac-{len(self.results) + 1}.pcap")
        kw.setdefault("timers", self.timers)
        r = run_slac(self.iface, netns=self.netns, pcap_path=pcap, timeout_s=self.timeout_s,
                     ev_modem_mac=self.ev_modem_mac, **kw)
        self.results.append(r)
        return r

    def safe_state(self) -> None:
        return None                  # SLAC holds no energy; leaving the AVLN is the modem's business

    def close(self) -> None:
        return None
