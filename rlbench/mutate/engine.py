"""The mutation run, end to end: pick files and lines, generate mutants, apply the
allow-list, measure per-test coverage once, run each mutant against its tests in the
worker pool, and return a `Report`."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rlbench.mutate import allowlist
from rlbench.mutate.config import DEFAULT_IGNORE, DEFAULT_MIN_SCORE, DEFAULT_PATHS, DEFAULT_TESTS
from rlbench.mutate.generate import Mutant, generate_mutants
from rlbench.mutate.operators import OPERATORS
from rlbench.mutate.report import Report, Result
from rlbench.mutate.runner import PRELOAD, WorkerPool, imported_from
from rlbench.mutate.selection import TestMap, run_coverage_pass

TEST_TIMEOUT_SLACK = 10.0
"""Seconds added to each test's own time limit (`TestMap.deadlines`): covers a loaded
machine's start-up jitter; the run as a whole keeps `Settings.timeout_slack`."""


@dataclass
class Settings:
    """Everything a run depends on (the CLI fills it from flags)."""

    root: Path = field(default_factory=Path.cwd)
    paths: Sequence[str] = DEFAULT_PATHS
    tests: Sequence[str] = DEFAULT_TESTS
    ignore: Sequence[str] = DEFAULT_IGNORE
    operators: Sequence[str] = tuple(OPERATORS)
    changed_since: str | None = None
    keys: Sequence[str] | None = None  # only mutants with these keys (a report's survivors)
    max_mutants: int | None = None
    sample: float | None = None
    seed: int = 0
    workers: int = 2
    fork: bool = True
    preload: tuple[str, ...] = PRELOAD  # what the fork server imports once per worker
    timeout_factor: float = 3.0
    timeout_slack: float = 30.0
    # Baseline seconds of covering tests a mutant may use (None: all of them). A survivor
    # that ran only part of its tests says so in the report; it is never silently a kill.
    test_budget: float | None = None
    min_score: float = DEFAULT_MIN_SCORE
    allow_list: Path | None = None
    test_map: Path | None = None


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except OSError as exc:
        raise ValueError(f"git is needed for --changed-since ({exc})") from None
    if out.returncode != 0:
        raise ValueError(f"git {' '.join(args)}: {out.stderr.strip().splitlines()[-1:] or '?'}")
    return out.stdout


def python_files(root: Path, paths: Sequence[str]) -> list[str]:
    """The .py files under `paths` (relative to `root`), minus rlbench.mutate itself."""
    files: set[str] = set()
    for p in paths:
        full = (root / p).resolve()
        if not full.exists():
            raise ValueError(f"--paths: {p} does not exist under {root}")
        if full.is_file():
            if full.suffix != ".py":
                raise ValueError(f"--paths: {p} is not a Python file")
            found = [full]
        else:
            found = [q for q in full.rglob("*.py") if "__pycache__" not in q.parts]
        for q in found:
            rel = q.relative_to(root.resolve()).as_posix()
            if not rel.startswith("rlbench/mutate/"):
                files.add(rel)
    return sorted(files)


_HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")


def changed_lines(root: Path, ref: str, files: Sequence[str]) -> dict[str, set[int]]:
    """file -> lines added or changed since `ref` (working tree included); untracked
    files count as wholly changed."""
    try:
        _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except ValueError:
        raise ValueError(f"--changed-since {ref}: not a commit in {root} "
                         "(fetch it first, e.g. git fetch origin main)") from None
    out: dict[str, set[int]] = {}
    current = None
    for line in _git(root, "diff", "-U0", "--no-color", "--no-ext-diff", ref, "--",
                     *files).splitlines():
        if line.startswith("+++ "):
            current = line[6:] if line.startswith("+++ b/") else None
        elif current and (m := _HUNK.match(line)):
            start, count = int(m.group(1)), int(m.group(2) or 1)
            out.setdefault(current, set()).update(range(start, start + count))
    for rel in _git(root, "ls-files", "--others", "--exclude-standard", "--",
                    *files).splitlines():
        out[rel] = set(range(1, len((root / rel).read_text().splitlines()) + 1))
    return out


def test_files(root: Path, tests: Sequence[str], ignore: Sequence[str]) -> list[str]:
    found: set[str] = set()
    ignored = [(root / i).resolve() for i in ignore]
    for t in tests:
        full = (root / t).resolve()
        if not full.exists():
            raise ValueError(f"--tests: {t} does not exist under {root}")
        cands = [full] if full.is_file() else [
            *full.rglob("test_*.py"), *full.rglob("*_test.py")]
        for q in cands:
            if any(q == i or i in q.parents for i in ignored) or "__pycache__" in q.parts:
                continue
            found.add(q.relative_to(root.resolve()).as_posix())
    if not found:
        raise ValueError(f"no test files under {', '.join(tests)} (after --ignore)")
    return sorted(found)


