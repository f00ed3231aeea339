"""The v2g-bench pytest plugin (registered through the `pytest11` entry point).

- `--bench FILE` / `--dut FILE` choose the profiles (defaults: the built-in virtual lab).
- Role fixtures (`ev`, `csms`, `dut`, `battery`, `analyzer`, `meter`, `charger`, `can`, `grid`)
  come from the bench profile; every opened role is unwound to a safe state in reverse order on
  any exit (a failing fixture, an exception in the test, Ctrl-C).
- Markers: standards/blocks (`iso15118_20`, `ocpp201`, …) and `requires("DC_BPT", …)` skip a test,
  with the reason, when the DUT does not claim the feature; `covers("TC_K_01_CS", …)` links a
  test to the test-case / requirement IDs it covers.
- Allure: results go to `<--v2g-reports>/allure-results` (v2g-bench run: its run folder; plain pytest
  writes none), with environment, executor, categories, suites (standard / block),
  links and each test's evidence folder attached.
"""
from __future__ import annotations

import atexit
import json
import signal
from pathlib import Path

import pytest
from _pytest.reports import TestReport

from v2g_bench.harness import reporting
from v2g_bench.harness.bench import Bench, hard_stop_all
from v2g_bench.errors import BenchError, Inconclusive, ProfileError
from v2g_bench.harness.evidence import Evidence
from v2g_bench.profiles import DEFAULT_BENCH, DEFAULT_DUT, REPO_ROOT, check_compatible, load_bench, load_dut

ROLE_NAMES = ("ev", "csms", "dut", "battery", "analyzer", "meter", "charger", "can", "grid", "ev_io", "chademo", "plc")

