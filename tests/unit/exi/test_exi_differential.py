"""Differential tests: the own codec against the stack's Java codec (one JVM per test process).

For random, grammar-driven messages (Hypothesis) of each schema set: both codecs encode, the bytes
must be identical; each decodes the other's output and the values must agree. Where the jar is
lossy (it inserts defaults, e.g. SchemaID=0 in supportedAppProtocolRes), the jar's own reading of
its stream is the reference. Messages include xmldsig Signature content in their headers.

Count per set: `V2G_EXI_DIFF_N` fixes it (the issue's full run: 1000); otherwise the count adapts
to a time budget per set, `V2G_EXI_DIFF_SECONDS` (default 5 s): the jar's cost per message is
measured first and Hypothesis gets as many examples as fit (at least 20).
"""
from __future__ import annotations

import random
import time

import pytest
from hypothesis import HealthCheck, given, settings

from v2g_bench.exi.codec import decode, encode, get_grammar
from v2g_bench.exi.errors import EXIEncodeError
from v2g_bench.exi.randmsg import JAR_ROOTS, MessageGenerator, diff_budget

# ACDP and WPT: the jar's JAXB layer has no classes for their messages (every encode fails with
# "A descriptor with default root element ... was not found"), so there is no reference to diff.
SETS = ["appprotocol", "iso20_common", "iso20_dc", "iso20_ac", "iso2", "din"]
STATS: dict[str, dict[str, int]] = {}


@pytest.fixture(scope="module")
def jar():
    from v2g_bench.exi import jar as jarmod

    jarmod.jar_codec()
    return jarmod


def _generator(set_name):
    # DIN: the jar fails on every base64Binary value (SignatureValue, certificates) with
    # NoClassDefFoundError javax/mail/internet/MimeMultipart, so its headers carry no Signature here
    return MessageGenerator(get_grammar(set_name), allow_signature=set_name != "din")


def _strategy(set_name):
    roots = JAR_ROOTS.get(set_name)
    return _generator(set_name).strategy(roots[0] if roots else None)


def _example_count(set_name, jar) -> int:
    """Examples that fit the time budget: time a few jar round trips (the dominant cost)."""
    n_max, seconds = diff_budget()
    if seconds == float("inf"):
        return n_max
    gen, roots = _generator(set_name), JAR_ROOTS.get(set_name)
    t0 = 0.0
    for i in range(6):
        if i == 1:
            t0 = time.monotonic()  # the first call warms the jar's grammar for this set up
        msg = gen.random(random.Random(1000 + i), roots[0] if roots else None)
        try:
            jar.jar_decode(jar.jar_encode(msg, set_name), set_name)
        except Exception:  # noqa: BLE001 - refused messages cost time too
            pass
        encode(msg, set_name)
    per_msg = (time.monotonic() - t0) / 5 * 1.5  # + own decode, Hypothesis overhead
    return max(20, min(n_max, int(seconds / per_msg)))


@pytest.mark.parametrize("set_name", SETS)
def test_exi_own_codec_matches_jar_bytes_and_values(set_name, jar):
    # fresh counts per run: a rerun must not add to the last attempt's
    stats = STATS[set_name] = {"identical": 0, "jar_lossy": 0, "jar_refused": 0}

    n = _example_count(set_name, jar)
    t0 = time.monotonic()

    @settings(max_examples=n, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(msg=_strategy(set_name))
    def check(msg):
        try:
            jar_bytes = jar.jar_encode(msg, set_name)
            jar_view = jar.jar_decode(jar_bytes, set_name)
        except Exception:  # noqa: BLE001 - the jar cannot map some valid messages (counted below)
            stats["jar_refused"] += 1
            return
        own_bytes = encode(msg, set_name)
        if jar_view == msg:
            assert own_bytes.hex() == jar_bytes.hex(), f"bytes differ for {msg}"
            stats["identical"] += 1
        else:
            stats["jar_lossy"] += 1
        # each decodes the other's output
        assert decode(jar_bytes, set_name) == jar_view
        assert encode(jar_view, set_name) == jar_bytes
        assert jar.jar_decode(own_bytes, set_name) == (jar_view if jar_view != msg else msg)

    check()
    total = sum(stats.values())
    print(f"{set_name}: {stats} ({n} examples, {time.monotonic() - t0:.1f} s)")
    # the jar refusing many messages would hide bugs; lossy ones are still diffed via its reading
    # "Refused" counts every jar failure, its known losses (docs/exi-codec.md) and its own errors on a busy
    # machine: iso2 had 0 of 41 on a quiet run and 13 of 45 in one CI run. A bound of 1/3 keeps the check's
    # power (at least half the messages compared byte for byte) without failing on that spread.
    assert stats["jar_refused"] <= total / 3 and stats["identical"] >= 0.5 * total, stats


def test_exi_jar_quirks_reproduced(jar):
    """The jar's deviations: empty value -> second-level EE, out-of-facet value -> untyped CH."""
    base = {"Header": {"SessionID": "AAAAAAAAAAAAAAAA", "TimeStamp": 1700000000},
            "MeterInfoRequested": False, "EVPresentVoltage": {"Exponent": 0, "Value": 400},
            "Scheduled_DC_CLReqControlMode": {"EVTargetCurrent": {"Exponent": 0, "Value": 10},
                                              "EVTargetVoltage": {"Exponent": 0, "Value": 400}}}
    for soc in (101, 127, 0, 100):
        msg = {"DC_ChargeLoopReq": {"Header": base["Header"], "DisplayParameters": {"PresentSOC": soc},
                                    **{k: v for k, v in base.items() if k != "Header"}}}
        jb = jar.jar_encode(msg, "iso20_dc")
        assert encode(msg, "iso20_dc") == jb
        assert decode(jb, "iso20_dc") == jar.jar_decode(jb, "iso20_dc") == msg
    msg = {"SessionSetupReq": {"Header": {"SessionID": "0000000000000000", "TimeStamp": 1}, "EVCCID": ""}}
    jb = jar.jar_encode(msg, "iso20_common")
    assert encode(msg, "iso20_common") == jb
    assert decode(jb, "iso20_common") == msg
    # the cbv2g mode writes a zero-length typed value instead: different bytes, same value
    cb = encode(msg, "iso20_common", mode="cbv2g")
    assert cb != jb and decode(cb, "iso20_common") == msg


def test_exi_json_key_order_does_not_matter_but_missing_content_is_an_error():
    ordered = {"SessionSetupReq": {"Header": {"SessionID": "00" * 8, "TimeStamp": 1}, "EVCCID": "X"}}
    shuffled = {"SessionSetupReq": {"EVCCID": "X", "Header": {"TimeStamp": 1, "SessionID": "00" * 8}}}
    assert encode(shuffled, "iso20_common") == encode(ordered, "iso20_common")
    with pytest.raises(EXIEncodeError) as ei:
        encode({"SessionSetupReq": {"Header": {"SessionID": "00" * 8, "TimeStamp": 1}}}, "iso20_common")
    assert ei.value.path == "/SessionSetupReq" and "EVCCID" in ei.value.expected
    with pytest.raises(EXIEncodeError) as ei:
        encode({"SessionSetupReq": {**ordered["SessionSetupReq"], "Bogus": 1}}, "iso20_common")
    assert ei.value.got == "Bogus"
