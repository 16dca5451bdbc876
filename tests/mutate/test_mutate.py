"""`rlbench mutate`: operators rewrite what they claim, keys are stable, the allow-list and
report maths hold, and an end-to-end run on a tiny project kills one mutant, keeps one
survivor and never touches the project it mutates."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("libcst")
pytest.importorskip("coverage")
from hypothesis import given, settings
from hypothesis import strategies as st

from rlbench.mutate import allowlist
from rlbench.mutate.engine import Settings, changed_lines, run
from rlbench.mutate.generate import generate_mutants
from rlbench.mutate.operators import OPERATORS
from rlbench.mutate.report import Report, Result, matrix, score, write_atomic
from rlbench.mutate.runner import Worker, workspace_env


def rewrites(op: str, code: str) -> set[str]:
    """The replacement texts `op` makes in `code` ("original -> replacement")."""
    return {f"{m.original} -> {m.replacement}"
            for m in generate_mutants("m.py", code, [OPERATORS[op]])}


CASES = [
    ("discount-dropped", "def f(r, v, gamma):\n    return r + gamma * v\n", "gamma * v -> v"),
    ("discount-twice", "def f(r, v, gamma):\n    return r + gamma * v\n",
     "gamma * v -> (gamma * gamma) * v"),
    ("done-inverted", "def f(d, v):\n    return (1.0 - d.terminated) * v\n",
     "(1.0 - d.terminated) -> (d.terminated)"),
    ("done-inverted", "def f(t, v):\n    return torch.where(t.terminated, 0.0, v)\n",
     "torch.where(t.terminated, 0.0, v) -> torch.where(t.terminated, v, 0.0)"),
    ("done-ignored", "def f(t, v):\n    return torch.where(t.terminated[:, None], 0.0, v)\n",
     "torch.where(t.terminated[:, None], 0.0, v) -> v"),
    ("truncation-as-terminal", "def f(buf, o, terminated, truncated):\n"
     "    buf.add(o, terminated, truncated)\n", "terminated -> (terminated | truncated)"),
    ("truncation-ignored", "def f(terminated, truncated):\n    return terminated or truncated\n",
     "terminated or truncated -> terminated"),
    ("bootstrap-online", "def f(self, x):\n    return self.target(x) + self.online(x)\n",
     "self.target -> self.online"),
    ("bootstrap-online", "def f(m, x):\n    return m.target_critic(x) + m.critic(x)\n",
     "m.target_critic -> m.critic"),
    ("polyak-swapped", "def f(t, o, tau):\n    return (1.0 - tau) * t + tau * o\n",
     "(1.0 - tau) -> (tau)"),
    ("max-min", "def f(q):\n    return q.max(1).values\n", "q.max(1) -> q.min(1)"),
    ("argmax-argmin", "def f(q):\n    return q.argmax(1)\n", "q.argmax(1) -> q.argmin(1)"),
    ("obs-next-obs", "def f(net, b):\n    return net(b.next_obs) - net(b.obs)\n",
     "b.next_obs -> b.obs"),
    ("sign-flip", "def td_loss(q, target):\n    return ((q - target) ** 2).mean()\n",
     "(q - target) -> (q + target)"),
    ("off-by-one", "def f(self, n):\n    self.pos = (self.pos + n) % self.capacity\n",
     "(self.pos + n) % self.capacity -> ((self.pos + n) + 1) % self.capacity"),
    ("off-by-one", "def f(step):\n    return step - 1\n", "step - 1 -> step"),
    ("off-by-one", "def f(n, to):\n    return (n + to - 1) // to * to\n",
     "(n + to - 1) -> (n + to)"),
    ("rng-key-reuse", "def f(key):\n    a, b = jax.random.split(key)\n    return a, b\n",
     "a, b = jax.random.split(key) -> a, b = (key, key)"),
    ("rng-key-reuse", "def f(key, t):\n    return jax.random.fold_in(key, t)\n",
     "jax.random.fold_in(key, t) -> key"),
    ("seed-reuse", "def f(seed, i):\n    return np.random.default_rng(seed + i)\n",
     "np.random.default_rng(seed + i) -> np.random.default_rng(seed)"),
    ("statement-dropped", "def f(opt, loss):\n    loss.backward()\n    opt.step()\n",
     "opt.step() -> pass"),
    ("squash-mismatch", "def f(u):\n    return jnp.tanh(u)\n", "jnp.tanh(u) -> u"),
    ("comparison", "def f(step, n):\n    return step >= n\n", ">= n -> > n"),
    ("constant", "def f(x):\n    return 0.5 * x\n", "0.5 -> 1.5"),
]


@pytest.mark.parametrize("op, code, expected", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_operator_rewrites_the_site_it_names(op: str, code: str, expected: str) -> None:
    assert expected in rewrites(op, code)


def test_operators_leave_what_they_must_not_touch_alone() -> None:
    # `target` that is a TD target value, not a network: no online counterpart in scope
    assert not rewrites("bootstrap-online", "def f(r, v):\n    target = r + v\n    return target\n")
    # target_key -> key is a reused RNG key, not an online network: rng-key-reuse's bug
    assert not rewrites("bootstrap-online",
                        "def f(key, target_key, net):\n    return net(target_key) + net(key)\n")
    # progress bars "update" too; dropping them changes no learning
    assert not rewrites("statement-dropped", "def f(bar):\n    bar.update(3)\n")
    # default arguments and module constants run at import, where no test selects them
    assert not rewrites("constant", "X = 3\ndef f(x, k=2):\n    return x\n")
    # shapes and axes: reshape(-1) -> reshape(-2) is the same call to numpy
    assert not rewrites("constant", "def f(x, n):\n    return x.reshape(n, -1).sum(axis=1)\n")
    # docstrings and strings are not code
    assert not rewrites("comparison", 'def f():\n    """a < b"""\n    return "a < b"\n')
    # `terminated or truncated` already ends on both
    assert not rewrites("truncation-as-terminal",
                        "def f(terminated, truncated):\n    return terminated or truncated\n")
    # `# pragma: no mutate` opts a line out
    assert not rewrites("comparison", "def f(a, b):\n    return a < b  # pragma: no mutate\n")
    # the fault catalogue's injected bugs (marked `# FAULT`) are the bugs themselves
    assert not rewrites("comparison", "def f(a, b):\n    # FAULT x: wrong\n    return a < b\n")
    assert rewrites("comparison", "def f(a, b):\n    c = a < b\n    # FAULT x\n    g()\n")
    # error messages are not behaviour a test should pin down
    assert not rewrites("obs-next-obs", "def f(obs, next_obs):\n"
                        "    raise ValueError(f'{obs.shape} {next_obs.shape}')\n")


def test_every_operator_is_named_and_documented() -> None:
    for name, op in OPERATORS.items():
        assert op.name == name and op.doc and len(op.doc.splitlines()) == 1


CMP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}


@given(a=st.integers(-5, 5), b=st.integers(-5, 5), op=st.sampled_from(sorted(CMP)))
def test_comparison_mutant_computes_the_swapped_operator(a: int, b: int, op: str) -> None:
    (m,) = generate_mutants("m.py", f"def f(a, b):\n    return a {op} b\n",
                            [OPERATORS["comparison"]])
    scope: dict = {}
    exec(compile(m.source, "m.py", "exec"), scope)
    assert scope["f"](a, b) == eval(f"a {CMP[op]} b")


@settings(max_examples=15)
@given(k=st.integers(0, 10**6))
def test_every_mutant_is_one_compiling_single_site_change(k: int) -> None:
    code = (f"def f(self, gamma, tau, step):\n    if step % {k + 1} == 0:\n"
            f"        self.t = (1.0 - tau) * self.t + tau * gamma * {k}\n    return step + 1\n")
    for m in generate_mutants("m.py", code):
        compile(m.source, "m.py", "exec")
        assert m.source != code
        assert m.diff.count("\n@@") + m.diff.startswith("@@") <= 1  # one hunk


def test_stable_key_ignores_line_moves_and_names_the_change() -> None:
    code = "def f(q):\n    return q.argmax(1)\n"
    (a,) = generate_mutants("m.py", code, [OPERATORS["argmax-argmin"]])
    (b,) = generate_mutants("m.py", "import os\n\n\n" + code, [OPERATORS["argmax-argmin"]])
    (c,) = generate_mutants("m.py", code.replace("def f", "def g"), [OPERATORS["argmax-argmin"]])
    assert a.line != b.line and a.key == b.key
    assert a.key != c.key


def test_allow_list_needs_a_reason_and_renders_loadable_entries(tmp_path: Path) -> None:
    (m,) = generate_mutants("m.py", "def f(q):\n    return q.argmax(1)\n",
                            [OPERATORS["argmax-argmin"]])
    path = tmp_path / "allow.toml"
    path.write_text(allowlist.entry_for(m, reason='ties only: "q" is constant'))
    assert allowlist.load(path)[m.key].reason == 'ties only: "q" is constant'
    path.write_text(f'[[equivalent]]\nkey = "{m.key}"\n')
    with pytest.raises(ValueError, match="reason"):
        allowlist.load(path)
    assert allowlist.load(tmp_path / "absent.toml") == {}


def test_report_score_matrix_and_atomic_files(tmp_path: Path) -> None:
    (m,) = generate_mutants("pkg/a.py", "def f(q):\n    return q.argmax(1)\n",
                            [OPERATORS["argmax-argmin"]])
    statuses = ["killed", "timeout", "survived", "equivalent", "not-covered", "error"]
    results = [Result(m, s) for s in statuses]
    counts = Counter(r.status for r in results)
    # (killed + timeout) / (total - equivalent - error)
    assert score(counts) == pytest.approx(2 / (len(results) - 2))
    assert score(Counter({"equivalent": 2})) is None
    rows = matrix(results, "module")
    assert list(rows) == ["pkg.a"] and sum(rows["pkg.a"].values()) == len(results)
    report = Report(results, 1.0, 2, min_score=0.5)
    assert report.passed == (report.score >= 0.5)
    md = report.markdown()
    assert "| `pkg.a` |" in md and "```diff" in md
    out = tmp_path / "r" / "x.md"
    write_atomic(out, md)
    assert out.read_text() == md and [p.name for p in out.parent.iterdir()] == ["x.md"]


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                   check=True, capture_output=True)


def test_changed_since_finds_changed_and_untracked_lines(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\ny = 2\nz = 3\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "a.py")
    _git(tmp_path, "commit", "-qm", "c")
    (tmp_path / "a.py").write_text("x = 1\ny = 20\nz = 3\nw = 4\n")
    (tmp_path / "b.py").write_text("v = 1\n")
    assert changed_lines(tmp_path, "HEAD", ["a.py", "b.py"]) == {"a.py": {2, 4}, "b.py": {1}}
    with pytest.raises(ValueError):
        changed_lines(tmp_path, "no-such-ref", ["a.py"])


TINY_CODE = """\
def td_target(reward, done, next_v, gamma):
    return reward + gamma * (1.0 - done) * next_v