# Standard/block markers and the DUT claim each implies.
STANDARD_MARKERS = {
    "iso15118_20": ("ISO15118-20", "ISO 15118-20 (EVCC vs the charger's SECC)"),
    "iso15118_2": ("ISO15118-2", "ISO 15118-2"),
    "din70121": ("DIN70121", "DIN SPEC 70121"),
    "ocpp201": ("OCPP2.0.1", "OCPP 2.0.1 (CSMS vs the charging station)"),
    "ocpp21": ("OCPP2.1", "OCPP 2.1 incl. block Q (V2X)"),
}
PLAIN_MARKERS = {
    "power": "power-schedule compliance (measured power vs the commanded setpoints)",
    "efficiency": "round-trip efficiency",
    "safety": "limits, emergency stop, faults",
    "security": "TLS, certificates, OCPP security profiles",
    "timing": "protocol timers and performance times",
    "lab_only": "needs the built-in virtual lab (fault injection); skipped on a real bench",
    "slow": "waits out long normative timers; deselected unless --run-slow",
    "scale": "aggregator-scale runs (1,000+ stations, 10,000+ EVs); deselected unless --run-scale",
    "soak": "long abuse of a lab service (make soak, minutes); deselected unless --run-soak",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("v2g-bench")
    g.addoption("--bench", default=None, help=f"bench profile (TOML); default {DEFAULT_BENCH.relative_to(REPO_ROOT)}")
    g.addoption("--dut", default=None, help=f"DUT profile (TOML); default {DEFAULT_DUT.relative_to(REPO_ROOT)}")
    g.addoption("--known-nonconformances", default=None, metavar="TOML",
                help="rows known to fail against this DUT (e.g. the simulated charger's stack defects, kept visible): "
                     "expected to fail with a Nonconformance (strict), so a CI run notices both a new failure and a "
                     "fixed defect")
    g.addoption("--run-slow", action="store_true", default=False,
                help="also run the cases marked slow (they wait out long normative timers, e.g. 60 s sequence timeouts)")
    g.addoption("--real-time", action="store_true", default=False,
                help="scenario cases (tests/conformance/scenarios) play at time scale 1 through the bench's roles "
                     "(CSMS, ISO 15118 EV, battery emulator, power analyzer): the real-bench path, see docs/scenarios.md")
    g.addoption("--run-scale", action="store_true", default=False,
                help="also run the cases marked scale (1,000+ simulated stations, 10,000+ EV plans: minutes)")
    g.addoption("--run-soak", action="store_true", default=False,
                help="also run the cases marked soak (long abuse of a lab service; make soak)")
    g.addoption("--benches", default=None,
                help="several bench profiles, comma-separated: xdist worker i runs on bench i mod N (one lab, N "
                     "benches, one suite split across them, one merged report); overrides --bench")
    g.addoption("--v2g-reports", default=None,
                help="folder for evidence and Allure results (v2g-bench run: its run folder); without it, evidence "
                     "goes to reports/self-test and no Allure results are written unless --alluredir is given")
    parser.addini("v2g_link_pattern", "URL pattern for test-case/requirement ID links ({} = the ID)",
                  default=reporting.DEFAULT_LINK_PATTERN)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for name, (_, desc) in STANDARD_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {desc}; skipped unless the DUT claims it")
    for name, desc in PLAIN_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {desc}")
    config.addinivalue_line("markers", "requires(*features): skip unless the DUT profile claims every feature")
    config.addinivalue_line("markers", "covers(*ids): OCTT test-case / ISO 15118 requirement IDs this test covers")
    config.addinivalue_line("markers", "v2g_case(id): a row of the conformance engine (v2g_bench.conformance)")
    config.addinivalue_line("markers", "dut_actions(*names): DUT actions (plug in, power cycle, ...) the case needs")
    config.addinivalue_line("markers", "suite_selftest: proves a case can fail against a defect of the simulated "
                                       "charger; left out of `v2g-bench run`'s default suite (make test runs it)")
    explicit = config.getoption("--v2g-reports")
    reports = Path(explicit) if explicit else REPO_ROOT / "reports" / "self-test"
    config._v2g_reports = reports
    # Allure results only for a chosen reports folder (v2g-bench run's run folder): the harness' own
    # tests must never write into a DUT's results (allure-pytest reads this option later).
    if explicit and getattr(config.option, "allure_report_dir", None) is None and hasattr(config.option, "allure_report_dir"):
        config.option.allure_report_dir = str(reports / "allure-results")
    # Profiles are loaded lazily (pure unit tests need none) but a broken one is a usage error up front.
    config._v2g_profiles = None
    if config.getoption("--bench") or config.getoption("--dut"):
        _profiles(config)


def _profiles(config: pytest.Config):
    if config._v2g_profiles is None:
        try:
            bench = load_bench(_bench_path(config))
            dut = load_dut(config.getoption("--dut") or DEFAULT_DUT)
            check_compatible(bench, dut)      # before anything is energized
        except ProfileError as e:
            raise pytest.UsageError(str(e)) from None
        config._v2g_profiles = (bench, dut)
    return config._v2g_profiles


def _bench_path(config: pytest.Config):
    """--benches: this xdist worker's own bench (gw<i> -> bench i mod N; the controller and a plain run: the
    first), so N workers drive N benches at once and their results land in one Allure report."""
    many = [b.strip() for b in (config.getoption("--benches") or "").split(",") if b.strip()]
    if not many:
        return config.getoption("--bench") or DEFAULT_BENCH
    wid = reporting.worker_id(config)
    return many[int(wid[2:]) % len(many) if wid.startswith("gw") else 0]


# ------------------------------------------------------------------------------ skip logic ---
def _claims_skip_reason(item: pytest.Item, dut) -> str | None:
    missing = []
    for name, (feature, _) in STANDARD_MARKERS.items():
        if item.get_closest_marker(name) and not dut.claims(feature):
            missing.append(feature)
    for m in item.iter_markers("requires"):
        missing += [f for f in m.args if not dut.claims(f)]
    if missing:
        return (f"the DUT does not claim {', '.join(dict.fromkeys(missing))} "
                f"({dut.path.name}: [claims]); nothing was checked")
    return None


def _mark_known_nonconformances(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`--known-nonconformances FILE`: `[rows] "<row id>" = "why"`; each listed row must fail with a
    Nonconformance (xfail strict, raises=Nonconformance): a bench error still errors, a pass (the defect fixed)
    fails the run until the list is updated. A listed row that no longer exists is a usage error."""
    path = config.getoption("--known-nonconformances")
    if not path:
        return
    import tomllib
    from v2g_bench.errors import Nonconformance
    try:
        rows = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("rows", {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise pytest.UsageError(f"--known-nonconformances {path}: {e}") from None
    if not isinstance(rows, dict) or not all(isinstance(v, str) for v in rows.values()):
        raise pytest.UsageError(f"--known-nonconformances {path}: [rows] maps a row id to the reason (a string)")
    seen = set()
    for it in items:
        callspec = getattr(it, "callspec", None)
        rid = callspec.id if callspec is not None else None
        if rid in rows:
            seen.add(rid)
            it.add_marker(pytest.mark.xfail(strict=True, raises=Nonconformance,
                                            reason=f"known nonconformance: {rows[rid]}"))
    collected_all = not config.getoption("keyword") and not config.getoption("markexpr") and \
        any(str(a).rstrip("/").endswith("tests") or str(a).rstrip("/").endswith("tests/conformance")
            for a in (config.args or []))
    stale = sorted(set(rows) - seen)
    if stale and collected_all:
        raise pytest.UsageError(f"--known-nonconformances {path}: rows that no longer exist: {', '.join(stale)}")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    _mark_known_nonconformances(config, items)
    if not config.getoption("--run-slow"):
        # slow cases are left out of the default run (deselected, counted), run on request with --run-slow
        slow = [it for it in items if it.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [it for it in items if not it.get_closest_marker("slow")]
            config._v2g_slow_deselected = len(slow)
    if not config.getoption("--run-scale"):
        scale = [it for it in items if it.get_closest_marker("scale")]
        if scale:
            config.hook.pytest_deselected(items=scale)
            items[:] = [it for it in items if not it.get_closest_marker("scale")]
    if not config.getoption("--run-soak"):
        soak = [it for it in items if it.get_closest_marker("soak")]
        if soak:
            config.hook.pytest_deselected(items=soak)
            items[:] = [it for it in items if not it.get_closest_marker("soak")]
    needs_dut = [it for it in items
                 if any(it.get_closest_marker(m) for m in (*STANDARD_MARKERS, "requires", "lab_only"))]
    if not needs_dut:
        return
    bench, dut = _profiles(config)
    for it in needs_dut:
        reason = _claims_skip_reason(it, dut)
        if reason is None and it.get_closest_marker("lab_only") and not bench.uses_builtin_lab:
            reason = f"needs the built-in virtual lab; bench {bench.name!r} is a real bench"
        if reason:
            it.add_marker(pytest.mark.skip(reason=reason))


# -------------------------------------------------------------------------------- fixtures ---
@pytest.fixture(scope="session")
def bench_profile(pytestconfig):
    return _profiles(pytestconfig)[0]


@pytest.fixture(scope="session")
def dut_profile(pytestconfig):
    return _profiles(pytestconfig)[1]


@pytest.fixture(scope="session")
def virtual_lab(pytestconfig, bench_profile):
    """The built-in virtual lab process (one per xdist worker), or None on a real bench."""
    if not bench_profile.uses_builtin_lab:
        yield None
        return
    from v2g_bench.harness.labproc import start_lab
    from v2g_bench.harness.labsetup import lab_overrides
    opts = dict(bench_profile.lab or {})
    workdir = Path(pytestconfig._v2g_reports) / "lab" / reporting.worker_id(pytestconfig)
    with lab_overrides(opts) as overrides:
        iso15118_unavailable = overrides.pop("_iso15118_unavailable", None)
        handle = start_lab(workdir=workdir, config=opts.get("config"), seed=int(opts.get("seed", 1)),
                           time_scale=float(opts.get("time_scale", 1.0)), overrides=overrides,
                           timeout_s=float(opts.get("start_timeout_s", 60)))
        handle.iso15118_unavailable = iso15118_unavailable
        try:
            yield handle
        finally:
            handle.stop()


@pytest.fixture
def lab(virtual_lab):
    """The virtual lab's handle (control port for fault injection); skips on a real bench."""
    if virtual_lab is None:
        pytest.skip("needs the built-in virtual lab (fault injection); this is a real bench")
    return virtual_lab


@pytest.fixture
def evidence(request) -> Evidence:
    return request.node._v2g_evidence


@pytest.fixture
def bench(request, bench_profile, dut_profile, virtual_lab):
    """The opened bench for this test; every role it opened is unwound to a safe state at the end."""
    b = Bench(bench_profile, dut_profile, lab=virtual_lab, evidence=getattr(request.node, "_v2g_evidence", None))
    request.node._v2g_bench = b
    try:
        yield b
    finally:
        idents = request.config.__dict__.setdefault("_v2g_identities", {})
        for name, drv in b.opened:
            try:
                idents.setdefault(name, f"{drv.identify()} [{b.profile.roles[name].driver}]")
            except Exception as e:  # noqa: BLE001 - identity is informative; the unwind below matters
                idents.setdefault(name, f"unknown ({type(e).__name__}: {e})")
        ev = getattr(request.node, "_v2g_evidence", None)
        try:
            b.close()
        finally:
            if ev is not None and b.unwind_log:
                ev.attach_json("teardown.json", [r.__dict__ for r in b.unwind_log])


def _role_fixture(role: str):
    def fixture(bench):
        if role == "ev" and bench.lab is not None and getattr(bench.lab, "iso15118_unavailable", None):
            pytest.skip(f"needs the virtual lab's ISO 15118 wire: {bench.lab.iso15118_unavailable}")
        return bench.role(role)
    fixture.__name__ = role
    fixture.__doc__ = f"The bench's {role!r} role, opened from the bench profile and made safe after the test."
    return pytest.fixture(name=role)(fixture)


for _r in ROLE_NAMES:
    globals()[f"_role_{_r}"] = _role_fixture(_r)


# ------------------------------------------------------------------- evidence + reporting ---
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    ev = Evidence(Path(item.config._v2g_reports) / "evidence", item.nodeid)
    item._v2g_evidence = ev
    Evidence._set_current(ev)
    _apply_links(item)
    yield
    # Remember where the lab log stood, to attach this test's slice of it.
    lab_handle = item.funcargs.get("virtual_lab") if hasattr(item, "funcargs") else None
    if lab_handle is not None:
        try:
            item._v2g_lab_log = (lab_handle.log_path, lab_handle.log_path.stat().st_size)
        except OSError:
            pass


def _apply_links(item: pytest.Item) -> None:
    try:
        import allure
    except ImportError:  # pragma: no cover
        return
    pattern = item.config.getini("v2g_link_pattern")
    ids = [i for m in item.iter_markers("covers") for i in m.args]
    if ids:
        # user_properties travel with the report (also across xdist) into JUnit and the traceability matrix
        item.user_properties.append(("covers", ",".join(ids)))
    for ident in ids:
        allure.dynamic.link(pattern.format(ident), link_type="tms", name=ident)
        allure.dynamic.tag(ident)
    for name in STANDARD_MARKERS:
        if item.get_closest_marker(name):
            allure.dynamic.tag(name)
    # suites: _apply_suite_labels at teardown, once the engine has named its own (standard + version, block)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem):
    _apply_suite_labels(item)      # before allure-pytest adds its module-based defaults
    yield
    _attach_evidence(item)


def _allure_result(item: pytest.Item):
    """The running test's Allure result (allure-pytest's listener), or None without Allure."""
    listener = item.config.pluginmanager.get_plugin("allure_listener")
    if listener is None:
        return None
    try:
        return listener.allure_logger.get_test(listener._cache.get(item.nodeid))
    except Exception:  # noqa: BLE001 - allure-pytest internals; labels are cosmetic, never fatal
        return None


def _apply_suite_labels(item: pytest.Item) -> None:
    """One parentSuite (standard + version) and one suite (block) per case; the engine's labels win."""
    result = _allure_result(item)
    if result is None:
        return
    from allure_commons.model2 import Label
    existing: dict[str, list[str]] = {}
    for lab in result.labels:
        existing.setdefault(lab.name, []).append(lab.value)
    standards = [reporting.STANDARD_TITLES[m.name] for m in item.iter_markers() if m.name in reporting.STANDARD_TITLES]
    module = getattr(getattr(item, "module", None), "__file__", None) or item.nodeid.split("::")[0]
    for name, value in reporting.suite_labels(existing, standards, module):
        result.labels.append(Label(name=name, value=value))
    profiles = item.config._v2g_profiles
    if profiles is not None and not existing.get("dut"):
        result.labels.append(Label(name="dut", value=reporting.dut_key(profiles[1])))
    if profiles is not None and item.config.getoption("--benches") and not existing.get("bench"):
        result.labels.append(Label(name="bench", value=profiles[0].name))   # which bench ran it, in the merged report


def _attach_evidence(item: pytest.Item) -> None:
    ev: Evidence | None = getattr(item, "_v2g_evidence", None)
    if ev is None:
        return
    lab_log = getattr(item, "_v2g_lab_log", None)
    if lab_log is not None:
        path, start = lab_log
        try:
            with open(path, "rb") as f:
                f.seek(start)
                chunk = f.read(2_000_000)
            if chunk:
                ev.path("lab.log").write_bytes(chunk)
        except OSError:
            pass
    try:
        reporting.attach_evidence(ev, Path(item.config._v2g_reports))
    finally:
        Evidence._set_current(None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After the test body: every emulator that validates the DUT's messages (the CSMS checks each
    OCPP frame against the schemas) raises the violations it saw and the test did not consume."""
    result = yield
    bench = getattr(item, "_v2g_bench", None)
    for _, drv in (bench.opened if bench is not None else ()):
        check = getattr(drv, "assert_conformant", None)
        if callable(check):
            check()
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """`Inconclusive` is neither pass nor fail: report it as a skip whose reason says INCONCLUSIVE.

    The verdict class is decided here from the exception's type (not from its text) and travels with the report
    as the user property `v2g_verdict`: failed only for Nonconformance/AssertionError in the test's call."""
    if call.excinfo is not None and call.when == "call":
        if call.excinfo.errisinstance(Inconclusive):
            verdict = "inconclusive"
        elif call.excinfo.errisinstance((BenchError, KeyboardInterrupt)):
            verdict = "error"
        elif call.excinfo.errisinstance(AssertionError) or call.excinfo.errisinstance(pytest.fail.Exception):
            verdict = "failed"
        elif call.excinfo.errisinstance(pytest.skip.Exception):
            verdict = None
        else:
            verdict = "error"
        if verdict and not any(k == "v2g_verdict" for k, _ in item.user_properties):
            item.user_properties.append(("v2g_verdict", verdict))
    if call.excinfo is not None and call.excinfo.errisinstance(Inconclusive):
        rep = TestReport.from_item_and_call(item, call)
        rep.outcome = "skipped"
        path, lineno, _ = item.location
        rep.longrepr = (str(path), (lineno or 0) + 1, f"INCONCLUSIVE: {call.excinfo.value}")
        rep.v2g_verdict = "inconclusive"
        return rep
    return None


def pytest_runtest_logreport(report) -> None:
    from v2g_bench.harness.runner import classify
    props = dict(report.user_properties or ())
    if report.when == "call" and "v2g_pixit" in props:        # the parameters an engine case was judged by
        _PIXIT_USED[report.nodeid] = json.loads(props["v2g_pixit"])
    if report.when == "call" and "v2g_deviations" in props:
        _DEVIATIONS[report.nodeid] = json.loads(props["v2g_deviations"])
    covers = dict(report.user_properties).get("covers") if report.user_properties else None
    if not covers:
        return
    verdict = classify(report)
    if verdict is None:
        return
    trace = _TRACE.setdefault(report.nodeid, {"ids": covers.split(","), "verdict": verdict})
    rank = {"passed": 0, "skipped": 1, "inconclusive": 2, "failed": 3, "error": 4}
    if rank[verdict] > rank[trace["verdict"]]:
        trace["verdict"] = verdict


_TRACE: dict[str, dict] = {}
_PIXIT_USED: dict[str, dict] = {}
_DEVIATIONS: dict[str, list] = {}


def pytest_sessionfinish(session: pytest.Session, exitstatus) -> None:
    config = session.config
    if reporting.worker_id(config) == "main":
        reporting.write_traceability(Path(config._v2g_reports),
                                     [(i, n, t["verdict"]) for n, t in _TRACE.items() for i in t["ids"]])
        if _TRACE and config._v2g_profiles is not None:            # a DUT was judged: its PICS/PIXIT document
            from v2g_bench.conformance import pics
            pics.write(Path(config._v2g_reports), config._v2g_profiles[1], _PIXIT_USED, _DEVIATIONS)
        if _INTERRUPT:
            _junit_property(config, "run.status", f"interrupted by the operator ({_INTERRUPT['by']}) "
                                                  f"during {_INTERRUPT['nodeid']}")
    if not getattr(config.option, "allure_report_dir", None):
        return                                  # no Allure results asked for (the harness' own tests)
    results = Path(config.option.allure_report_dir)
    reporting.write_identities(results, reporting.worker_id(config), config.__dict__.get("_v2g_identities", {}))
    if reporting.worker_id(config) == "main":   # the xdist controller (or a plain run) writes the environment
        profiles = config._v2g_profiles
        if profiles is None:
            try:
                profiles = _profiles(config)
            except pytest.UsageError:
                profiles = (None, None)
        from v2g_bench.report.runs import read_manifest
        reporting.write_environment(results, *profiles, manifest=read_manifest(Path(config._v2g_reports)))


def _junit_property(config: pytest.Config, name: str, value: str) -> None:
    from _pytest.junitxml import xml_key
    xml = config.stash.get(xml_key, None)
    if xml is not None:
        xml.add_global_property(name, value)


# ---------------------------------------------------------------------- interrupted runs ---
_INTERRUPT: dict[str, str] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem):
    """Ctrl-C / SIGTERM mid-test: the test is recorded as an error "interrupted by the operator" with its
    evidence (pytest itself would drop it), then the interrupt goes on and stops the run."""
    try:
        return (yield)
    except KeyboardInterrupt as e:
        _record_interrupt(item, e)
        raise


def _record_interrupt(item: pytest.Item, exc: KeyboardInterrupt) -> None:
    by = "SIGTERM" if "signal 15" in str(exc) else "SIGINT, Ctrl-C"
    _INTERRUPT.update(by=by, nodeid=item.nodeid)
    msg = (f"INTERRUPTED by the operator ({by}) while this test ran: no verdict on the DUT; "
           "every opened role is unwound to its safe state")
    result = _allure_result(item)
    if result is not None:
        from allure_commons.model2 import Status, StatusDetails
        result.status = Status.BROKEN
        result.statusDetails = StatusDetails(message=msg)
    try:
        _apply_suite_labels(item)
        _attach_evidence(item)
    except Exception:  # noqa: BLE001 - recording must not mask the interrupt
        pass
    start = getattr(getattr(item, "_v2g_evidence", None), "started", None)
    import time as _time
    duration = _time.monotonic() - start if start else 0.0
    for when, outcome, longrepr in (("setup", "failed", msg), ("teardown", "passed", None)):
        rep = TestReport(item.nodeid, item.location, {}, outcome, longrepr, when,
                         user_properties=list(item.user_properties), duration=duration if when == "setup" else 0.0)
        rep.v2g_interrupted = True
        item.ihook.pytest_runtest_logreport(report=rep)


# ------------------------------------------------------------------------- Ctrl-C / SIGTERM ---
def _emergency(signum, frame):  # pragma: no cover - exercised by a subprocess test
    hard_stop_all()
    raise KeyboardInterrupt(f"signal {signum}: every role was unwound to its safe state")


def pytest_sessionstart(session: pytest.Session) -> None:
    # SIGTERM (CI cancel, xdist shutdown) gets the same treatment as Ctrl-C: unwind, then stop.
    try:
        signal.signal(signal.SIGTERM, _emergency)
    except ValueError:  # not in the main thread
        pass
    atexit.register(hard_stop_all)
