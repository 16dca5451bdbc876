"""A fault's detectors: the tests marked ``@pytest.mark.detects("<fault id>")``, and whether
each can serve (exists, runs by default, is not the kill-matrix test itself).

Both are read from the test files' syntax trees, never by importing them: instant, and it
works on a tree that a fault (or a typo) has broken.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from rlbench.faults.catalogue import CATALOGUE, Fault

MARKER = "detects"
"""`@pytest.mark.detects("fault-id", ...)` names the faults a test detects."""

TESTS_DIR = "tests"
"""Where, under the project root, marked detectors are looked for."""

KILL_MATRIX_TEST = "tests/faults/test_kill_matrix.py"
"""The test that runs `verify` itself: it can never be a detector (it would recurse)."""


def project_root() -> Path:
    """The checkout that holds `tests/` (detector node ids are relative to it)."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "tests").is_dir() else Path.cwd()


def _marked_slow(decorators: Iterable[ast.expr]) -> bool:
    return any("slow" in ast.unparse(d) for d in decorators)


def detector_problem(nodeid: str, root: Path) -> str | None:
    """Why `nodeid` cannot serve as a detector (None when it can), found by reading the
    test file's syntax tree: no import, so the check is instant and works on a broken tree.

    Checks: the file exists, the class/function named exists (a ``[param]`` suffix is
    stripped), it is not marked slow (the default run deselects slow tests, so it would
    never run), and it is not the kill-matrix test itself.
    """
    path, _, rest = nodeid.partition("::")
    if Path(path).as_posix() == KILL_MATRIX_TEST:
        return "the kill-matrix test cannot detect a fault (it runs verify itself)"
    file = root / path
    if not path.endswith(".py") or not file.is_file():
        return f"no test file {path}"
    try:
        tree = ast.parse(file.read_text(), filename=str(file))
    except SyntaxError as exc:
        return f"{path} does not parse: {exc.msg} (line {exc.lineno})"
    for node in tree.body:  # pytestmark = pytest.mark.slow at module level
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ) and "slow" in ast.unparse(node.value):
            return f"{path} is marked slow (deselected by the default run)"
    body: list[ast.stmt] = tree.body
    names = [n.split("[", 1)[0] for n in rest.split("::")] if rest else []
    for depth, name in enumerate(names):
        found = next(
            (n for n in body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
             and n.name == name),
            None,
        )
        if found is None:
            where = "::".join([path, *names[:depth]])
            return f"no test {name!r} in {where}"
        if _marked_slow(found.decorator_list):
            return f"{'::'.join([path, *names[: depth + 1]])} is marked slow"
        body = found.body if isinstance(found, ast.ClassDef) else []
    return None


def detector_problems(
    faults: Sequence[Fault] | None = None, root: Path | None = None
) -> dict[str, str]:
    """Detector node id → problem, for every unusable detector of `faults` (default: the
    catalogue with its marked detectors)."""
    root = root or project_root()
    if faults is None:
        faults = with_detectors(CATALOGUE, root)
    out = {}
    for fault in faults:
        for nodeid in fault.detectors:
            problem = detector_problem(nodeid, root)
            if problem:
                out[nodeid] = problem
    return out



def _marked_ids(decorators: Iterable[ast.expr]) -> list[str]:
    """Fault ids named by `@pytest.mark.detects(...)` among `decorators`."""
    ids: list[str] = []
    for d in decorators:
        if isinstance(d, ast.Call) and ast.unparse(d.func).endswith(f"mark.{MARKER}"):
            ids += [a.value for a in d.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return ids


def marked_detectors(root: Path | None = None) -> dict[str, tuple[str, ...]]:
    """Fault id → node ids of the tests under `root`/tests marked as its detectors (file
    order, then source order). A file that does not parse contributes none: its faults then
    show up as having no (or fewer) detectors, which verify reports."""
    root = root or project_root()
    found: dict[str, list[str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                nodeid = f"{prefix}::{node.name}"
                for fault_id in _marked_ids(node.decorator_list):
                    found.setdefault(fault_id, []).append(nodeid)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, nodeid)

    for file in sorted((root / TESTS_DIR).rglob("test_*.py")):
        try:
            tree = ast.parse(file.read_text(), filename=str(file))
        except SyntaxError:
            continue
        visit(tree.body, file.relative_to(root).as_posix())
    return {fault_id: tuple(ids) for fault_id, ids in found.items()}


def with_detectors(faults: Sequence[Fault], root: Path | None = None) -> list[Fault]:
    """`faults` with their marked detector tests added after any node ids a row names
    itself (catalogue rows name none; a row built by hand, e.g. for another project, may)."""
    marked = marked_detectors(root)
    return [replace(f, detectors=tuple(dict.fromkeys((*f.detectors, *marked.get(f.id, ())))))
            for f in faults]