"""
TINY_TEST = """\
from tinyrl.td import td_target


def test_terminal_transitions_do_not_bootstrap():
    assert td_target(1.0, 1.0, 5.0, 0.5) == 1.0
"""


def _tiny_project(root: Path) -> Path:
    (root / "tinyrl").mkdir(parents=True)
    (root / "tinyrl" / "__init__.py").write_text("")
    (root / "tinyrl" / "td.py").write_text(TINY_CODE)
    (root / "tests").mkdir()
    (root / "tests" / "test_td.py").write_text(TINY_TEST)
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    return root


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_end_to_end_kills_one_keeps_one_and_never_touches_the_project(tmp_path: Path) -> None:
    root = _tiny_project(tmp_path / "proj")
    before = _digest(root)
    config = Settings(root=root, paths=["tinyrl"], tests=["tests"], ignore=[],
                        operators=["done-ignored", "discount-dropped"], workers=1,
                        preload=("pytest",), min_score=0.4, test_map=tmp_path / "map.json")
    # done-ignored: (1 - done) -> 1 bootstraps from a terminal state: the test sees it.
    # discount-dropped: the test's terminal transition never reaches gamma: a survivor.
    report = run(config, log=lambda s: None)
    status = {r.mutant.operator: r.status for r in report.results}
    assert status == {"done-ignored": "killed", "discount-dropped": "survived"}
    assert report.score == 0.5 and report.passed
    killed = next(r for r in report.results if r.status == "killed")
    assert "test_terminal_transitions_do_not_bootstrap" in killed.detail
    assert _digest(root) == before  # the mutants only ever lived in the workers' copies

    survivor = next(r.mutant for r in report.results if r.status == "survived")
    config.allow_list = root.parent / "allow.toml"
    config.allow_list.write_text(allowlist.entry_for(survivor, "reviewed in this test"))
    assert config.test_map.exists()
    again = run(config, log=lambda s: None)  # reuses the saved per-test coverage map
    eq = [r for r in again.results if r.status == "equivalent"]
    assert [r.detail for r in eq] == ["reviewed in this test"] and again.score == 1.0


CHILD_CODE = """\
import multiprocessing as mp


