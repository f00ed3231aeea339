import pytest

pytest_plugins = ["pytester"]

_RERUN_WHY: list[str] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    """Keep why a test was rerun (pytest-rerunfailures prints only its name): a flake to fix needs its
    traceback, and a teardown error of a session fixture lands on whichever test ran last."""
    if report.outcome == "rerun" and report.longrepr is not None:
        text = report.longreprtext
        _RERUN_WHY.append(f"{report.nodeid} ({report.when}):\n" + "\n".join(text.splitlines()[-40:]))


def pytest_terminal_summary(terminalreporter):
    if _RERUN_WHY:
        terminalreporter.section("why tests were rerun (last 40 lines each)")
        for text in _RERUN_WHY:
            terminalreporter.write_line(text)
