"""What a killed run leaves behind -- virtual lab processes, veth pairs, EV namespaces -- found and removed.

A lab started by `labproc.start_lab` carries its owners in `V2G_BENCH_LAB_OWNERS` and stops on its
own when they die; this module is the second line: labs whose owners are gone (or, from before
owners were recorded, labs orphaned to init), and veths/namespaces whose creating pid is gone
(the pid is in their name, see ev.netns). It never touches anything whose owner may be alive.
The next lab start and `v2g-bench doctor` call it.
"""
from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass

import psutil

from v2g_bench.lab.server import OWNERS_ENV, owner_alive, parse_owners

log = logging.getLogger("v2g_bench.leftovers")
TERM_GRACE_S = 5.0


@dataclass
class StaleLab:
    pid: int
    reason: str

    @property
    def name(self) -> str:
        return f"virtual lab pid {self.pid}"


def _is_lab(cmdline: list[str]) -> bool:
    return any(a == "-m" and b == "v2g_bench.lab" for a, b in zip(cmdline, cmdline[1:]))


def stale_labs(include_orphans: bool = True) -> list[StaleLab]:
    """Lab processes (`python -m v2g_bench.lab`) whose owner is gone.

    `include_orphans`: also labs without recorded owners that were reparented to init (a run killed
    before owners were recorded -- or a lab someone started by hand in the background, so only
    `v2g-bench doctor`, which the user runs on purpose, removes those)."""
    found = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline"]):
        try:
            if proc.pid == os.getpid() or not _is_lab(proc.info["cmdline"] or []):
                continue
            owners = parse_owners(proc.environ().get(OWNERS_ENV))
            if owners:
                dead = [pid for pid, start in owners if not owner_alive(pid, start)]
                if dead:
                    found.append(StaleLab(proc.pid, f"its owner process {dead[0]} is gone"))
            elif include_orphans and proc.info["ppid"] == 1:
                found.append(StaleLab(proc.pid, "orphaned (its parent is gone; started before owners were recorded)"))
        except psutil.Error:
            continue              # it ended while we looked, or it is not ours to read
    return found


def stop_lab(pid: int, grace_s: float = TERM_GRACE_S) -> str | None:
    """SIGTERM (the lab switches its outputs off and exits), SIGKILL after grace_s. None = gone."""
    try:
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)
    except psutil.NoSuchProcess:
        return None
    except psutil.Error as e:
        return f"lab pid {pid}: {e}"
    return None


def remove_stale_labs(include_orphans: bool = False) -> list[str]:
    """Stop every stale lab; returns what could not be done (never raises: it runs before a start)."""
    problems = []
    for lab in stale_labs(include_orphans):
        log.warning("stopping a stale virtual lab (pid %d): %s", lab.pid, lab.reason)
        err = stop_lab(lab.pid)
        if err:
            problems.append(err)
    return problems


def find_all() -> list[tuple[str, str, str]]:
    """(kind, name, why it is stale) of every leftover: labs, namespaces, veths."""
    from v2g_bench.ev import netns
    rows = [("lab", lab.name, lab.reason) for lab in stale_labs()]
    rows += [(lo.kind, lo.name, f"made by {lo.owner}, which is gone") for lo in netns.stale_links()]
    return rows


def remove_all() -> tuple[list[tuple[str, str, str]], list[str]]:
    """Remove every leftover (labs first: they hold the veth ends). Returns (what was found, problems)."""
    from v2g_bench.ev import netns
    found = find_all()
    problems = remove_stale_labs(include_orphans=True)
    try:
        problems += netns.remove_stale()
    except netns.NetworkSetupError as e:
        problems.append(str(e))
    return found, problems