def _child(queue, reward, done, next_v, gamma):
    queue.put(reward + gamma * (1.0 - done) * next_v)


def td_target_in_a_child(reward, done, next_v, gamma):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, reward, done, next_v, gamma))
    proc.start()
    value = queue.get(timeout=60)
    proc.join()
    return value
"""
CHILD_TEST = """\
from tinyrl.child import td_target_in_a_child


def test_terminal_transitions_do_not_bootstrap_in_the_child():
    assert td_target_in_a_child(1.0, 1.0, 5.0, 0.5) == 1.0
"""


def test_lines_run_only_in_a_spawned_child_are_covered_and_their_mutants_judged(
    tmp_path: Path,
) -> None:
    # The actor/learner's loops run only in spawned children: the coverage pass must see
    # them, or every mutant there is "not covered" however strong the tests are.
    root = _tiny_project(tmp_path / "proj")
    (root / "tinyrl" / "td.py").unlink()
    (root / "tests" / "test_td.py").unlink()
    (root / "tinyrl" / "child.py").write_text(CHILD_CODE)
    (root / "tests" / "test_child.py").write_text(CHILD_TEST)
    config = Settings(root=root, paths=["tinyrl"], tests=["tests"], ignore=[],
                      operators=["done-ignored"], workers=1, preload=("pytest",),
                      min_score=0.0, test_map=tmp_path / "map.json")
    report = run(config, log=lambda s: None)
    assert [(r.mutant.line, r.status) for r in report.results] == [(5, "killed")]
    lines = json.loads(config.test_map.read_text())["lines"]["tinyrl/child.py"]
    assert lines["5"] == ["tests/test_child.py::test_terminal_transitions_do_not_bootstrap_in_the_child"]


SHARED_TEST = """\
import pytest

