"""The run's PICS/PIXIT document: what the DUT claimed (its profile's [claims], ratings, tolerances), the PIXIT it
declared, and which parameters each case was actually judged by (normative timers, PIXITs tightening them,
deviations). Written to the run folder as pics-pixit.json; the test report renders it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def document(dut, used: dict[str, dict], deviations: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """`used`: case node id -> {parameter: value or timer record}; `deviations`: case node id -> notes."""
    claims = {"energy_services": sorted(dut.energy_services), "control_modes": sorted(dut.control_modes),
              "protocols": sorted(dut.protocols), "auth": sorted(dut.auth), "tls": dut.tls,
              "ocpp_versions": sorted(dut.ocpp_versions), "security_profile": dut.security_profile,
              "features": sorted(dut.features)}
    ratings = {"charge": vars(dut.charge) if dut.charge else None,
               "discharge": vars(dut.discharge) if dut.discharge else None}
    by_param: dict[str, dict] = {}
    for case, params in sorted(used.items()):
        for name, value in params.items():
            entry = by_param.setdefault(name, {"values": {}, "cases": []})
            entry["values"][json.dumps(value, sort_keys=True, default=str)] = value
            entry["cases"].append(case)
    return {"dut": {"identity": dut.identity, "profile": str(dut.path)},
            "pics": {"claims": claims, "ratings": ratings},
            "pixit": {"declared": dict(dut.pixit), "tolerances": dict(dut.tolerances),
                      "used": {k: {"values": list(v["values"].values()), "cases": v["cases"]}
                               for k, v in sorted(by_param.items())}},
            "deviations": {k: v for k, v in sorted((deviations or {}).items()) if v}}


def write(folder: Path, dut, used: dict[str, dict], deviations: dict[str, list[str]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pics-pixit.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document(dut, used, deviations), indent=1, default=str), encoding="utf-8")
    tmp.replace(path)
    return path
