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



def _load(name: str):
    """This suite's case tables (loaded by path: the test folders are not packages)."""
    import importlib.util
    from pathlib import Path
    spec = importlib.util.spec_from_file_location(f"ocpp_cases_{name}", Path(__file__).with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MODULES = tuple(_load(f"test_block_{b}") for b in "abefgkqr")
ROWS = {rid: (case, version) for m in MODULES for case in m.CASES for rid, version in case.rows()}
FULL = os.environ.get("V2G_MUTATION") == "full"


def _one_row_per_case() -> list[str]:
    out = []
    for m in MODULES:
        for case in m.CASES:
            rows = dict((v, rid) for rid, v in case.rows())
            out.append(rows.get("2.0.1") or rows.get("2.1") or next(iter(rows.values())))
    return out


if FULL:
    PARAMS = [pytest.param(d, r, id=f"{d}-{r}") for d in DEFECTS for r in _one_row_per_case()]
else:
    PARAMS = [pytest.param(d.name, d.caught_by, id=d.name) for d in DEFECTS.values()]


def test_every_defect_names_a_row_of_this_suite():
    unknown = {d.name: d.caught_by for d in DEFECTS.values() if d.caught_by not in ROWS}
    assert not unknown, f"defects whose catching row is not a case row here: {unknown}"


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
