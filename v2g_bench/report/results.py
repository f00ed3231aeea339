"""A run's results read back for reporting: cases with verdicts, identity, PICS/PIXIT, traceability, figures.

Reading never raises on bad input: a missing, partial (crashed) or mixed folder gives what it has,
and every oddity becomes a line in `RunData.warnings`, shown at the top of every report.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from v2g_bench.report import runs

VERDICTS = ("passed", "failed", "inconclusive", "error", "skipped")
SUITE_LABELS = ("parentSuite", "suite", "subSuite")
FIGURES_FILE = "figures.jsonl"
PICS_PIXIT_NAMES = ("pics-pixit.json", "pics_pixit.json", "pics.json")


@dataclass
class Figure:
    """A measured figure of a case: value, unit, expanded uncertainty (k=2) and the limit it was judged by."""

    name: str
    value: float | None
    unit: str = ""
    uncertainty: float | None = None
    limit: float | None = None
    op: str = ""
    passed: bool | None = None
    source: str = ""

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        s = f"{self.value:.6g}"
        if self.uncertainty is not None:
            s += f" ± {self.uncertainty:.2g}"
        return f"{s} {self.unit}".strip()


@dataclass
class Attachment:
    name: str
    source: str          # file name inside the results folder
    type: str = ""
    size: int = 0


@dataclass
class Case:
    name: str
    full_name: str
    status: str                              # Allure status: passed/failed/broken/skipped/unknown
    message: str = ""
    trace: str = ""
    start_ms: int | None = None
    stop_ms: int | None = None
    labels: dict[str, list[str]] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)           # test-case / requirement IDs (links + covers)
    history_id: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    steps: list[tuple[str, str]] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)
    figures: list[Figure] = field(default_factory=list)
    pixit_used: dict[str, Any] = field(default_factory=dict)   # from the engine's case-steps.json
    deviations: list[str] = field(default_factory=list)

    @property
    def title_ids(self) -> list[str]:
        """The case's own ID (engine label as_id) first, then the requirement IDs it links."""
        own = self.labels.get("as_id") or []
        return list(dict.fromkeys([*own, *self.ids]))

    @property
    def verdict(self) -> str:
        if self.status == "passed":
            return "passed"
        if self.status == "failed":
            return "failed"
        if self.status == "skipped":
            return "inconclusive" if "inconclusive" in self.message.lower() else "skipped"
        return "error"                                  # broken / unknown: the bench, not the DUT

    @property
    def interrupted(self) -> bool:
        return self.message.startswith("INTERRUPTED")

    @property
    def duration_s(self) -> float | None:
        if self.start_ms is None or self.stop_ms is None:
            return None
        return max(0.0, (self.stop_ms - self.start_ms) / 1000.0)

    def label(self, name: str) -> str:
        vals = self.labels.get(name) or [""]
        return vals[0]

    @property
    def parent_suite(self) -> str:
        return self.label("parentSuite") or "(no standard)"

    @property
    def suite(self) -> str:
        return self.label("suite") or "(no block)"

    @property
    def key(self) -> str:
        """What identifies the same case across runs (Allure's historyId, else the full name)."""
        return self.history_id or self.full_name or self.name


@dataclass
class RunData:
    path: Path
    results_dir: Path
    manifest: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    cases: list[Case] = field(default_factory=list)
    pics_pixit: dict[str, Any] | None = None
    traceability: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        c = Counter(case.verdict for case in self.cases)
        return {v: c.get(v, 0) for v in VERDICTS}

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.path.name)

    @property
    def dut_key(self) -> str:
        return str((self.manifest.get("dut") or {}).get("key") or "")

    @property
    def status(self) -> str:
        return str(self.manifest.get("status") or "unknown")


