"""veth pairs (and a per-process network namespace for the EV end) for SDP/V2GTP over IPv6 link-local.

Why a namespace: with both veth ends in one namespace the kernel delivers EV<->SECC TCP through `lo`
(both link-local addresses are local), so the wire (and the pcap of the veth) would only carry the
multicast SDP request. Moving the EV end into its own namespace makes every V2GTP byte cross the veth.
The EV emulator's event-loop thread enters that namespace with `os.setns` (a per-thread operation),
so the rest of the test process (lab ports on 127.0.0.1, the JVM) stays in the root namespace.

Names: `ev<worker><pid><n>a|b` and `evn<worker><pid><n>` (<= 15 chars): worker from
PYTEST_XDIST_WORKER, the creating process's full pid (5 base-36 digits), n a per-process counter ->
parallel pytest workers and processes never collide, and a later run can tell from the name alone
whether the owner is still alive (`stale_links()` / `remove_stale()`: a killed run leaves its veth and
namespace behind). Never touches any interface but ours whose owner is gone.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from v2g_bench.errors import BenchError

PREFIX = "ev"
_counter = itertools.count(1)
_lock = threading.Lock()


class NetworkSetupError(BenchError):
    pass


def _b36(n: int, width: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    for _ in range(width):
        n, r = divmod(n, 36)
        s = digits[r] + s
    return s


def worker_tag() -> str:
    w = os.environ.get("PYTEST_XDIST_WORKER", "")
    digits = "".join(c for c in w if c.isdigit())
    return _b36(int(digits), 2) if digits else "m"


PID_DIGITS = 5            # 36**5 > 2**22 (Linux pid_max limit): the name holds the whole pid
LEGACY_PID_DIGITS = 3     # names made before 2026-11 held pid % 36**3


def process_tag() -> str:
    return _b36(os.getpid(), PID_DIGITS)


def unique_base() -> str:
    """A name stem unique per worker, process and call (<= 11 chars, leaves room for a/b)."""
    with _lock:
        n = next(_counter)
    return f"{PREFIX}{worker_tag()}{process_tag()}{_b36(n, 2)}"


def _run(args: list[str], timeout: float = 5.0, check: bool = True) -> subprocess.CompletedProcess:
    try:
        cp = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise NetworkSetupError(f"{' '.join(args)!r} did not finish within {timeout:g} s",
                                where="v2g_bench.ev.netns", fix="check the kernel / ip tool") from None
    if check and cp.returncode != 0:
        raise NetworkSetupError(f"{' '.join(args)!r} failed: {cp.stderr.strip()}",
                                where="v2g_bench.ev.netns",
                                fix="run as root / with CAP_NET_ADMIN, or inside `unshare -rn`")
    return cp


def veth_unavailable_reason() -> str | None:
    """None if this process can create veth pairs, else a reason a test can skip with."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if not Path("/proc/sys/net/ipv6").exists():
        return "IPv6 is disabled in this kernel (no /proc/sys/net/ipv6)"
    try:
        caps = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                        if line.startswith("CapEff:")), 16)
    except Exception:  # noqa: BLE001 - exotic /proc: try it
        caps = -1
    CAP_NET_ADMIN = 12
    if caps != -1 and not caps & (1 << CAP_NET_ADMIN):
        return ("no CAP_NET_ADMIN: creating a veth pair needs root or CAP_NET_ADMIN "
                "(rootless: run pytest under `unshare -rn`)")
    base = unique_base()
    cp = _run(["ip", "link", "add", base + "a", "type", "veth", "peer", "name", base + "b"], check=False)
    if cp.returncode != 0:
        return f"cannot create a veth pair: {cp.stderr.strip()}"
    _run(["ip", "link", "del", base + "a"], check=False)
    return None


def netns_unavailable_reason() -> str | None:
    if not hasattr(os, "setns"):
        return "os.setns needs Python >= 3.12"
    caps = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("CapEff:")), 16)
    CAP_SYS_ADMIN = 21
    if not caps & (1 << CAP_SYS_ADMIN):
        return "no CAP_SYS_ADMIN: cannot enter a network namespace"
    return None


