import os
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def data_dir() -> Path:
    return DATA


# Tests of the optional extras carry a marker (pyproject.toml). With DVP_REQUIRE_EXTRAS set (CI sets it
# to "cellpose,directlfq,slurm,formats,spatial,browser"), a run in which a marked group did not pass at
# least one test fails, and any skipped test fails too, so a missing extra, package or cluster can never
# turn into a quietly green CI.
EXTRAS = ("cellpose", "directlfq", "slurm", "formats", "spatial", "browser")
_passed: dict[str, int] = dict.fromkeys(EXTRAS, 0)
_seen: dict[str, int] = dict.fromkeys(EXTRAS, 0)


def pytest_collection_modifyitems(config, items):
    for item in items:
        for extra in EXTRAS:
            if item.get_closest_marker(extra):
                _seen[extra] += 1


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("DVP_REQUIRE_EXTRAS"):
        # where every dependency is meant to be installed (CI), a skip hides a missing one: it fails
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but DVP_REQUIRE_EXTRAS asks every test to run: {reason}"
    if report.when == "call" and report.passed:
        for extra in EXTRAS:
            if item.get_closest_marker(extra):
                _passed[extra] += 1


def pytest_sessionfinish(session, exitstatus):
    required = [e for e in os.environ.get("DVP_REQUIRE_EXTRAS", "").split(",") if e]
    missing = [e for e in required if not _passed.get(e)]
    if missing:
        detail = ", ".join(f"{e} ({_passed.get(e, 0)} of {_seen.get(e, 0)} passed)" for e in missing)
        print(f"\nDVP_REQUIRE_EXTRAS: no passing test for {detail}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    counts = ", ".join(f"{e} {_passed[e]}/{_seen[e]}" for e in EXTRAS)
    terminalreporter.write_line(f"optional extras, tests passed/collected: {counts}")
