"""The fuzz campaign: run every target for its share of the time, count what happened to each input.

Per input a target reports one outcome:
  ok      the system under test accepted it (or answered it normally)
  typed   it was refused with the documented, typed error (BenchError/EXIDecodeError in-process;
          an error reply on the wire: SCPI error queue, `< error >`, Modbus exception, CALLERROR,
          a connection closed on a malformed header where the protocol says so)
  crash   anything else: an untyped exception, a dead service, a wrong answer to the health probe
  hang    no answer within the hang limit (in-process: the call was interrupted by SIGALRM)

Inputs come from Hypothesis strategies (structure-aware: grammar walks, JSON schemas, protocol
syntax) and scapy layers; each generated input is followed by a few cheap byte-level mutants of it
(bit flips, truncation, duplication, splices), which is where most of the volume comes from.
Crashes are saved (input + traceback) under the report folder so each becomes a regression test.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import psutil

OK, TYPED, CRASH, HANG = "ok", "typed", "crash", "hang"


class Hang(Exception):
    """Raised by the SIGALRM watchdog inside an in-process call that exceeded the hang limit."""


class TargetBroken(Exception):
    """The system under test is gone (process died, port closed for good): stop this target."""


@dataclass
class Stats:
    target: str
    inputs: int = 0
    ok: int = 0
    typed: int = 0
    crashes: int = 0
    hangs: int = 0
    seconds: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    fds_start: int = 0
    fds_end: int = 0
    crash_files: list[str] = field(default_factory=list)
    note: str = ""

    def add(self, outcome: str) -> None:
        self.inputs += 1
        if outcome == OK:
            self.ok += 1
        elif outcome == TYPED:
            self.typed += 1
        elif outcome == HANG:
            self.hangs += 1
        else:
            self.crashes += 1

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


class Target:
    """One interface under fuzz. Subclasses implement `setup`, `batches` and `teardown`.

    `batches(rng)` yields lists of inputs; `run_batch(inputs)` returns one outcome per input (a
    batch lets network targets pipeline inputs and check the service's health once per batch).
    """

    name = "?"
    hang_s = 5.0
    process: psutil.Process | None = None     # the process whose memory is reported (default: ours)

    def setup(self, workdir: Path) -> None:
        pass

    def teardown(self) -> None:
        pass

    def batches(self, rng: random.Random) -> Iterable[list]:
        raise NotImplementedError

    def run_batch(self, inputs: list) -> list[tuple[str, str | None]]:
        """(outcome, detail) per input; detail is the traceback/reason for crash and hang."""
        raise NotImplementedError


@contextlib.contextmanager
def alarm(seconds: float):
    """SIGALRM watchdog for in-process calls (main thread only): raises Hang after `seconds`."""
    if seconds <= 0 or sys.platform == "win32":
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"no result within {seconds:g} s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def call_typed(fn: Callable[[Any], Any], value, typed: tuple[type, ...], hang_s: float) -> tuple[str, str | None]:
    """Run an in-process target on one input and classify the result."""
    try:
        with alarm(hang_s):
            fn(value)
    except typed:
        return TYPED, None
    except Hang as e:
        return HANG, str(e)
    except RecursionError:
        return CRASH, traceback.format_exc(limit=8)
    except Exception:
        return CRASH, traceback.format_exc(limit=8)
    return OK, None


# ------------------------------------------------------------------------------------------------
# mutation: cheap variants of a generated input (most of the campaign's volume)
def mutate(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        i = rng.randrange(len(b)) if b else 0
        if op == 0 and b:                       # bit flip
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and b:                     # interesting byte
            b[i] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, 0x3C, 0x3E, 0x0A, 0x20, 0x22, 0x2C))
        elif op == 2:                           # truncate
            del b[i:]
        elif op == 3 and b:                     # duplicate a run
            j = min(len(b), i + rng.randint(1, 16))
            b[i:i] = b[i:j] * rng.randint(1, 8)
        elif op == 4:                           # insert random bytes
            b[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
        elif op == 5 and len(b) > 1:            # delete a run
            del b[i:i + rng.randint(1, 8)]
        else:                                   # big length-ish number
            b[i:i + 2] = rng.choice((b"\xff\xff", b"\x00\x00", b"\x7f\xff", b"\x80\x00"))
        if len(b) > 1 << 16:
            del b[1 << 16:]
    return bytes(b)


def with_mutants(seeds: Iterable[bytes], rng: random.Random, n: int) -> list[bytes]:
    out = []
    for s in seeds:
        out.append(s)
        out.extend(mutate(s, rng) for _ in range(n))
    return out


def hypothesis_examples(strategy, n: int, seed: int) -> list:
    """`n` examples drawn by Hypothesis' engine (generation only: no shrinking, no database)."""
    from hypothesis import HealthCheck, Phase, given, seed as hseed, settings

    got: list = []

    @hseed(seed)
    @settings(max_examples=n, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize=False)
    @given(strategy)
    def collect(x):
        got.append(x)
    collect()
    return got


class ExamplePool:
    """Hypothesis examples drawn in bulk and reused as mutation seeds: each call into Hypothesis'
    engine costs ~0.5 s of set-up, so a target draws 50 at a time and refreshes a key's pool after
    its seeds have been used `reuse` times each."""

    def __init__(self, size: int = 50, reuse: int = 20):
        self.size, self.reuse = size, reuse
        self.pools: dict = {}

    def draw(self, key, strategy, rng: random.Random):
        pool, uses = self.pools.get(key, ([], 0))
        if not pool or uses >= self.reuse * len(pool):
            pool, uses = hypothesis_examples(strategy, self.size, rng.getrandbits(32)), 0
        self.pools[key] = (pool, uses + 1)
        return rng.choice(pool)


# ------------------------------------------------------------------------------------------------
def _rss_mb(p: psutil.Process | None) -> float:
    try:
        return (p or psutil.Process()).memory_info().rss / 1e6
    except psutil.Error:
        return 0.0


def _fds(p: psutil.Process | None) -> int:
    try:
        return (p or psutil.Process()).num_fds()
    except psutil.Error:
        return 0


def save_crash(workdir: Path, target: str, value, detail: str) -> str:
    raw = value if isinstance(value, (bytes, bytearray)) else json.dumps(value, default=repr).encode()
    h = hashlib.sha1(raw).hexdigest()[:12]
    d = workdir / "crashes" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{h}.input").write_bytes(bytes(raw))
    (d / f"{h}.txt").write_text(detail or "")
    return str(d / f"{h}.input")


def run_target(target: Target, seconds: float, workdir: Path, seed: int,
               progress: Callable[[Stats], None] | None = None) -> Stats:
    stats = Stats(target.name)
    rng = random.Random(seed)
    t0 = time.monotonic()
    try:
        target.setup(workdir)
    except Exception as e:                      # the bench could not set the target up: say so
        stats.note = f"not run: set-up failed ({type(e).__name__}: {e})"
        return stats
    proc = target.process
    stats.rss_start_mb = stats.rss_peak_mb = _rss_mb(proc)
    stats.fds_start = _fds(proc)
    deadline = t0 + seconds
    last_progress = time.monotonic()
    try:
        for batch in target.batches(rng):
            if stats.inputs and time.monotonic() >= deadline:    # the first batch always runs
                break
            try:
                results = target.run_batch(batch)
            except TargetBroken as e:
                stats.crashes += 1
                stats.note = f"stopped: {e}"
                stats.crash_files.append(save_crash(workdir, target.name, batch[-1] if batch else b"", str(e)))
                break
            for value, (outcome, detail) in zip(batch, results):
                stats.add(outcome)
                if outcome in (CRASH, HANG) and len(stats.crash_files) < 50:
                    stats.crash_files.append(save_crash(workdir, target.name, value, f"{outcome}: {detail}"))
            if time.monotonic() - last_progress > 5:   # (progress and memory every 5 s)
                last_progress = time.monotonic()
                stats.rss_peak_mb = max(stats.rss_peak_mb, _rss_mb(proc))
                stats.seconds = time.monotonic() - t0
                if progress:
                    progress(stats)
    except KeyboardInterrupt:               # Ctrl-C: stop here, still report what ran
        stats.note = "interrupted by the operator"
    finally:
        stats.seconds = time.monotonic() - t0
        stats.rss_end_mb = _rss_mb(proc)
        stats.rss_peak_mb = max(stats.rss_peak_mb, stats.rss_end_mb)
        stats.fds_end = _fds(proc)
        try:
            target.teardown()
        except Exception as e:
            stats.note = (stats.note + "; " if stats.note else "") + f"teardown: {e}"
    return stats


def format_table(rows: list[Stats]) -> str:
    head = f"{'target':<14}{'inputs':>10}{'ok':>10}{'typed':>10}{'crashes':>9}{'hangs':>7}{'inputs/s':>10}" \
           f"{'RSS MB start/end/peak':>24}{'fds':>10}"
    lines = [head, "-" * len(head)]
    for s in rows:
        lines.append(f"{s.target:<14}{s.inputs:>10}{s.ok:>10}{s.typed:>10}{s.crashes:>9}{s.hangs:>7}{s.rate:>10.0f}"
                     f"{f'{s.rss_start_mb:.0f}/{s.rss_end_mb:.0f}/{s.rss_peak_mb:.0f}':>24}"
                     f"{f'{s.fds_start}/{s.fds_end}':>10}" + (f"  {s.note}" if s.note else ""))
    tot = Stats("total")
    for s in rows:
        tot.inputs += s.inputs
        tot.ok += s.ok
        tot.typed += s.typed
        tot.crashes += s.crashes
        tot.hangs += s.hangs
        tot.seconds = max(tot.seconds, 0) + s.seconds
    lines.append("-" * len(head))
    lines.append(f"{'total':<14}{tot.inputs:>10}{tot.ok:>10}{tot.typed:>10}{tot.crashes:>9}{tot.hangs:>7}"
                 f"{tot.rate:>10.0f}")
    return "\n".join(lines)


def write_report(rows: list[Stats], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([s.__dict__ | {"rate": s.rate} for s in rows], indent=1))
    os.replace(tmp, path)
