"""The conformance engine's rows, steps and matchers in-process: bad rows are refused at construction naming the
row, matchers say what was wanted next to what came, a PIXIT only tightens a normative timer."""
from types import SimpleNamespace

import pytest

from v2g_bench.conformance import Case, V, step
from v2g_bench.conformance.catalogue import audit, lookup
from v2g_bench.conformance.context import CaseContext
from v2g_bench.conformance.match import ANY, absent, approx, between, check_fields, one_of, where
from v2g_bench.errors import CaseDefinitionError, Nonconformance


def ok_step():
    return step("noop", lambda ctx: None)


def row(**kw):
    base = dict(title="t", standard="OCPP", block="K Smart charging", covers=("TC_K_01_CS",), steps=[ok_step()])
    base.update(kw)
    return Case("TC_K_01_CS", **base)


@pytest.mark.parametrize("kw, words", [
    (dict(covers=("TC_K_999_CS",)), "'TC_K_999_CS' is not in the catalogue"),
    (dict(covers=("V2G20-1501",), side="SECC"), "V2G20-1501 binds the EV"),
    (dict(requires=("DC_BTP",)), "requires 'DC_BTP': no DUT profile can claim it"),
    (dict(versions=("2.0",)), "'2.0' is not an OCPP version"),
    (dict(actions=("plugin",)), "unknown DUT action 'plugin'"),
    (dict(steps=[]), "no steps"),
    (dict(steps=["expect Accepted"]), "is str 'expect Accepted', not a step word"),
    (dict(covers="TC_K_01_CS"), "covers must be a tuple"),
    (dict(steps=[step("x", lambda c: 0, req="K01.FR.999")]), None),   # FR of a catalogued use case: fine
    (dict(steps=[step("x", lambda c: 0, req="Q99.FR.01")]), "'Q99.FR.01' is not in the catalogue"),
])
def test_bad_rows_are_refused_naming_the_row(kw, words):
    if words is None:
        assert row(**kw).covers
        return
    with pytest.raises(CaseDefinitionError) as e:
        row(**kw)
    assert "case 'TC_K_01_CS'" in str(e.value) and words in str(e.value)


def test_catalogue_knows_the_secc_and_ev_sides():
    assert lookup("V2G20-1502").side == "SECC" and lookup("V2G20-1501").side == "EVCC"
    assert lookup("V2G20-2623").note.startswith("Resume")
    assert lookup("TC_Q_104_CS") is not None and lookup("TC_Q_999_CS") is None
    assert audit(("V2G2-123", "V2G-DC-456", "IEC61851-1:A.2.3", "V2GB-OCPP-PWR-01")) == []
    assert audit(("V2GB-NOT-REGISTERED",))


def test_check_fields_prints_wanted_next_to_got():
    got = {"status": "Rejected", "statusInfo": {"reasonCode": "TxNotFound"}, "n": 3.0}
    with pytest.raises(Nonconformance) as e:
        check_fields(got, {"status": "Accepted", "statusInfo.reasonCode": one_of("A", "B"), "n": 3,
                           "missing": ANY, "extra": absent}, req="K01.FR.07", what="answer")
    msg = str(e.value)
    assert msg.startswith("[K01.FR.07] answer:")
    assert 'status: wanted "Accepted", got "Rejected"' in msg
    assert "statusInfo.reasonCode: wanted one of 'A', 'B', got \"TxNotFound\"" in msg
    assert "missing: wanted anything (present), got (missing)" in msg
    assert "n:" not in msg                                     # 3 == 3.0: numbers compare as numbers
    check_fields(got, {"n": approx(3.05, abs=0.1), "status": between(None, None) if False else "Rejected"})
    with pytest.raises(Nonconformance):
        check_fields({"limit": -5}, {"limit": between(0, 10)})


def test_a_predicate_that_raises_is_the_cases_error_not_the_chargers():
    with pytest.raises(CaseDefinitionError, match="predicate for 'even'.*TypeError"):
        check_fields({"x": "a"}, {"x": where(lambda v: v % 2 == 0, "even")})


def test_v_references_resolve_and_a_wrong_path_is_a_case_error():
    ctx = CaseContext(row(), None, SimpleNamespace())
    ctx.vars["started"] = {"transactionInfo": {"transactionId": "tx-1"}}
    assert ctx.resolve({"id": V("started.transactionInfo.transactionId"), "n": [V("started.transactionInfo")]}) == \
        {"id": "tx-1", "n": [{"transactionId": "tx-1"}]}
    with pytest.raises(CaseDefinitionError, match="no started.transactionInfo.transactionld"):
        ctx.resolve(V("started.transactionInfo.transactionld"))
    with pytest.raises(CaseDefinitionError, match="no earlier step saved 'ended'"):
        ctx.resolve(V("ended.x"))


class _Req:
    def __init__(self, pixit):
        self.pixit = pixit

    def getfixturevalue(self, name):
        assert name == "dut_profile"
        return SimpleNamespace(pixit=self.pixit)


@pytest.mark.parametrize("declared, limit, deviation", [(None, 0.25, False), (0.1, 0.1, False), (1.0, 0.25, True)])
def test_a_pixit_tightens_a_normative_timer_but_never_loosens_it(declared, limit, deviation):
    ctx = CaseContext(row(), None, _Req({} if declared is None else {"t": declared}))
    assert ctx.timer("t", 0.25) == limit
    assert bool(ctx.deviations) is deviation
    assert ctx.pixit_used["t"]["normative_s"] == 0.25


def test_pics_pixit_document_lists_claims_declared_and_used_parameters(tmp_path):
    import json

    from v2g_bench.conformance import pics
    from v2g_bench.profiles import DEFAULT_DUT, load_dut
    dut = load_dut(DEFAULT_DUT)
    used = {"t::a[X]": {"secc_charge_loop_performance_time_s": {"limit_s": 0.25, "normative_s": 0.25,
                                                               "declared_s": None}},
            "t::b[Y]": {"secc_charge_loop_performance_time_s": {"limit_s": 0.25, "normative_s": 0.25,
                                                               "declared_s": None}, "round_trip_efficiency_min": 0.85}}
    path = pics.write(tmp_path, dut, used, {"t::b[Y]": ["[pixit] x = 2 s would loosen 1 s: ignored"], "t::a[X]": []})
    doc = json.loads(path.read_text())
    assert "DC_BPT" in doc["pics"]["claims"]["energy_services"]
    assert doc["pixit"]["tolerances"]["power_abs_w"] == dut.tolerances["power_abs_w"]
    u = doc["pixit"]["used"]["secc_charge_loop_performance_time_s"]
    assert u["cases"] == ["t::a[X]", "t::b[Y]"] and len(u["values"]) == 1
    assert list(doc["deviations"]) == ["t::b[Y]"]
