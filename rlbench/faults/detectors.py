"""Detector checks: whether a catalogue row's pytest node ids can serve as detectors.

Read from the test files' syntax trees, never by importing them: the check is instant and
works on a tree that a fault (or a typo) has broken.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Sequence
from pathlib import Path

from rlbench.faults.catalogue import CATALOGUE, Fault

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
    faults: Sequence[Fault] = CATALOGUE, root: Path | None = None
) -> dict[str, str]:
    """Detector node id → problem, for every unusable detector of `faults`."""
    root = root or project_root()
    out = {}
    for fault in faults:
        for nodeid in fault.detectors:
            problem = detector_problem(nodeid, root)
            if problem:
                out[nodeid] = problem
    return out

