"""pytest plugin of `rlbench mutate` (loaded with ``-p``): per-test coverage contexts in
the coverage pass, per-test deadlines in the mutant runs.

Switches coverage.py's dynamic context to each test's node id for the whole test
(setup, call, teardown: fixtures build trainers too), so the data says which tests run
which lines (spawned child processes included, through the environment: see
``CONTEXT_ENV``), and records each test's duration, outcome and shared (class, module,
package-scoped) fixtures to the JSON file named by
``RLBENCH_MUTATE_TESTS``. pytest-cov's ``--cov-context=test`` does the same context
switching; this keeps the dependency list to coverage.py itself and gives node ids that
can be passed back to pytest unchanged.

In a mutant's run, ``--mutate-deadlines FILE`` (JSON: node id -> seconds) gives each test
a pytest-timeout limit of its own, in place of the test's hang guard: a mutant that hangs
its first test is stopped after that test's few seconds, not after the whole selection's.
The run's overall deadline (the fork server's) stays as the backstop.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest

CONTEXT_ENV = "RLBENCH_MUTATE_CONTEXT"
"""Holds the running test's node id: the coverage rc file makes it the static context of
every child process the test spawns."""

TESTS_ENV = "RLBENCH_MUTATE_TESTS"
"""Names the JSON file the coverage pass's pytest writes each test's record to."""

_tests: dict[str, dict] = {}


def _coverage():
    try:
        import coverage
    except ImportError:  # pragma: no cover - the pass is always run under coverage
        return None
    return coverage.Coverage.current()


TIMEOUT_LINE = re.compile(r"^E\s+Failed: Timeout \(>[0-9.]+s\) from pytest-timeout", re.M)
"""pytest-timeout's failure line in a failed test's (or fixture's) traceback: the test ran
past its limit, the mutant hung it. The short summary line cannot be relied on: it is cut
to the terminal width, and for a fixture's error it has no message at all."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--mutate-deadlines", metavar="FILE", default=None,
                     help="rlbench mutate: JSON {node id: seconds}, each test's time limit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    path = config.getoption("--mutate-deadlines")
    if not path or not config.pluginmanager.hasplugin("timeout"):
        return  # without pytest-timeout only the run's overall deadline applies
    with open(path) as fh:
        deadlines = json.load(fh)
    for item in items:
        if item.nodeid in deadlines:
            # Prepended: pytest-timeout reads the closest mark, so this one wins.
            item.add_marker(pytest.mark.timeout(deadlines[item.nodeid]), append=False)


_SCOPE_NODES = {"class": pytest.Class, "module": pytest.Module, "package": pytest.Package}


def shared_fixtures(item: pytest.Item) -> list[str]:
    """Keys of the class/module/package-scoped fixtures `item` uses, one per instance
    ("<owning node id>::<fixture>"). Such a fixture is built in the first test that needs
    it, so coverage credits its lines to that test alone, while later tests check what it
    built; the selection gives a mutant every test of the group."""
    info = getattr(item, "_fixtureinfo", None)
    keys = []
    for name, defs in (info.name2fixturedefs.items() if info is not None else ()):
        scope = defs[-1].scope if defs else "function"
        if scope in _SCOPE_NODES:
            owner = item.getparent(_SCOPE_NODES[scope])
            keys.append(f"{owner.nodeid if owner is not None else ''}::{name}")
    return sorted(keys)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    cov = _coverage()
    if cov is not None:
        cov.switch_context(item.nodeid)
    os.environ[CONTEXT_ENV] = item.nodeid
    start = time.perf_counter()
    try:
        yield
    finally:
        os.environ.pop(CONTEXT_ENV, None)
    entry = _tests.setdefault(item.nodeid, {"outcome": "passed"})
    entry["seconds"] = time.perf_counter() - start
    entry["shared"] = shared_fixtures(item)
    if cov is not None:
        cov.switch_context("")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _tests.setdefault(report.nodeid, {"outcome": "passed"})
    if report.failed:
        entry["outcome"] = "failed"
    elif report.skipped and entry["outcome"] == "passed":
        entry["outcome"] = "skipped"


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(TESTS_ENV)
    if path:
        with open(path, "w") as fh:
            json.dump(_tests, fh)