def _read_json(path: Path, warnings: list[str], what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        warnings.append(f"{what} {path.name} is unreadable ({type(e).__name__}); left out")
        return None


def read_properties(path: Path) -> dict[str, str]:
    """Java .properties as Allure writes/reads them (key=value, backslash escapes)."""
    out: dict[str, str] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", "!")):
            continue
        k, v, i, esc = [], [], 0, False
        target = k
        while i < len(line):
            ch = line[i]
            if esc:
                target.append({"n": "\n", "t": "\t"}.get(ch, ch))
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == "=" and target is k:
                target = v
            else:
                target.append(ch)
            i += 1
        out["".join(k).strip()] = "".join(v).strip()
    return out


def _case_from(raw: dict) -> Case:
    labels: dict[str, list[str]] = {}
    for lab in raw.get("labels") or []:
        if isinstance(lab, dict) and lab.get("name"):
            labels.setdefault(str(lab["name"]), []).append(str(lab.get("value", "")))
    ids = [str(link.get("name")) for link in raw.get("links") or [] if isinstance(link, dict) and link.get("name")]
    sd = raw.get("statusDetails") or {}
    atts = [Attachment(str(a.get("name", "")), str(a.get("source", "")), str(a.get("type", "")))
            for a in raw.get("attachments") or [] if isinstance(a, dict)]

    def walk(steps, depth=0):
        for s in steps or []:
            if isinstance(s, dict):
                yield ("  " * depth + str(s.get("name", "")), str(s.get("status", "")))
                yield from walk(s.get("steps"), depth + 1)
    return Case(name=str(raw.get("name", "?")), full_name=str(raw.get("fullName") or raw.get("name") or "?"),
                status=str(raw.get("status") or "unknown"), message=str(sd.get("message") or ""),
                trace=str(sd.get("trace") or "")[-2000:], start_ms=raw.get("start"), stop_ms=raw.get("stop"),
                labels=labels, ids=list(dict.fromkeys(ids)), history_id=str(raw.get("historyId") or ""),
                attachments=atts, steps=list(walk(raw.get("steps"))),
                parameters={str(p.get("name")): str(p.get("value")) for p in raw.get("parameters") or []
                            if isinstance(p, dict)})


def figures_from(results_dir: Path, case: Case) -> list[Figure]:
    """Figures a case recorded (figures.jsonl) and the checks of its verification results (JSON with
    "kind" and "checks", as v2g_bench.verification writes them)."""
    out: list[Figure] = []
    for att in case.attachments:
        path = results_dir / att.source
        if att.name.endswith(FIGURES_FILE):
            try:
                lines = path.read_text().splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            for line in lines:
                try:
                    d = json.loads(line)
                    out.append(Figure(name=str(d["name"]), value=_num(d.get("value")), unit=str(d.get("unit", "")),
                                      uncertainty=_num(d.get("uncertainty")), limit=_num(d.get("limit")),
                                      op=str(d.get("op", "")), passed=d.get("passed"), source=att.name))
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        elif att.name.endswith(".json") and att.size < 2_000_000:
            try:
                d = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if not (isinstance(d, dict) and isinstance(d.get("checks"), list) and "kind" in d):
                continue
            metrics = d.get("metrics") if isinstance(d.get("metrics"), dict) else {}
            u_by_name = _uncertainties(metrics)
            for c in d["checks"]:
                if not isinstance(c, dict) or "name" not in c:
                    continue
                name = str(c["name"])
                u = u_by_name.get(name)
                if u is None and c.get("limit") is None:
                    continue            # a bare statistic without limit or uncertainty: in the evidence, not the report
                out.append(Figure(name=f"{d['kind']}: {name}", value=_num(c.get("value")), unit=str(c.get("unit", "")),
                                  uncertainty=_num(u), limit=_num(c.get("limit")), op=str(c.get("op", "")),
                                  passed=c.get("passed"), source=att.name))
    return out


def _uncertainties(metrics: dict) -> dict[str, float]:
    """Expanded uncertainties a verification result states, by check name: `<name> uncertainty` keys, and
    the round-trip efficiency's per-level `U_rte` (its checks are named "RTE at <P/1000> kW")."""
    out = {k.removesuffix(" uncertainty"): v for k, v in metrics.items()
           if k.endswith(" uncertainty") and _num(v) is not None}
    for lv in metrics.get("levels") or []:
        if isinstance(lv, dict) and _num(lv.get("U_rte")) is not None and _num(lv.get("power_level_w")) is not None:
            out[f"RTE at {float(lv['power_level_w']) / 1000:g} kW"] = float(lv["U_rte"])
    return out


def _case_steps(results_dir: Path, case: Case) -> None:
    """PIXITs used and deviations the conformance engine recorded for a case (its case-steps.json)."""
    for att in case.attachments:
        if att.name.endswith("case-steps.json") and 0 <= att.size < 2_000_000:
            try:
                d = json.loads((results_dir / att.source).read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                return
            if isinstance(d, dict):
                if isinstance(d.get("pixit"), dict):
                    case.pixit_used = d["pixit"]
                if isinstance(d.get("deviations"), list):
                    case.deviations = [str(x) for x in d["deviations"]]
            return


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def load_run(path: str | Path, *, expected_dut: str | None = None, with_figures: bool = True) -> RunData:
    """Read a run folder (or a bare Allure results folder). Never raises for bad content."""
    path = Path(path)
    results_dir = path / "allure-results" if (path / "allure-results").is_dir() else path
    data = RunData(path=path, results_dir=results_dir)
    w = data.warnings
    if not path.exists():
        w.append(f"{path} does not exist: nothing to report")
        return data
    manifest = runs.read_manifest(path)
    if manifest is None:
        w.append(f"{path.name}: no run manifest ({runs.MANIFEST}): not a v2g-bench run folder, or the run "
                 "crashed before it started; identity and dates are taken from what the results say")
        manifest = {}
    data.manifest = manifest
    status = manifest.get("status")
    if status == "running":
        w.append("this run never finished (the harness was killed or crashed): results are partial")
    elif status == "interrupted":
        w.append(f"this run was interrupted by the operator ({manifest.get('interrupted_by') or 'Ctrl-C'}): "
                 "results are partial")
    data.environment = read_properties(results_dir / "environment.properties")
    raw_results = sorted(results_dir.glob("*-result.json")) if results_dir.is_dir() else []
    if not raw_results:
        w.append(f"no test results in {results_dir}")
    sizes: dict[str, int] = {}
    by_key: dict[str, Case] = {}
    dupes = 0
    for f in raw_results:
        raw = _read_json(f, w, "result")
        if not isinstance(raw, dict):
            continue
        case = _case_from(raw)
        for a in case.attachments:
            if a.source not in sizes:
                try:
                    sizes[a.source] = (results_dir / a.source).stat().st_size
                except OSError:
                    sizes[a.source] = -1
            a.size = sizes[a.source]
        prev = by_key.get(case.key)
        if prev is not None:
            dupes += 1
            if (prev.stop_ms or 0) >= (case.stop_ms or 0):
                continue
        by_key[case.key] = case
    if dupes:
        w.append(f"{dupes} result(s) repeat a case already in this folder (kept the latest of each): "
                 "results of several runs were mixed in one folder")
    data.cases = sorted(by_key.values(), key=lambda c: (c.parent_suite, c.suite, c.name))
    missing_att = sum(1 for c in data.cases for a in c.attachments if a.size < 0)
    if missing_att:
        w.append(f"{missing_att} attachment(s) named by the results are missing from the folder")
    duts = Counter(c.label("dut") for c in data.cases if c.label("dut"))
    if len(duts) > 1:
        w.append("results of more than one DUT in this folder: " + ", ".join(f"{k} ({n})" for k, n in duts.items()))
    key = data.dut_key or (duts.most_common(1)[0][0] if duts else "")
    if expected_dut and key and key != expected_dut:
        w.append(f"these results are from DUT {key!r}, not {expected_dut!r}")
    collected = manifest.get("collected")
    if isinstance(collected, int) and collected > len(data.cases):
        w.append(f"{collected} cases were selected but only {len(data.cases)} have a result "
                 f"({collected - len(data.cases)} never ran)")
    if with_figures:
        for c in data.cases:
            c.figures = figures_from(results_dir, c)
            _case_steps(results_dir, c)
    for name in PICS_PIXIT_NAMES:
        for folder in (path, results_dir):
            if data.pics_pixit is None and (folder / name).is_file():
                pp = _read_json(folder / name, w, "PICS/PIXIT file")
                if isinstance(pp, dict):
                    data.pics_pixit = pp
    data.traceability = _read_traceability(path)
    return data


def _read_traceability(path: Path) -> list[dict[str, str]]:
    f = path / "traceability.csv"
    try:
        with open(f, newline="") as fh:
            return [dict(r) for r in csv.DictReader(fh)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
