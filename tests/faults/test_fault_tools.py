"""The kill-matrix machinery on a throw-away test project: real pytest processes whose tests
read RLBENCH_FAULTS, so each verdict (kill, survivor, fake kill, timeout) is exercised for real.
Each pytest process here loads no plugins (< 1 s), so the module takes seconds."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlbench.faults import Fault
from rlbench.faults.verify import REPORT_LOG_PLUGIN, kill_matrix, parse_report_log, run_pytest
from rlbench.processes import parallel, run_group

FAULT = "os.environ.get('RLBENCH_FAULTS')"

PROJECT = {
    "test_plain.py": f"""
import os
import pytest

def test_caught():
    assert {FAULT} != "caught"

def test_always_passes():
    pass

def test_dirty():
    assert False, "fails on clean code too"

@pytest.fixture
def built():
    if {FAULT} == "fixture-error":
        raise RuntimeError("construction blew up")
    return 1

def test_uses_fixture(built):
    assert built == 1

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert not ({FAULT} == "param" and n == 2)

class TestK:
    def test_m(self):
        assert {FAULT} != "in-class"
""",
    "test_imports.py": f"""
import os
if {FAULT} == "import-crash":
    raise ImportError("the fault broke an import, it did not get caught by a test")

def test_fine():
    pass