def generate(settings: Settings, files: Sequence[str]) -> list[Mutant]:
    """All mutants of `files` (restricted to changed lines with --changed-since, or to
    --keys), sampled down by --sample/--max-mutants (deterministically, by --seed)."""
    unknown = sorted(set(settings.operators) - set(OPERATORS))
    if unknown:
        raise ValueError(f"unknown operator(s) {', '.join(unknown)}; known: {', '.join(OPERATORS)}")
    ops = [OPERATORS[name] for name in settings.operators]
    lines = changed_lines(settings.root, settings.changed_since, files) if (
        settings.changed_since) else None
    mutants: list[Mutant] = []
    for rel in files:
        if lines is not None and rel not in lines:
            continue
        source = (settings.root / rel).read_text()
        mutants += generate_mutants(rel, source, ops, None if lines is None else lines[rel])
    if settings.keys is not None:
        unknown_keys = sorted(set(settings.keys) - {m.key for m in mutants})
        if unknown_keys:
            raise ValueError(f"--keys: no mutant of --paths has key(s) {', '.join(unknown_keys)}")
        wanted = set(settings.keys)
        mutants = [m for m in mutants if m.key in wanted]
    rng = random.Random(settings.seed)
    if settings.sample is not None and 0 < settings.sample < 1:
        keep = sorted(rng.sample(range(len(mutants)), round(len(mutants) * settings.sample)))
        mutants = [mutants[i] for i in keep]
    if settings.max_mutants is not None and len(mutants) > settings.max_mutants:
        keep = sorted(rng.sample(range(len(mutants)), settings.max_mutants))
        mutants = [mutants[i] for i in keep]
    return mutants


def run(settings: Settings, log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
        on_partial: Callable[[Report], None] | None = None) -> Report:
    """The whole run. `on_partial` gets the report so far every 25 mutants and when the
    run is interrupted."""
    start = time.perf_counter()
    root = settings.root.resolve()
    files = python_files(root, settings.paths)
    tests = test_files(root, settings.tests, settings.ignore)
    allowed = allowlist.load(settings.allow_list)
    mutants = generate(settings, files)
    log(f"rlbench mutate: {len(mutants)} mutants in {len(files)} files "
        f"({time.perf_counter() - start:.0f} s to generate)")
    results: list[Result] = []
    todo = []
    for m in mutants:
        if m.key in allowed:
            results.append(Result(m, "equivalent", detail=allowed[m.key].reason))
        else:
            todo.append(m)

    phases: dict[str, float] = {"generate_seconds": round(time.perf_counter() - start, 1)}

    def report() -> Report:
        order = {m.uid: i for i, m in enumerate(mutants)}
        results.sort(key=lambda r: order[r.mutant.uid])
        return Report(results, time.perf_counter() - start, settings.workers, settings.min_score,
                      _settings_dict(settings, len(files), len(tests)) | phases)

    if not todo:
        return report()
    packages = sorted({f.split("/")[0] for f in files})
    with WorkerPool(root, settings.workers, fork=settings.fork, preload=settings.preload) as pool:
        for package in packages:  # the tests must import the copy, never the shared tree
            if not (root / package / "__init__.py").exists():
                continue
            where = imported_from(pool.workdirs[0], package)
            if not Path(where).resolve().is_relative_to(pool.workdirs[0].resolve()):
                raise RuntimeError(f"isolation broken: a workspace imports {package} from {where}")
        t0 = time.perf_counter()
        test_map = _test_map(settings, pool, tests, packages, log)
        phases["coverage_seconds"] = round(time.perf_counter() - t0, 1)
        jobs = []
        selected_for: dict[str, list[str]] = {}
        for m in todo:
            selected = test_map.tests_for(m)
            if not selected:
                results.append(Result(m, "not-covered"))
                continue
            selected_for[m.uid] = selected
            jobs.append((m, selected, 0.0))  # tests and timeout are planned at run time
        log(f"rlbench mutate: running {len(jobs)} mutants on {settings.workers} worker(s) "
            f"({len(todo) - len(jobs)} not covered, {len(mutants) - len(todo)} allow-listed)")
        done = [0]
        # (mutated file, test) and (mutated file, function, test) -> mutants killed
        kills: Counter[tuple[str, ...]] = Counter()

        def plan(m: Mutant, selected: list[str]) -> tuple[list[str], float, dict[str, float]]:
            chosen = _within_budget(_ranked(m, selected, test_map, kills), test_map,
                                    settings.test_budget)
            return chosen, timeout_for(chosen), test_map.deadlines(
                chosen, settings.timeout_factor, TEST_TIMEOUT_SLACK)

        def timeout_for(tests: list[str]) -> float:
            return settings.timeout_factor * test_map.cost(tests) + settings.timeout_slack

        def on_result(m: Mutant, outcome) -> None:
            detail = outcome.detail
            if outcome.status == "survived" and outcome.tests_run < len(selected_for[m.uid]):
                detail = (f"partial: ran {outcome.tests_run} of {len(selected_for[m.uid])} "
                          f"covering tests (--test-budget {settings.test_budget:g} s)")
            results.append(Result(m, outcome.status, outcome.seconds, outcome.tests_run,
                                  detail))
            if outcome.status == "killed" and outcome.detail.startswith("FAILED "):
                test = outcome.detail.split()[1]
                kills[m.file, test] += 1
                kills[m.file, m.function, test] += 1
            done[0] += 1
            if on_partial is not None and done[0] % 25 == 0 and done[0] < len(jobs):
                partial = report()  # results so far on disk: a long run can be watched
                partial.settings["partial"] = f"{done[0]}/{len(jobs)} run"
                on_partial(partial)
            if done[0] % 10 == 0 or done[0] == len(jobs):
                elapsed = time.perf_counter() - start
                log(f"  [{done[0]}/{len(jobs)}] {elapsed:.0f} s; last: {m.file}:{m.line} "
                    f"{m.operator} -> {outcome.status}")

        try:
            pool.run_all(jobs, on_result, plan)
        except BaseException:
            if on_partial is not None:
                partial = report()
                partial.settings["interrupted"] = True
                on_partial(partial)
            raise
    return report()


