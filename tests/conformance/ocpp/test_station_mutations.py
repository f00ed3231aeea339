"""Every OCPP case can fail: the simulated station's switchable defects (v2g_bench.lab.charger.station_defects)
against the case rows of this suite.

- Default (CI subset): each defect once, with the case row it names (`caught_by`); the row must end *failed*
  (Nonconformance) with the defect on. The same row passes in the suite's normal run (defect-free station).
- `V2G_MUTATION=full` (`make mutation-ocpp`): every defect against one row per case (2.0.1 where it exists);
  each outcome (killed = failed, survived = passed, inconclusive, error) is appended to
  $V2G_MUTATION_OUT (JSON lines) and `python -m v2g_bench.lab.charger.station_defects matrix FILE` prints the
  case x defect table. Outcomes are data there, not test failures.
"""
from __future__ import annotations

import json
import os

import pytest

from v2g_bench.conformance import run_case
from v2g_bench.errors import Inconclusive, Nonconformance
from v2g_bench.lab.charger.station_defects import DEFECTS

# The suite's own proof that its cases can fail (a defect switched on in the simulated charger): run by
# `make test` and the mutation targets; `v2g-bench run` (the charger's verdicts) leaves it out.
pytestmark = pytest.mark.suite_selftest



def _load(name: str):
    """This suite's case tables (loaded by path: the test folders are not packages)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(f"ocpp_cases_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MODULES = tuple(_load(f"test_block_{b}") for b in "abefgkqr")

# The second batch of cases (2.0.1 row where it exists): the defect shown to make each fail. `V2G_MUTATION=new`
# runs exactly these pairs (the CI subset below runs one row per defect); docs/ocpp-suite.md has the table.
NEW_KILLS = {
    "TC_A_01_CS": "no_basic_auth", "TC_A_11_CS": "csr_wrong_identity", "TC_A_12_CS": "trigger_not_sent",
    "TC_A_14_CS": "accept_any_certificate", "TC_A_15_CS": "cert_retry_after_rejected",
    "TC_A_23_CS": "no_cert_signing_retry",
    "TC_B_30_CS": "answers_while_rejected", "TC_B_45_CS": "reset_no_reboot", "TC_B_46_CS": "no_network_fallback",
    "TC_B_49_CS": "no_network_fallback", "TC_B_51_CS": "offline_threshold_ignored",
    "TC_B_52_CS": "status_always_after_reconnect", "TC_B_101_CS": "ended_without_stopped_reason",
    "TC_B_102_CS": "power_loss_tx_lost", "TC_B_103_CS": "power_loss_tx_lost", "TC_B_104_CS": "reset_no_reboot",
    "TC_B_107_CS": "priority_any_slot",
    "TC_E_01_CS": "ignore_tx_start_point", "TC_E_02_CS": "ignore_tx_start_point",
    "TC_E_05_CS": "no_connection_timeout", "TC_E_39_CS": "no_connection_timeout",
    "TC_E_07_CS": "ended_without_stopped_reason", "TC_E_08_CS": "ended_without_stopped_reason",
    "TC_E_37_CS": "ended_without_stopped_reason", "TC_E_14_CS": "ended_without_stopped_reason",
    "TC_E_21_CS": "ended_without_stopped_reason", "TC_E_26_CS": "stop_on_unplug_always",
    "TC_E_16_CS": "ignore_deauthorization", "TC_E_52_CS": "authorize_despite_disabled",
    "TC_E_31_CS": "queue_status_wrong", "TC_E_42_CS": "no_tx_message_retry", "TC_E_50_CS": "no_tx_message_retry",
    "TC_E_51_CS": "no_tx_message_retry", "TC_E_100_CS": "ignore_transaction_limit",
    "TC_E_105_CS": "ignore_transaction_limit", "TC_E_113_CS": "power_loss_tx_lost",
    "TC_E_115_CS": "power_loss_tx_lost", "TC_E_116_CS": "resumption_timeout_ignored",
    "TC_F_04_CS": "no_connection_timeout", "TC_F_07_CS": "unlock_fails_without_cable",
    "TC_F_100_CS": "trigger_accepts_unknown", "TC_G_17_CS": "scheduled_availability_silent",
    "TC_K_15_CS": "accept_invalid_profile", "TC_K_38_CS": "remote_start_profile_when_disabled",
    "TC_K_130_CS": "accept_unsupported_feature", "TC_K_131_CS": "accept_unsupported_feature",
    "TC_K_132_CS": "accept_unsupported_feature", "TC_K_133_CS": "accept_unsupported_feature",
    "TC_K_134_CS": "accept_unsupported_feature", "TC_K_135_CS": "accept_unsupported_feature",
    "TC_K_121_CS": "dynamic_update_ignored", "TC_K_122_CS": "dynamic_update_ignored",
    "TC_K_123_CS": "accept_invalid_profile",
    "TC_Q_107_CS": "charging_only_ignores_limit", "TC_Q_110_CS": "dynamic_update_ignored",
    "TC_Q_113_CS": "profile_duration_ignored", "TC_Q_119_CS": "accept_invalid_profile",
    "TC_Q_123_CS": "accept_unsupported_feature",
}
ROWS = {rid: (case, version) for m in MODULES for case in m.CASES for rid, version in case.rows()}
FULL = os.environ.get("V2G_MUTATION") in ("full", "new")


def _one_row_per_case() -> list[str]:
    out = []
    for m in MODULES:
        for case in m.CASES:
            rows = dict((v, rid) for rid, v in case.rows())
            out.append(rows.get("2.0.1") or rows.get("2.1") or next(iter(rows.values())))
    return out


def _row_of(case_id: str) -> str:
    rows = [r for r in ROWS if r.startswith(case_id + "[")]
    return next((r for r in rows if r.endswith("[ocpp2.0.1]")), rows[0] if rows else case_id)


if os.environ.get("V2G_MUTATION") == "new":
    PARAMS = [pytest.param(d, _row_of(c), id=f"{d}-{c}") for c, d in NEW_KILLS.items()]
elif FULL:
    PARAMS = [pytest.param(d, r, id=f"{d}-{r}") for d in DEFECTS for r in _one_row_per_case()]
else:
    PARAMS = [pytest.param(d.name, d.caught_by, id=d.name) for d in DEFECTS.values()]


def test_every_defect_names_a_row_of_this_suite():
    unknown = {d.name: d.caught_by for d in DEFECTS.values() if d.caught_by not in ROWS}
    assert not unknown, f"defects whose catching row is not a case row here: {unknown}"
    bad = {c: d for c, d in NEW_KILLS.items() if d not in DEFECTS or not any(r.startswith(c + "[") for r in ROWS)}
    assert not bad, f"NEW_KILLS entries naming no case / no defect: {bad}"


@pytest.mark.lab_only
@pytest.mark.parametrize(("defect", "row"), PARAMS)
def test_station_defect_is_caught(defect: str, row: str, request, dut):
    case, version = ROWS[row]
    dut.station_defects = (defect,)
    outcome, detail = "survived", ""
    try:
        run_case(case, version, request)
    except Nonconformance as e:
        outcome, detail = "killed", str(e)
    except Inconclusive as e:
        outcome, detail = "inconclusive", str(e)
    except pytest.skip.Exception as e:
        outcome, detail = "skipped", str(e)
    except Exception as e:  # noqa: BLE001 - in the full matrix an error is a cell of the table
        if not FULL:
            raise
        outcome, detail = "error", f"{type(e).__name__}: {e}"
    if FULL:
        out = os.environ.get("V2G_MUTATION_OUT", "reports/mutation-ocpp.jsonl")
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"defect": defect, "row": row, "outcome": outcome, "detail": detail[:300]}) + "\n")
        return
    if outcome != "killed":
        pytest.fail(f"station defect {defect!r} ({DEFECTS[defect].what}) was not caught by {row}: {outcome} "
                    f"{detail[:300]}")
