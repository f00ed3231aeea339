"""Each case can fail: with a defect of the simulated charger's SECC switched on (secc20_mutations.py), the case
must fail (a Nonconformance). The default run exercises every defect once (CI_SUBSET); the whole case x defect
table runs with V2G_MUTATION=full (make mutation-iso). The defect-free charger is the default suite itself."""
import os

import pytest

from v2g_bench.conformance import run_case
from v2g_bench.errors import Nonconformance

from secc20_mutations import CI_EXTRA, CI_SUBSET, CRASH_DEFECTS, derive, mutations
from secc20_rows import message_group_cases, timeout_cases
from secc20_special import special_cases

# The suite's own proof that its cases can fail (a defect switched on in the simulated charger): run by
# `make test` and the mutation targets; `v2g-bench run` (the charger's verdicts) leaves it out.
pytestmark = pytest.mark.suite_selftest

ALL = {c.id: c for c in message_group_cases() + special_cases() + timeout_cases()}
TABLE = mutations()


def _other_tables() -> None:
    """The -2 and DIN rows (their own test modules), each with the defect derived from its steps."""
    import importlib.util
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent
    for rel in ("iso15118_2/test_secc_iso2.py", "din70121/test_secc_din.py"):
        spec = importlib.util.spec_from_file_location(f"_mutation_{Path(rel).stem}", here / rel)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for c in mod.CASES:
            ALL[c.id] = c
            d = derive(c)
            if d is not None:
                TABLE[c.id] = d


_other_tables()
FULL = os.environ.get("V2G_MUTATION") == "full"


def _rows():
    pairs = {(case, TABLE[case][0]): TABLE[case][1] for case in CI_SUBSET.values() if case in TABLE}
    pairs.update({(case, d): p for case, (d, p) in CI_EXTRA.items()})
    if FULL:
        pairs.update({(case, d): p for case, (d, p) in TABLE.items()})
    rows = []
    for (case_id, defect), params in sorted(pairs.items()):
        marks = [pytest.mark.lab_only]
        if ALL[case_id].slow:
            marks.append(pytest.mark.slow)
        rows.append(pytest.param(case_id, defect, params, id=f"{case_id}-x-{defect}", marks=marks))
    return rows


@pytest.mark.parametrize(("case_id", "defect", "params"), _rows())
def test_case_catches_defect(case_id, defect, params, request, dut_profile):
    case = ALL[case_id]
    missing = [f for f in case.requires if not dut_profile.claims(f)]
    if missing:
        pytest.skip(f"the DUT does not claim {', '.join(missing)}")
    control = request.getfixturevalue("dut").control
    control.call("secc.defects", clear=True)
    control.call("secc.defect", name=defect, **params)
    try:
        with pytest.raises(Nonconformance) as caught:
            run_case(case, None, request)
    except pytest.fail.Exception:
        raise AssertionError(f"{case_id} passed with the SECC defect {defect} {params or ''} switched on: "
                             "the case cannot catch it") from None
    finally:
        control.call("secc.defects", clear=True)
    assert caught.value is not None


CRASHES = [(d, CRASH_DEFECTS[d]) for d in CRASH_DEFECTS]


@pytest.mark.lab_only
@pytest.mark.parametrize(("defect", "params"), CRASHES, ids=[c[0] for c in CRASHES])
def test_charger_crash_mid_case_fails_naming_the_step_and_leaves_the_bench_safe(defect, params, request):
    """A charger that resets or floods mid-case: a failed verdict naming what was missing, outputs off, the bench
    unharmed (the next row runs), evidence (trace + pcap) kept."""
    import time

    case = ALL["ISO20_DC_ChargeLoop_DC_BPT_dynamic_good"]
    dut = request.getfixturevalue("dut")
    dut.control.call("secc.defects", clear=True)
    dut.control.call("secc.defect", name=defect, **params)
    try:
        with pytest.raises(Nonconformance, match="DC_ChargeLoopRes"):
            run_case(case, None, request)
    finally:
        dut.control.call("secc.defects", clear=True)
    end = time.monotonic() + 10
    st = dut.state()
    while time.monotonic() < end and (st.get("contactor_closed") or abs(st.get("dc_power_w") or 0) > 1.0):
        time.sleep(0.1)
        st = dut.state()
    assert not st.get("contactor_closed") and abs(st.get("dc_power_w") or 0) <= 1.0, st
    kept = {p.name for p in request.getfixturevalue("evidence").files()}
    assert any(n.endswith(".pcap") for n in kept) and any("v2gtp-trace" in n for n in kept), kept
