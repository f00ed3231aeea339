"""Measurement: seeded, deterministic noise and quantisation of what an instrument reads."""
from __future__ import annotations

import math
from dataclasses import dataclass

# ------------------------------------------------------------------------------------ noise


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def seeded_gauss(seed: int, stream: int, k: int) -> float:
    """Standard normal sample number `k` of noise stream `stream`: a pure function of its inputs.

    Counter-based (not a stateful RNG), so a sample depends only on (seed, stream, k) and never on
    how often or in which order the front-ends read: the same seed and clock give the same samples.
    """
    h1 = _splitmix64((seed * 1_000_003 + stream) * 0x100000001 + k)
    h2 = _splitmix64(h1)
    u1 = ((h1 >> 11) + 1) / 9007199254740993.0       # (0, 1]
    u2 = (h2 >> 11) / 9007199254740992.0
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


_STREAMS = {"battery": 1, "analyzer": 2, "meter": 3, "can": 4}


@dataclass(frozen=True)
class Measurement:
    """What an instrument's measurement path shows: sampled at its rate, noisy, quantised."""
    t: float                    # plant time of the sample
    k: int                      # sample index
    dc_voltage_v: float
    dc_current_a: float
    dc_power_w: float
    ac_voltage_v: float
    ac_current_a: float         # line current (per phase)
    ac_power_w: float           # total active power, + = import
    ac_apparent_va: float
    ac_reactive_var: float
    freq_hz: float
    soc: float


def _quantise(x: float, rel: float) -> float:
    if x == 0.0 or rel <= 0:
        return x
    step = 10.0 ** math.floor(math.log10(abs(x) * rel)) if abs(x) * rel > 0 else 0.0
    return round(x / step) * step if step else x


