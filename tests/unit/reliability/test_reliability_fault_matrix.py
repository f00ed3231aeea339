"""Fault matrix (issue 16): every fault type ends in the right verdict class, with outputs off and the evidence
kept. The cases (fault_suite/faults_cases.py) run once, through the real plugin and `v2g-bench`'s verdict
classification, against the built-in virtual lab; each row here judges one of them. docs/reliability.md
has the table."""
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
SUITE = HERE / "fault_suite"
RANK = {"passed": 0, "skipped": 1, "inconclusive": 2, "failed": 3, "error": 4}

# case -> (fault, expected verdict class)
MATRIX = {
    "test_instrument_disconnect": ("battery emulator connection closed mid transfer", "error"),
    "test_instrument_no_answer": ("battery emulator stops answering", "error"),
    "test_analyzer_late_answer": ("power analyzer answers after the VISA timeout", "error"),
    "test_analyzer_dropout": ("power analyzer connection lost while sampling", "error"),
    "test_watchdog_trip": ("bench hangs; the battery emulator's watchdog trips", "error"),
    "test_protection_trip[ovp_trip]": ("battery emulator over-voltage protection", "error"),
    "test_protection_trip[ocp_trip]": ("battery emulator over-current protection", "error"),
    "test_protection_trip[opp_trip]": ("battery emulator over-power protection", "error"),
    "test_meter_device_failure": ("energy meter answers Modbus exception 4", "error"),
    "test_modbus_disconnect": ("charger's Modbus link closed", "error"),
    "test_modbus_late_answer": ("charger's Modbus answers after the timeout", "error"),
    "test_can_bms_silent": ("CAN BMS node goes silent (bus-off)", "error"),
    "test_can_disconnect": ("socketcand connection closed", "error"),
    "test_setpoint_beyond_bench_limits": ("a setpoint beyond the bench limits (refused, nothing sent)", "error"),
    "test_evidence_disk_full": ("disk full while writing evidence", "error"),
    "test_analyzer_frozen": ("analyzer reading frozen (cross-checked with the emulator)", "error"),
    "test_tls_csms_certificate_expired": ("TLS refused: the CSMS's own certificate expired (bench side)", "error"),
    "test_ocpp_network_cut_by_bench_mid_transaction": ("OCPP link cut by the bench mid-transaction", "error"),
    "test_station_reboot_supply_cycled_by_bench": ("charger reboots mid-case: the bench cycled its supply", "error"),
    "test_dut_contactor_stuck_open": ("charger's contactor stuck open", "failed"),
    "test_tls_station_certificate_expired": ("TLS refused: the charger's client certificate expired", "failed"),
    "test_ocpp_charger_drops_link_mid_transaction": ("charger drops its OCPP link mid-transaction", "failed"),
    "test_station_reboots_by_itself": ("charger reboots mid-case by itself", "failed"),
    "test_clock_jump_on_station": ("charger's wall clock jumps 10 min", "failed"),
    "test_clock_jump_on_bench": ("bench's wall clock steps 10 min", "inconclusive"),
    "test_dut_derated": ("charger delivers 30 % of the setpoint", "failed"),
    "test_dut_too_slow": ("charger's response slower than its t90", "failed"),
    "test_grid_frequency_event_during_window": ("grid frequency event in the judged window", "inconclusive"),
    "test_grid_voltage_event_during_window": ("grid voltage sag in the judged window", "inconclusive"),
    "test_samples_too_sparse_to_judge": ("bench too late to sample densely enough", "inconclusive"),
}


def _run_matrix(out: Path) -> dict:
    log = out / "faults.jsonl"
    env = {**os.environ, "V2G_FAULT_LOG": str(log), "PYTHONPATH": f"{SUITE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("PYTEST_XDIST_WORKER", None)
    cp = subprocess.run([sys.executable, "-m", "pytest", str(SUITE / "faults_cases.py"), "-p", "fault_log_plugin",
                         "-p", "no:cacheprovider", "-o", "python_files=faults_*.py", "-q", "--timeout", "120",
                         "--v2g-reports", str(out / "reports")],
                        cwd=HERE.parents[2], env=env, capture_output=True, text=True, timeout=900)
    rows: dict[str, dict] = {}
    for line in log.read_text().splitlines() if log.exists() else ():
        rec = json.loads(line)
        case = rec["nodeid"].split("::")[-1]
        row = rows.setdefault(case, {"verdict": "passed", "messages": [], "state": None})
        if rec["kind"] == "verdict":
            if RANK[rec["verdict"]] > RANK[row["verdict"]]:
                row["verdict"] = rec["verdict"]
            if rec["message"]:
                row["messages"].append(f"{rec['when']}: {rec['message']}")
        else:
            row["state"] = rec
    evidence = out / "reports" / "evidence"
    for case, row in rows.items():
        safe = case.replace("[", "_").replace("]", "")
        row["evidence"] = [str(d) for d in evidence.iterdir() if d.name.endswith(safe)] if evidence.exists() else []
    return {"rows": rows, "output": cp.stdout[-3000:] + cp.stderr[-2000:]}


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory):
    """Every case run once per session, also under xdist (the workers share the result through a lock)."""
    base = tmp_path_factory.getbasetemp()
    # under xdist the session's temp dir is the workers' common parent; without it, this session's own
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "v2g-fault-matrix"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)           # the other worker waits for the one run
        done = shared / "result.json"
        if not done.exists():
            done.write_text(json.dumps(_run_matrix(shared)))
        result = json.loads(done.read_text())
    return result["rows"], result["output"]


@pytest.mark.parametrize("case", list(MATRIX))
def test_fault_gives_its_verdict_outputs_off_and_evidence(matrix_run, case):
    rows, cp = matrix_run
    assert case in rows, f"case did not run:\n{cp}"
    row = rows[case]
    fault, expected = MATRIX[case]
    assert row["verdict"] == expected, f"{fault}: verdict {row['verdict']}, expected {expected}; {row['messages']}"
    if expected != "failed":
        assert not any(m.startswith("call: ") and "Nonconformance" in m for m in row["messages"]), \
            f"a bench fault blamed the charger: {row['messages']}"
    st = row["state"]
    assert st is not None and st["outputs_off"], f"{fault}: energy still flowing after the unwind: {st}"
    assert len(row["evidence"]) == 1, f"{fault}: no evidence folder ({row['evidence']})"
    samples = Path(row["evidence"][0]) / "samples.csv"
    assert samples.exists() and len(samples.read_text().splitlines()) >= 2, f"{fault}: samples lost"


def test_matrix_has_at_least_20_fault_types():
    assert len(MATRIX) >= 20
    assert {v for _, v in MATRIX.values()} == {"error", "failed", "inconclusive"}
