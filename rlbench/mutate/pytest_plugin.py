"""pytest plugin for the coverage pass of `rlbench mutate` (loaded with ``-p``).

Switches coverage.py's dynamic context to each test's node id for the whole test
(setup, call, teardown: fixtures build trainers too), so the data says which tests run
which lines (spawned child processes included, through the environment: see
``CONTEXT_ENV``), and records each test's duration, outcome and shared (class, module,
package-scoped) fixtures to the JSON file named by
``RLBENCH_MUTATE_TESTS``. pytest-cov's ``--cov-context=test`` does the same context
switching; this keeps the dependency list to coverage.py itself and gives node ids that
can be passed back to pytest unchanged.
"""

from __future__ import annotations

import json
import os
import time

import pytest

CONTEXT_ENV = "RLBENCH_MUTATE_CONTEXT"
"""Holds the running test's node id: the coverage rc file makes it the static context of
every child process the test spawns."""

_tests: dict[str, dict] = {}


def _coverage():
    try:
        import coverage
    except ImportError:  # pragma: no cover - the pass is always run under coverage
        return None
    return coverage.Coverage.current()


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
    path = os.environ.get("RLBENCH_MUTATE_TESTS")
    if path:
        with open(path, "w") as fh:
            json.dump(_tests, fh)
