"""The test report a lab signs: one HTML and one PDF per run (ISO/IEC 17025 clause 7.8 elements).

Title and unique report id, laboratory and bench, operator, dates, the item tested (DUT identity and
firmware), the methods (standards, versions, blocks), PICS/PIXIT, equipment with serials and
calibration due dates (past-due ones flagged), deviations (skipped/inconclusive/errored cases, PIXIT
deviations, interrupted runs), the verdict per case with its requirement IDs, measured figures with
their uncertainty, plots, and an approval block. One Jinja2 template renders both: the HTML as is,
the PDF through WeasyPrint (paged media: page x of y). Plots are linked from the run's Allure results
(relative paths), never inlined into the HTML.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from v2g_bench.errors import BenchError
from v2g_bench.report.results import VERDICTS, Case, RunData, load_run

HTML_NAME = "test-report.html"
SUMS_NAME = "SHA256SUMS"        # `sha256sum -c SHA256SUMS` in the run folder checks the evidence the report cites
PDF_NAME = "test-report.pdf"
MAX_PLOTS = 24            # more plots than this stay in the Allure report (keeps the PDF a document)
MAX_MESSAGE = 300


@dataclass
class ReportContext:
    """Everything the template shows, already worded (the template only lays it out)."""

    title: str
    report_id: str
    issued: str
    page_note: str
    laboratory: str
    bench: str
    operator: str
    run_id: str
    status: str
    started: str
    ended: str
    ended_date: str
    dut: str
    firmware: str
    dut_profile: str
    selection: str
    methods: list[dict] = field(default_factory=list)
    pics: list[tuple[str, str]] = field(default_factory=list)
    pixit_used: list[dict] = field(default_factory=list)
    instruments: list[dict] = field(default_factory=list)
    versions: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    total: int = 0
    verdict_names: tuple[str, ...] = VERDICTS
    deviations: list[dict] = field(default_factory=list)
    cases: list[dict] = field(default_factory=list)
    figures: list[dict] = field(default_factory=list)
    plots: list[dict] = field(default_factory=list)
    plots_omitted: int = 0
    warnings: list[str] = field(default_factory=list)
    evidence_digest: str = ""
    evidence_files: int = 0


def _short(s: str, n: int = MAX_MESSAGE) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _flatten(prefix: str, obj: Any, out: list[tuple[str, str]], limit: int = 300) -> None:
    if len(out) >= limit:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out, limit)
    elif isinstance(obj, (list, tuple)):
        out.append((prefix, ", ".join(str(x) for x in obj)))
    else:
        out.append((prefix, str(obj)))


def context_from(run: RunData) -> ReportContext:
    m, env = run.manifest, run.environment
    dut_m, bench_m = m.get("dut") or {}, m.get("bench") or {}
    dut = (f"{dut_m.get('vendor')} {dut_m.get('model')}, serial {dut_m.get('serial')}" if dut_m
           else env.get("dut.identity", "not recorded"))
    started, ended = str(m.get("started") or "not recorded"), str(m.get("ended") or "not recorded")
    if not m.get("started") and run.cases:
        t0 = min((c.start_ms for c in run.cases if c.start_ms), default=None)
        t1 = max((c.stop_ms for c in run.cases if c.stop_ms), default=None)
        started = f"{_iso_ms(t0)} (first result)" if t0 else started
        ended = f"{_iso_ms(t1)} (last result)" if t1 else ended
    sel = m.get("selection") or {}
    selection = "; ".join(f"{k} = {v}" for k, v in (("-k", sel.get("k")), ("-m", sel.get("m"))) if v) or "all cases"
    if sel.get("suite"):
        selection += f" of {', '.join(Path(s).name for s in sel['suite'])}"
    ctx = ReportContext(
        title=f"Test report: {dut}", report_id=run.run_id,
        issued=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        page_note="results of one run of v2g-bench",
        laboratory=str(bench_m.get("laboratory") or env.get("bench.laboratory") or ""),
        bench=(f"{bench_m.get('name')} ({bench_m.get('kind')}), profile {bench_m.get('profile')}" if bench_m
               else env.get("bench.profile", "not recorded")),
        operator=str(m.get("operator") or env.get("run.operator") or "not recorded"),
        run_id=run.run_id, status=run.status, started=started, ended=ended, ended_date=ended[:10],
        dut=dut, firmware=str(dut_m.get("firmware") or env.get("dut.firmware") or "not recorded"),
        dut_profile=str(dut_m.get("profile") or env.get("dut.profile") or "not recorded"),
        selection=selection, warnings=list(run.warnings))
    # methods: standard + version -> blocks
    blocks: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in run.cases:
        blocks[c.parent_suite][c.suite] += 1
    ctx.methods = [{"standard": std, "blocks": sorted(b), "n": sum(b.values())} for std, b in sorted(blocks.items())]
    # PICS / PIXIT: the engine's pics-pixit.json (claims, ratings, declared PIXIT, tolerances), else the
    # DUT profile's as the Allure environment recorded them; the PIXITs each case was judged by.
    doc = run.pics_pixit or {}
    if doc:
        pixit = doc.get("pixit") if isinstance(doc.get("pixit"), dict) else {}
        _flatten("", doc.get("pics", {}), ctx.pics)
        _flatten("pixit", pixit.get("declared", {}), ctx.pics)
        _flatten("tolerance", pixit.get("tolerances", {}), ctx.pics)
    else:
        ctx.pics = [(k, v) for k, v in env.items() if k.startswith(("dut.claims", "pixit.", "pics.", "tolerance."))]
    used: dict[tuple[str, str], list[str]] = defaultdict(list)
    label_of = {c.full_name: (c.title_ids[0] if c.title_ids else c.name) for c in run.cases}
    for c in run.cases:
        for k, v in c.pixit_used.items():
            used[(k, _value_text(v))].append(label_of[c.full_name])
    doc_used = ((doc.get("pixit") or {}).get("used") or {}) if isinstance(doc.get("pixit"), dict) else {}
    for k, entry in doc_used.items():
        if isinstance(entry, dict):
            for v in entry.get("values") or []:
                used[(k, _value_text(v))] += [str(n).split("::")[-1] for n in entry.get("cases") or []]
    ctx.pixit_used = [{"name": k, "value": v, "cases": sorted(set(cs))[:12]} for (k, v), cs in sorted(used.items())]
    # equipment and software
    for k, v in sorted(env.items()):
        if k.startswith("instrument."):
            overdue = "PAST DUE" in v
            ctx.instruments.append({"role": k.split(".", 1)[1], "text": v, "overdue": overdue})
            if overdue:
                ctx.warnings.append(f"the calibration of the {k.split('.', 1)[1]} instrument is past due: {v}")
        elif k.startswith("version.") or k == "python":
            ctx.versions.append((k.removeprefix("version."), v))
    if not ctx.instruments:
        ctx.instruments.append({"role": "–", "text": "no instrument identities were recorded", "overdue": False})
    # results
    ctx.counts = run.counts()
    ctx.total = len(run.cases)
    for c in run.cases:
        ctx.cases.append(_case_row(c))
        ctx.deviations += _deviations(c)
    seen = {d["text"] for d in ctx.deviations}
    for case, notes in (doc.get("deviations") or {}).items() if isinstance(doc.get("deviations"), dict) else ():
        for note in notes if isinstance(notes, list) else [notes]:
            if str(note) not in seen:
                ctx.deviations.append({"case": str(case).split("::")[-1], "text": str(note)})
                seen.add(str(note))
    if run.status == "interrupted":
        ctx.deviations.insert(0, {"case": "(run)", "text": f"the run was interrupted by the operator "
                                  f"({m.get('interrupted_by') or 'Ctrl-C'}); cases after it never ran"})
    if sel.get("k") or sel.get("m"):
        ctx.deviations.insert(0, {"case": "(run)", "text": f"only a selection of the suite ran ({selection})"})
    if int(m.get("deselected") or 0):
        ctx.deviations.insert(0, {"case": "(run)", "text": f"{m['deselected']} case(s) of the suite were deselected "
                                  "(by -k/-m, or slow cases left out without --run-slow) and did not run"})
    # figures and plots
    for c in run.cases:
        label = c.title_ids[0] if c.title_ids else c.name
        for f in c.figures:
            lim = f"{f.op} {f.limit:.6g} {f.unit}".strip() if f.limit is not None else "–"
            res = {True: "pass", False: "fail", None: "–"}[f.passed if f.passed in (True, False) else None]
            value = f.text() if f.uncertainty is not None or f.value is None else f"{f.text()} (U n/s)"
            ctx.figures.append({"case": label, "name": f.name, "value": value, "limit": lim, "result": res,
                                "result_class": {"pass": "passed", "fail": "failed"}.get(res, "")})
    plots = [(c, a) for c in sorted(run.cases, key=lambda c: c.verdict != "failed")
             for a in c.attachments if a.type == "image/png" and a.size > 0]
    for c, a in plots[:MAX_PLOTS]:
        src = (run.results_dir / a.source).resolve()
        try:
            src = src.relative_to(run.path.resolve())
        except ValueError:
            pass
        ctx.plots.append({"case": c.title_ids[0] if c.title_ids else c.name, "name": a.name, "src": str(src)})
    ctx.plots_omitted = max(0, len(plots) - MAX_PLOTS)
    return ctx


def _value_text(v: Any) -> str:
    return json.dumps(v, default=str, sort_keys=True) if isinstance(v, (dict, list)) else str(v)


def _iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def _case_row(c: Case) -> dict:
    dur = c.duration_s
    return {"name": c.name, "ids": c.title_ids, "standard": c.parent_suite, "block": c.suite, "verdict": c.verdict,
            "message": _short(c.message) if c.verdict != "passed" else "", "duration": f"{dur:.1f}" if dur is not None else "–"}


def _deviations(c: Case) -> list[dict]:
    label = c.title_ids[0] if c.title_ids else c.name
    out = [{"case": label, "text": d} for d in c.deviations]
    if c.interrupted:
        out.append({"case": label, "text": _short(c.message)})
    elif c.verdict == "skipped":
        out.append({"case": label, "text": "not run: " + _short(c.message.removeprefix("Skipped: ") or "skipped")})
    elif c.verdict == "inconclusive":
        out.append({"case": label, "text": "no verdict (inconclusive): " + _short(c.message)})
    elif c.verdict == "error":
        out.append({"case": label, "text": "no verdict (bench error): " + _short(c.message)})
    return out


def write_sums(run_dir: Path) -> tuple[str, int]:
    """SHA256SUMS over the run's results and evidence (not the reports built from them); returns the
    SHA-256 of that file, which the report prints, so a signed report binds the evidence it rests on."""
    import hashlib
    skip = {SUMS_NAME, HTML_NAME, PDF_NAME}
    lines = []
    for f in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = f.relative_to(run_dir)
        if rel.parts[0] == "html" or rel.name in skip or rel.name.startswith("compare-") or rel.suffix == ".tmp":
            continue
        h = hashlib.sha256()
        try:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            continue
        lines.append(f"{h.hexdigest()}  {rel.as_posix()}")
    text = "\n".join(lines) + "\n"
    (run_dir / SUMS_NAME).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest(), len(lines)


def render_html(ctx: ReportContext) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    env = Environment(loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
                      autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("test_report.html.j2").render(r=ctx)


def render_pdf(html: str, base: Path, out: Path) -> Path:
    try:
        import weasyprint
    except (ImportError, OSError) as e:   # OSError: the Pango libraries are missing
        raise BenchError(f"cannot render the PDF: WeasyPrint is unavailable ({e})",
                         fix="pip install weasyprint; apt-get install libpango-1.0-0 libpangoft2-1.0-0") from None
    try:
        weasyprint.HTML(string=html, base_url=str(base)).write_pdf(str(out))
    except Exception as e:  # noqa: BLE001 - a rendering failure must not lose the HTML report
        raise BenchError(f"WeasyPrint could not render {out.name}: {type(e).__name__}: {e}") from None
    return out


def build_test_report(run_dir: str | Path, *, pdf: bool = True, out_dir: Path | None = None,
                      expected_dut: str | None = None) -> list[Path]:
    """Write test-report.html (and .pdf) for a run folder; returns the files written."""
    run_dir = Path(run_dir)
    run = load_run(run_dir, expected_dut=expected_dut)
    if not run_dir.exists():
        raise BenchError(f"{run_dir} does not exist", fix="give a run folder under reports/runs, or 'latest'")
    out_dir = Path(out_dir) if out_dir else (run.path if run.path.is_dir() else run_dir)
    ctx = context_from(run)
    if run.path.is_dir():
        try:
            ctx.evidence_digest, ctx.evidence_files = write_sums(run.path)
        except OSError as e:
            ctx.warnings.append(f"could not write {SUMS_NAME}: {e}")
    html = render_html(ctx)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / HTML_NAME
    html_path.write_text(html)
    written = [html_path]
    if pdf:
        written.append(render_pdf(html, run.path, out_dir / PDF_NAME))
    return written