def _ranked(m: Mutant, tests: list[str], test_map: TestMap,
            kills: Counter[tuple[str, ...]]) -> list[str]:
    """`tests` in run order: fastest first, but a test that already killed mutants of the
    same file goes ahead of faster ones that did not, and one that killed mutants of the
    same function further still (it checks that function's law): -x then stops after one
    test far more often, and the budget keeps the test most likely to kill. Tests that
    share a class/module/package-scoped fixture stay together, in the order of the group's
    best test: pytest runs node ids in the order given and rebuilds such a fixture each
    time it comes back to its owner. Other tests of the same file do not follow along
    (they would spend the budget on a file, not on the likeliest killers).
    "Fast" is a test's cost run alone, its shared fixture's build included: a test that
    only reads a 14 s shared run is not a 3 ms test."""
    ranked = sorted(tests, key=lambda t: test_map.cost([t])
                    / (1 + 4 * kills[m.file, t] + 16 * kills[m.file, m.function, t]))
    group = _fixture_groups(ranked, test_map)
    first: dict[str, int] = {}
    for i, t in enumerate(ranked):
        first.setdefault(group[t], i)
    return sorted(ranked, key=lambda t: first[group[t]])


def _fixture_groups(tests: list[str], test_map: TestMap) -> dict[str, str]:
    """test -> a representative of its group: tests linked through any shared fixture they
    use (transitively) form one group; a test without one is a group of its own."""
    parent = {t: t for t in tests}

    def root(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    owner: dict[str, str] = {}
    for t in tests:
        for key in test_map.shared.get(t, ()):
            if key in owner:
                parent[root(t)] = root(owner[key])
            else:
                owner[key] = t
    return {t: root(t) for t in tests}


def _within_budget(tests: list[str], test_map: TestMap, budget: float | None) -> list[str]:
    """The leading `tests` whose baseline seconds fit in `budget` (at least one)."""
    if budget is None:
        return tests
    out: list[str] = []
    for t in tests:
        if out and test_map.cost([*out, t]) > budget:
            break
        out.append(t)
    return out


def _test_map(settings: Settings, pool: WorkerPool, tests: list[str], packages: list[str],
              log) -> TestMap:
    import json

    if settings.test_map is not None and settings.test_map.exists():
        log(f"rlbench mutate: per-test coverage from {settings.test_map}")
        return TestMap.from_dict(json.loads(settings.test_map.read_text()))
    log(f"rlbench mutate: coverage pass over {len(tests)} test files "
        f"on {len(pool.workdirs)} worker(s)")
    t0 = time.perf_counter()
    scratch = pool.tmp / "coverage"
    scratch.mkdir()
    test_map = run_coverage_pass(pool.workdirs, tests, [], scratch, packages)
    log(f"rlbench mutate: coverage pass took {time.perf_counter() - t0:.0f} s "
        f"({len(test_map.seconds)} tests, {len(test_map.failing)} failing on clean code "
        f"and left out)")
    for nodeid in sorted(test_map.failing):  # they kill nothing: the user must know which
        log(f"  failing on clean code: {nodeid}")
    if not test_map.seconds:
        raise ValueError("the coverage pass ran no tests")
    if settings.test_map is not None:
        from rlbench.mutate.report import write_atomic

        write_atomic(settings.test_map, json.dumps(test_map.to_dict()))
    return test_map


def _settings_dict(s: Settings, n_files: int, n_tests: int) -> dict:
    return {"paths": list(s.paths), "tests": list(s.tests), "ignore": list(s.ignore),
            "operators": list(s.operators), "changed_since": s.changed_since,
            "max_mutants": s.max_mutants, "sample": s.sample, "seed": s.seed,
            "fork": s.fork, "files": n_files, "test_files": n_tests,
            "timeout": f"{s.timeout_factor}x baseline + {s.timeout_slack:.0f} s",
            "test_budget": s.test_budget}