from tinyrl.td import td_target


@pytest.fixture(scope="module")
def target():
    return td_target(1.0, 1.0, 5.0, 0.5)  # built once, in the first test that asks


def test_the_target_is_a_number(target):
    assert isinstance(target, float)


def test_terminal_transitions_do_not_bootstrap(target):
    assert target == 1.0
"""


def test_a_mutant_of_a_shared_fixtures_work_runs_every_test_that_reads_it(
    tmp_path: Path,
) -> None:
    # A module-scoped fixture runs its code inside the first test that needs it, so
    # coverage credits only that test; the test that checks the value must be selected too.
    root = _tiny_project(tmp_path / "proj")
    (root / "tests" / "test_td.py").write_text(SHARED_TEST)
    config = Settings(root=root, paths=["tinyrl"], tests=["tests"], ignore=[],
                      operators=["done-ignored"], workers=1, preload=("pytest",),
                      min_score=0.0, test_map=tmp_path / "map.json")
    report = run(config, log=lambda s: None)
    assert [r.status for r in report.results] == ["killed"]
    assert "test_terminal_transitions_do_not_bootstrap" in report.results[0].detail
    assert len(json.loads(config.test_map.read_text())["lines"]["tinyrl/td.py"]["2"]) == 1, (
        "the law was not tested: coverage saw both tests run the line")


def test_a_shared_fixtures_rebuild_is_charged_once_to_the_budget() -> None:
    from rlbench.mutate.engine import _within_budget
    from rlbench.mutate.selection import TestMap

    # "build" built the module fixture (10 s); "read" only reads it (0.1 s).
    tm = TestMap(seconds={"build": 10.0, "read": 0.1, "other": 0.2},
                 shared={"build": ["m::fx"], "read": ["m::fx"]})
    assert tm.cost(["read"]) == pytest.approx(10.1), "running `read` alone rebuilds the fixture"
    assert tm.cost(["read", "build"]) == pytest.approx(10.1)
    assert tm.cost(["other"]) == pytest.approx(0.2)
    assert _within_budget(["other", "read"], tm, 5.0) == ["other"]
    # Each test's own time limit: the first of the group to run is charged the rebuild.
    assert tm.deadlines(["other", "read", "build"], 3.0, 1.0) == pytest.approx(
        {"other": 1.6, "read": 31.3, "build": 31.0})


def test_a_shared_fixture_left_and_come_back_to_is_charged_again() -> None:
    """pytest runs node ids in the order given and tears a module's fixture down when it
    moves to another file: the test that comes back builds it again, so its own time limit
    must include the rebuild (without it, the limit fired inside the rebuild, and a mutant
    was counted a "timeout": a kill it had not earned)."""
    from rlbench.mutate.selection import TestMap

    tm = TestMap(seconds={"a.py::build": 10.0, "a.py::read": 0.1, "b.py::other": 0.2},
                 shared={"a.py::build": ["a.py::fx"], "a.py::read": ["a.py::fx"]})
    assert tm.deadlines(["a.py::build", "b.py::other", "a.py::read"], 3.0, 1.0) == pytest.approx(
        {"a.py::build": 31.0, "b.py::other": 1.6, "a.py::read": 31.3})
    assert tm.deadlines(["a.py::build", "a.py::read", "b.py::other"], 3.0, 1.0) == pytest.approx(
        {"a.py::build": 31.0, "a.py::read": 1.3, "b.py::other": 1.6})


def test_tests_that_killed_mutants_of_the_same_function_run_first() -> None:
    from collections import Counter
    from dataclasses import replace

    from rlbench.mutate.engine import _ranked
    from rlbench.mutate.selection import TestMap

    m = generate_mutants("x.py", TINY_CODE, [OPERATORS["done-ignored"]])[0]
    tm = TestMap(seconds={"fast": 0.1, "file_killer": 1.0, "law": 2.0})
    kills: Counter = Counter()
    assert _ranked(m, ["law", "file_killer", "fast"], tm, kills) == ["fast", "file_killer", "law"]
    kills[m.file, "file_killer"] += 1  # killed a mutant elsewhere in the file
    kills[m.file, "law"] += 1
    kills[m.file, m.function, "law"] += 1  # ... and this one in the same function
    assert _ranked(m, ["fast", "file_killer", "law"], tm, kills)[0] == "law"
    other = replace(m, function="elsewhere")
    assert _ranked(other, ["fast", "file_killer", "law"], tm, kills)[0] == "fast"


def test_ranked_tests_sharing_a_fixture_run_together_and_others_by_rank() -> None:
    """Tests of one shared fixture are not split by another file's: pytest would rebuild
    the fixture when it came back to them. Tests of the same file that share nothing with
    them keep their own rank (before, a whole file followed its best test and a SAC test
    file spent the --test-budget before the law that kills the mutant ran)."""
    from collections import Counter

    from rlbench.mutate.engine import _ranked
    from rlbench.mutate.selection import TestMap

    m = generate_mutants("x.py", TINY_CODE, [OPERATORS["done-ignored"]])[0]
    tm = TestMap(seconds={"a.py::law": 1.0, "b.py::fast": 0.5, "a.py::slow": 5.0,
                          "a.py::unrelated": 3.0, "c.py::other": 0.6},
                 shared={"a.py::law": ["a.py::fx"], "a.py::slow": ["a.py::fx"]})
    kills: Counter = Counter({(m.file, m.function, "a.py::law"): 1})
    tests = ["a.py::slow", "a.py::unrelated", "c.py::other", "b.py::fast", "a.py::law"]
    assert _ranked(m, tests, tm, kills) == [
        "a.py::law", "a.py::slow", "b.py::fast", "c.py::other", "a.py::unrelated"]
    # Groups link transitively: x shares fx with y, y shares gx with z (alone, x costs
    # 0.1 + y's build of fx, z 8.0 + y's build of gx).
    tm = TestMap(seconds={"x": 0.1, "y": 9.0, "z": 8.0, "u": 0.5},
                 shared={"x": ["fx"], "y": ["fx", "gx"], "z": ["gx"]})
    assert _ranked(m, ["u", "z", "y", "x"], tm, Counter()) == ["u", "y", "x", "z"]


def test_a_test_reading_a_shared_fixture_ranks_by_the_fixtures_cost() -> None:
    """Coverage credits a shared fixture's build to the test that built it; one that only
    reads it looks instant, but run first it pays the build: it ranks by that cost, behind
    a genuinely fast test (before, the 3 ms readers of the actor/learner's 14 s run went
    first and spent the whole --test-budget)."""
    from collections import Counter

    from rlbench.mutate.engine import _ranked
    from rlbench.mutate.selection import TestMap

    m = generate_mutants("x.py", TINY_CODE, [OPERATORS["done-ignored"]])[0]
    tm = TestMap(seconds={"a.py::build": 14.0, "a.py::read": 0.003, "b.py::unit": 0.5},
                 shared={"a.py::build": ["a.py::fx"], "a.py::read": ["a.py::fx"]})
    assert _ranked(m, ["a.py::read", "a.py::build", "b.py::unit"], tm, Counter())[0] == "b.py::unit"


HANG_CODE = """\
def count_to(target):
    n = 0
    while n < target:
        n += 1
    return n