def _link_local(iface: str, netns: str | None) -> str | None:
    pre = ["ip", "-n", netns] if netns else ["ip"]
    out = _run(pre + ["-6", "-o", "addr", "show", "dev", iface, "scope", "link"], check=False).stdout
    for line in out.splitlines():
        if "tentative" in line:
            continue
        parts = line.split()
        if "inet6" in parts:
            return parts[parts.index("inet6") + 1].split("/")[0]
    return None


def _bring_up(iface: str, netns: str | None) -> None:
    pre = ["ip", "netns", "exec", netns] if netns else []
    # DAD would hold the link-local address 'tentative' ~1-2 s; nothing else is on this wire.
    for key in ("accept_dad", "dad_transmits"):
        _run(pre + ["sysctl", "-q", "-w", f"net.ipv6.conf.{iface}.{key}=0"], check=False)
    _run(pre + ["sysctl", "-q", "-w", f"net.ipv6.conf.{iface}.disable_ipv6=0"], check=False)
    ipn = ["ip", "-n", netns] if netns else ["ip"]
    _run(ipn + ["link", "set", iface, "up"])


def _wait_link_local(iface: str, netns: str | None, timeout: float) -> str:
    """The link-local address appears once BOTH ends are up (carrier); wait for it, bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        addr = _link_local(iface, netns)
        if addr:
            return addr
        time.sleep(0.02)
    raise NetworkSetupError(f"{iface} got no usable IPv6 link-local address within {timeout:g} s",
                            where="v2g_bench.ev.netns", fix="check net.ipv6.conf.*.disable_ipv6")


@dataclass
class VethPair:
    """A veth pair: `ev_iface` for the EV (optionally inside `ev_netns`), `secc_iface` for the SECC."""

    ev_iface: str
    secc_iface: str
    ev_netns: str | None = None
    ev_addr: str = ""
    secc_addr: str = ""
    _removed: bool = field(default=False, repr=False)

    @classmethod
    def create(cls, *, ev_netns: "EvNetns | None" = None, timeout: float = 5.0) -> "VethPair":
        remove_stale_once()
        base = unique_base()
        a, b = base + "a", base + "b"
        _run(["ip", "link", "add", a, "type", "veth", "peer", "name", b])
        pair = cls(ev_iface=a, secc_iface=b, ev_netns=ev_netns.name if ev_netns else None)
        try:
            if ev_netns:
                _run(["ip", "link", "set", a, "netns", ev_netns.name])
            _bring_up(b, None)
            _bring_up(a, pair.ev_netns)
            pair.secc_addr = _wait_link_local(b, None, timeout)
            pair.ev_addr = _wait_link_local(a, pair.ev_netns, timeout)
        except BaseException:
            pair.remove()
            raise
        return pair

    def remove(self) -> None:
        """Delete the pair (deleting one end deletes both). Idempotent."""
        if self._removed:
            return
        self._removed = True
        _run(["ip", "link", "del", self.secc_iface], check=False)
        if self.ev_netns:
            _run(["ip", "-n", self.ev_netns, "link", "del", self.ev_iface], check=False)

    def __enter__(self) -> "VethPair":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class EvNetns:
    """A named network namespace for the EV end (one per process is enough; `lo` is brought up)."""

    def __init__(self, name: str | None = None):
        remove_stale_once()
        self.name = name or f"{PREFIX}n{worker_tag()}{process_tag()}{_b36(next(_counter), 2)}"
        _run(["ip", "netns", "add", self.name])
        _run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=False)
        self._deleted = False

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def enter_current_thread(self) -> None:
        """Move the CALLING thread into this namespace (sockets it creates live there)."""
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.setns(fd, os.CLONE_NEWNET)
        finally:
            os.close(fd)

    def delete(self) -> None:
        if not self._deleted:
            self._deleted = True
            _run(["ip", "netns", "del", self.name], check=False)

    def __enter__(self) -> "EvNetns":
        return self

    def __exit__(self, *exc) -> None:
        self.delete()


def leftover_interfaces() -> list[str]:
    """Interfaces of THIS process still present (for tests asserting cleanup)."""
    stem = f"{PREFIX}{worker_tag()}{process_tag()}"
    out = _run(["ip", "-o", "link", "show"], check=False).stdout
    return [p.split(":")[1].strip().split("@")[0] for p in out.splitlines() if f": {stem}" in p]


# ------------------------------------------------------------------ leftovers of killed runs ---
# ev|evn, worker ("m" or 2 base-36 digits), pid (5 digits, or 3 in legacy names), counter (2), a|b
_NAME = re.compile(r"^(?P<kind>evn|ev)(?P<worker>m|[0-9a-z]{2})(?P<pid>[0-9a-z]{5}|[0-9a-z]{3})"
                   r"(?P<n>[0-9a-z]{2})(?P<end>[ab]?)$")
_DOCTOR_NAME = re.compile(r"^v2gdoc(?P<pid>\d+)b?$")    # the doctor's own probe pair


@dataclass
class Leftover:
    kind: str           # "veth" | "netns"
    name: str
    owner: str          # what the name says about the process that made it


def _owner_alive(name: str) -> tuple[bool, str] | None:
    """None if the name is not ours; else (could its owner be alive?, owner description).

    A full pid is alive or not. A legacy 3-digit tag only knows pid % 36**3: the owner counts as
    alive if ANY live pid has that remainder (never remove what might be in use)."""
    m = _DOCTOR_NAME.match(name)
    if m:
        pid = int(m.group("pid"))
        return _pid_alive(pid), f"v2g-bench doctor pid {pid}"
    m = _NAME.match(name)
    if m is None or (m.group("kind") == "evn") == bool(m.group("end")):
        return None                      # a namespace has no a/b end, a veth always has one
    tag = m.group("pid")
    pid = int(tag, 36)
    if len(tag) == PID_DIGITS:
        return _pid_alive(pid), f"pid {pid}"
    mod = 36 ** LEGACY_PID_DIGITS
    alive = any(int(p) % mod == pid for p in os.listdir("/proc") if p.isdigit())
    return alive, f"pid = {pid} mod {mod} (legacy name)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _links(netns: str | None = None) -> list[str]:
    pre = ["ip", "-n", netns] if netns else ["ip"]
    out = _run(pre + ["-o", "link", "show"], check=False).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line.count(":") >= 2]


def _namespaces() -> list[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def stale_links() -> list[Leftover]:
    """Our veths (root namespace) and EV namespaces whose creating process is gone."""
    if shutil.which("ip") is None:
        return []
    found = []
    for kind, names in (("netns", _namespaces()), ("veth", _links())):
        for name in names:
            owner = _owner_alive(name)
            if owner is not None and not owner[0]:
                found.append(Leftover(kind, name, owner[1]))
    return found


def remove_stale(leftovers: list[Leftover] | None = None) -> list[str]:
    """Delete stale namespaces (their veth end goes with them) and veths; returns the problems."""
    problems = []
    for lo in sorted(leftovers if leftovers is not None else stale_links(), key=lambda x: x.kind != "netns"):
        args = ["ip", "netns", "del", lo.name] if lo.kind == "netns" else ["ip", "link", "del", lo.name]
        cp = _run(args, check=False)
        gone = lo.name not in (_namespaces() if lo.kind == "netns" else _links())
        if cp.returncode != 0 and not gone:
            problems.append(f"{lo.kind} {lo.name}: {cp.stderr.strip()}")
    return problems


_cleaned_once = False


def remove_stale_once() -> None:
    """Called before this process makes its first veth/netns: a killed earlier run's are removed."""
    global _cleaned_once
    with _lock:
        if _cleaned_once:
            return
        _cleaned_once = True
    try:
        remove_stale()
    except NetworkSetupError:
        pass             # cleaning up after others must never stop this run
