"""The IDs a case may cite, audited at collection so a report never quotes an ID that does not exist or does not
mean what the step checks.

- `catalogue_ids.tsv` (generated from the team's research catalogue by scripts/catalogue_ids.py): OCTT charging-
  station cases (TC_X_nn_CS), OCPP functional requirements (XNN.FR.nn: the use case must be catalogued),
  ISO 15118-20 requirement IDs (V2G20-n, with the side they bind: SECC, EVCC or both) and -20 timers.
- `extra_ids.toml`: IDs of other standards (ISO 15118-2 V2G2-, DIN 70121, ISO 15118-3, IEC 61851-1, CHAdeMO)
  and the bench's own measured-power requirements (V2GB-…), each with its source; `[families]` admit a pattern of
  IDs with a stated source where enumerating them is not possible.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
TSV = HERE / "catalogue_ids.tsv"
EXTRA = HERE / "extra_ids.toml"

OCTT = re.compile(r"TC_[A-Z]_\d+_CS")
FR = re.compile(r"([A-Z]\d{2})\.FR\.\d+")
USECASE = re.compile(r"[A-Z]\d{2}")
V2G20 = re.compile(r"V2G20-\d+")
SECC_4 = re.compile(r"TC_SECC_(CMN|AC|DC)_VTB_[A-Za-z0-9]+_\d{3}")   # ISO 15118-4 naming scheme (Part 3)


@dataclass(frozen=True)
class KnownId:
    id: str
    kind: str
    side: str
    note: str


@lru_cache(maxsize=1)
def known() -> dict[str, KnownId]:
    out: dict[str, KnownId] = {}
    for line in TSV.read_text(encoding="utf-8").splitlines():
        if not line or line.startswith(("#", "id\t")):
            continue
        i, kind, side, note = (line.split("\t") + ["", "", ""])[:4]
        out[i] = KnownId(i, kind, side, note)
    return out


@lru_cache(maxsize=1)
def extra() -> tuple[dict[str, KnownId], list[tuple[re.Pattern, str]]]:
    data = tomllib.loads(EXTRA.read_text(encoding="utf-8"))
    ids = {k: KnownId(k, "extra", str(v.get("side", "-")), f"{v.get('source', '?')}: {v.get('text', '')}")
           for k, v in data.get("ids", {}).items()}
    fams = [(re.compile(str(v["pattern"])), str(v.get("source", name))) for name, v in data.get("families", {}).items()]
    return ids, fams


def lookup(ident: str) -> KnownId | None:
    """The catalogue entry for `ident`, or None when it is not a known ID."""
    k = known()
    if ident in k:
        return k[ident]
    m = FR.fullmatch(ident)
    if m and (m.group(1) in k):
        return KnownId(ident, "fr", "CS", f"a functional requirement of use case {m.group(1)}")
    if SECC_4.fullmatch(ident):
        return KnownId(ident, "iso15118-4", "SECC", "ISO 15118-4 SECC test case (naming scheme of Part 3)")
    ids, fams = extra()
    if ident in ids:
        return ids[ident]
    for pat, source in fams:
        if pat.fullmatch(ident):
            return KnownId(ident, "family", "-", source)
    return None


def audit(ids: tuple[str, ...], *, side: str = "SECC") -> list[str]:
    """Problems with the cited IDs of a case that judges the charger's `side` (SECC or CS)."""
    problems = []
    for i in ids:
        entry = lookup(i)
        if entry is None:
            problems.append(f"{i!r} is not in the catalogue (v2g_bench/conformance/catalogue_ids.tsv) nor in "
                            f"extra_ids.toml")
        elif entry.kind == "v2g20" and side == "SECC" and entry.side == "EVCC":
            problems.append(f"{i} binds the EV (EVCC side: {entry.note}); a case judging the charger must cite the "
                            f"SECC-side requirement")
    return problems