"""
HANG_TEST = """\
import time

from tinyrl.count import count_to


def test_count_to_counts():
    assert count_to(3) == 3


def test_something_slow():
    time.sleep(2.0)
"""


def test_a_mutant_that_hangs_a_test_is_stopped_by_that_tests_own_limit(
    tmp_path: Path, monkeypatch
) -> None:
    # Dropping `n += 1` hangs the fast first test. Its own limit (3 x its baseline + the
    # per-test slack) stops it, and the report names it: the run's overall timeout, which
    # also covers the slow test, is only the backstop and names nothing.
    from rlbench.mutate import engine

    monkeypatch.setattr(engine, "TEST_TIMEOUT_SLACK", 1.0)
    root = _tiny_project(tmp_path / "proj")
    (root / "tinyrl" / "count.py").write_text(HANG_CODE)
    (root / "tests" / "test_count.py").write_text(HANG_TEST)
    config = Settings(root=root, paths=["tinyrl/count.py"], tests=["tests/test_count.py"],
                      ignore=[], operators=["statement-dropped"], workers=1,
                      preload=("pytest",), min_score=0.0, timeout_slack=60.0)
    report = run(config, log=lambda s: None)
    hung = [r for r in report.results if r.mutant.original == "n += 1"]
    assert [r.status for r in hung] == ["timeout"], [(r.status, r.detail) for r in hung]
    assert "test_count_to_counts" in hung[0].detail and "Timeout (>" in hung[0].detail


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, capsys) -> None:
    from rlbench.cli import main

    root = _tiny_project(tmp_path / "proj")
    monkeypatch.chdir(root)
    for argv in (["--paths", "nope"], ["--paths", "tinyrl", "--tests", "nope"],
                 ["--paths", "tinyrl", "--changed-since", "no-such-ref"],
                 ["--paths", "tinyrl", "--operators", "no-such-op"],
                 ["--paths", "tinyrl", "--keys", "no-such-key"]):
        assert main(["mutate", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("rlbench: error:") and len(err.splitlines()) == 1, err
    assert main(["mutate", "--list-operators"]) == 0
    assert "bootstrap-online" in capsys.readouterr().out


def test_keys_select_exactly_those_mutants(tmp_path: Path) -> None:
    """--keys re-runs a report's mutants by key: just those, whatever else the files hold."""
    from rlbench.mutate.engine import generate

    root = _tiny_project(tmp_path / "proj")
    every = generate(Settings(root=root, paths=["tinyrl"]), ["tinyrl/td.py"])
    picked = [every[0].key, every[-1].key]
    chosen = generate(Settings(root=root, paths=["tinyrl"], keys=picked), ["tinyrl/td.py"])
    assert len(every) > 2 and {m.key for m in chosen} == set(picked)