""",
}


@pytest.fixture(autouse=True)
def _lean_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    # The throw-away tests need no plugins; skipping their start-up keeps each process < 1 s.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    for name, text in PROJECT.items():
        (root / name).write_text(text)
    return root


def _fault(fault_id: str, *detectors: str) -> Fault:
    return Fault(fault_id, "seeds/x.md", "#1", "bug", "fix", ("dqn",), detectors)


def test_kill_matrix_verdicts_on_a_real_test_project(project: Path) -> None:
    faults = [
        _fault("caught", "test_plain.py::test_caught", "test_plain.py::test_always_passes"),
        _fault("in-class", "test_plain.py::TestK::test_m"),
        _fault("param", "test_plain.py::test_param"),
        _fault("survivor", "test_plain.py::test_always_passes"),
        _fault("import-crash", "test_imports.py::test_fine"),
        _fault("fixture-error", "test_plain.py::test_uses_fixture"),
        _fault("dirty", "test_plain.py::test_dirty"),
        _fault("typo", "test_plain.py::test_no_such_test"),
        _fault("no-detectors"),
    ]
    rows, clean = kill_matrix(faults, root=project, jobs=2, timeout=120)
    by_id = {r.id: r for r in rows}
    assert [r.id for r in rows] == [f.id for f in faults]

    assert by_id["caught"].killed and by_id["caught"].clean_passed and by_id["caught"].ok
    assert by_id["caught"].failed == ("test_plain.py::test_caught",)  # only the failing one
    assert by_id["in-class"].ok and by_id["param"].ok

    assert not by_id["survivor"].killed and by_id["survivor"].clean_passed
    assert "survived" in by_id["survivor"].note

    # Failing to import or to build a fixture is not catching the bug: no fake kills.
    assert not by_id["import-crash"].killed and by_id["import-crash"].clean_passed
    assert "errors" in by_id["import-crash"].note
    assert not by_id["fixture-error"].killed and "error" in by_id["fixture-error"].note

    # A detector that fails clean is killed but not ok; the clean run reports it.
    assert by_id["dirty"].killed and not by_id["dirty"].clean_passed and not by_id["dirty"].ok
    assert clean is not None and clean.outcomes["test_plain.py::test_dirty"] == "failed"

    # A bad node id fails its own row without breaking the shared clean run for the others.
    assert not by_id["typo"].ok and "no test 'test_no_such_test'" in by_id["typo"].note
    assert "test_plain.py::test_no_such_test" not in clean.outcomes
    assert not by_id["no-detectors"].killed and "no detectors" in by_id["no-detectors"].note


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status  # killed, waiting to be reaped


def test_kill_matrix_timeout_is_not_a_kill_and_kills_the_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    (tmp_path / "test_hang.py").write_text(
        "import os, subprocess, time\n"
        "def test_hang():\n"
        f"    if {FAULT} == 'hang':\n"
        "        child = subprocess.Popen(['sleep', '600'])\n"
        f"        open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "        time.sleep(600)\n"
    )
    rows, _ = kill_matrix([_fault("hang", "test_hang.py::test_hang")], root=tmp_path,
                          jobs=2, timeout=4)
    assert not rows[0].killed and "timeout" in rows[0].note
    # The detector's own child process went down with it (whole process group killed).
    pid = int(pid_file.read_text())
    for _ in range(100):  # reaping by init is asynchronous; wait up to 10 s, usually 0
        if _gone(pid):
            break
        time.sleep(0.1)
    assert _gone(pid)


def test_run_pytest_ignores_inherited_fault_env(project: Path, monkeypatch) -> None:
    monkeypatch.setenv("RLBENCH_FAULTS", "caught")
    run = run_pytest(["test_plain.py::test_caught"], project, fault=None, timeout=120)
    assert run.outcomes == {"test_plain.py::test_caught": "passed"} and run.returncode == 0


def test_parse_report_log_reads_a_real_pytest_report(tmp_path: Path) -> None:
    (tmp_path / "test_kinds.py").write_text(
        "import pytest\n"
        "@pytest.fixture\n"
        "def broken():\n"
        "    raise RuntimeError('setup')\n"
        "@pytest.fixture\n"
        "def bad_teardown():\n"
        "    yield\n"
        "    raise RuntimeError('teardown')\n"
        "def test_ok(): pass\n"
        "def test_body(): assert False\n"
        "def test_setup(broken): pass\n"
        "def test_teardown(bad_teardown): pass\n"
        "def test_body_and_teardown(bad_teardown): assert False\n"
        "def test_skip(): pytest.skip('no')\n"
        "@pytest.mark.xfail(strict=True)\n"
        "def test_xfail(): assert False\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_param(n): assert n == 1\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_param_ok(n): pass\n"
        "class TestK:\n"
        "    def test_m(self): pass\n"
    )
    log = tmp_path / "report.jsonl"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "-p", REPORT_LOG_PLUGIN, f"--report-log={log}", "test_kinds.py"],
                   cwd=tmp_path, capture_output=True, timeout=120, check=False)
    expected = {
        "test_kinds.py::test_ok": "passed",
        "test_kinds.py::test_body": "failed",
        "test_kinds.py::test_setup": "error",  # a fixture broke: not the test body
        "test_kinds.py::test_teardown": "error",
        "test_kinds.py::test_body_and_teardown": "failed",
        "test_kinds.py::test_skip": "skipped",
        "test_kinds.py::test_xfail": "skipped",
        "test_kinds.py::test_param": "failed",  # any case failed
        "test_kinds.py::test_param[1]": "passed",
        "test_kinds.py::test_param_ok": "passed",
        "test_kinds.py::TestK": "passed",
        "test_kinds.py::TestK::test_m": "passed",
        "test_kinds.py::test_no_such_test": "not run",
        "test_kinds.py::test_o": "not run",  # a prefix of a name is not that test
    }
    assert parse_report_log(log, expected) == expected
    # A line cut short (the process was killed mid-write) loses that report, not the rest.
    log.write_text(log.read_text() + '{"$report_type": "TestRep')
    assert parse_report_log(log, ["test_kinds.py::test_ok"]) == {"test_kinds.py::test_ok": "passed"}


def test_parse_report_log_missing_report_means_not_run(tmp_path: Path) -> None:
    assert parse_report_log(tmp_path / "none.jsonl", ["a.py::test_x"]) == {"a.py::test_x": "not run"}



def test_parallel_stopped_early_kills_running_children(tmp_path: Path) -> None:
    """Ctrl-C/SIGTERM in verify or impact closes `parallel`: running child process groups
    (started in their own sessions, so they would not get the signal) must die with it."""
    pids = [tmp_path / f"{i}.pid" for i in range(3)]
    calls = [lambda: "quick"] + [
        lambda f=f: run_group(["sh", "-c", f"echo $$ > {f}; exec sleep 300"], 600) for f in pids
    ]
    results = parallel(2, calls)
    assert next(results) == "quick"
    while not pids[0].exists():  # the first sleeper has started (the third is still queued)
        time.sleep(0.05)
    results.close()
    started = [int(f.read_text()) for f in pids if f.exists() and f.read_text().strip()]
    assert started and all(_gone(pid) for pid in started)
    assert not pids[2].exists()  # queued work was cancelled, never started


@pytest.mark.parametrize("action", ["list", "verify", "impact"])
def test_cli_faults_actions_have_help(action: str, capsys) -> None:
    from rlbench.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["faults", action, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: rlbench faults {action}" in capsys.readouterr().out