def test_json_report_round_trips(tmp_path: Path) -> None:
    from rlbench.mutate.report import write_json

    ms = generate_mutants("m.py", "def f(q):\n    return q.argmax(1)\n")
    report = Report([Result(ms[0], "survived")], 2.0, 1, 0.95)
    write_json(tmp_path / "r.json", report)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["totals"]["survived"] == 1 and data["passed"] is False
    assert data["mutants"][0]["key"] == ms[0].key and data["mutants"][0]["diff"].startswith("---")


def test_test_budget_keeps_the_leading_tests_and_at_least_one() -> None:
    from rlbench.mutate.engine import _within_budget
    from rlbench.mutate.selection import TestMap

    tm = TestMap(seconds={"a": 1.0, "b": 2.0, "c": 50.0})
    assert _within_budget(["a", "b", "c"], tm, None) == ["a", "b", "c"]
    assert _within_budget(["a", "b", "c"], tm, 3.0) == ["a", "b"]
    assert _within_budget(["c", "a"], tm, 3.0) == ["c"]


def test_a_test_module_that_no_longer_imports_is_a_kill_not_an_error() -> None:
    from rlbench.mutate.runner import classify

    assert classify(0, False) == "survived" and classify(None, True) == "timeout"
    assert classify(1, False) == classify(2, False) == classify(-9, False) == "killed"
    log = "ERROR tests/mutate/test_x.py\nERROR: found no collectors for tests/mutate/test_x.py::t\n"
    assert classify(4, False, log) == "killed"
    assert classify(4, False, "ERROR: usage") == classify(5, False) == "error"


def test_a_test_stopped_by_its_own_limit_is_a_timeout_even_in_a_fixture() -> None:
    from rlbench.mutate.runner import classify

    # pytest-timeout firing in a module fixture's set-up: the summary line has no message.
    in_fixture = ("E           Failed: Timeout (>40.0s) from pytest-timeout.\n"
                  "=== short test summary info ===\n"
                  "ERROR tests/test_a.py::test_a\n")
    assert classify(1, False, in_fixture) == "timeout"
    plain = "E       assert 2 == 3\nFAILED tests/test_a.py::test_a - assert 2 == 3\n"
    assert classify(1, False, plain) == "killed"


LEAKY_TEST = """\
import subprocess, sys


def test_leaves_a_process_behind(tmp_path_factory):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open({pidfile!r}, "w").write(str(child.pid))
"""


def _gone(pid: int) -> bool:
    """No such process, or a zombie nobody has reaped yet (it is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.parametrize("fork", [True, False], ids=["forkserver", "subprocess"])
def test_a_test_run_never_leaves_processes_behind(tmp_path: Path, fork: bool) -> None:
    """A test (or a mutant breaking a trainer's shutdown) that leaves a spawned process
    running: the run's whole session is killed when pytest exits, not only on timeout."""
    root = _tiny_project(tmp_path / "proj")
    pidfile = tmp_path / "leaked.pid"
    (root / "tests" / "test_leak.py").write_text(LEAKY_TEST.format(pidfile=str(pidfile)))
    worker = Worker(root, fork=fork, logdir=tmp_path, preload=("pytest",))
    try:
        rc, timed_out = worker.run_tests(["tests/test_leak.py"], timeout=120, log=tmp_path / "log")
    finally:
        worker.close()
    assert (rc, timed_out) == (0, False), (tmp_path / "log").read_text()
    pid = int(pidfile.read_text())
    for _ in range(200):  # SIGKILL is immediate; reaping by init may take a moment on a busy box
        if _gone(pid):
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        pytest.fail(f"process {pid} spawned by the test run outlived it")


def test_a_workspace_does_not_inherit_an_outer_runs_coverage_context(monkeypatch, tmp_path) -> None:
    # When rlbench's own mutate tests run inside a coverage pass, the outer test's context
    # would prefix every inner context ("outer|inner"): the inner node ids then name no test.
    from rlbench.mutate.pytest_plugin import CONTEXT_ENV, TESTS_ENV

    monkeypatch.setenv(CONTEXT_ENV, "tests/test_outer.py::test_outer")
    monkeypatch.setenv(TESTS_ENV, str(tmp_path / "outer.json"))
    env = workspace_env(tmp_path)
    assert CONTEXT_ENV not in env and TESTS_ENV not in env
    assert env["PYTHONPATH"] == str(tmp_path)
