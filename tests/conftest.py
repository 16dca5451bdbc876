"""Shared test set-up: hypothesis profiles, the gpu marker, golden-value fixture."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")

import pytest
from hypothesis import HealthCheck, settings

# JIT compilation and env start-up make per-example timings meaningless: no deadline.
# `ci` (the default) is derandomized: every CI run checks the same 50 examples per law, so
# a red build always means the change broke something, never that the draw was unlucky.
# The randomized search for new counter-examples is `thorough` (500 fresh examples), run
# by the nightly workflow and by developers (HYPOTHESIS_PROFILE=thorough pytest -m law).
settings.register_profile(
    "ci", deadline=None, max_examples=50, derandomize=True, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", deadline=None, max_examples=20)
settings.register_profile("thorough", deadline=None, max_examples=500, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

GOLDEN_DIR = Path(__file__).parent / "golden" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/data/*.json from this run instead of comparing (review the diff)",
    )


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


class Golden:
    """Compare a dict of numbers with `tests/golden/data/<name>.json`, or rewrite it."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, values: dict[str, float], rtol: float, floor: float) -> None:
        """Each value within rtol of its golden, relative to max(|golden|, floor)."""
        path = GOLDEN_DIR / f"{name}.json"
        if self.update:
            from rlbench.runs import atomic_write_json

            atomic_write_json(path, values)
            return
        if not path.exists():
            pytest.fail(f"no golden file {path}; run pytest --update-golden and commit it")
        from tests.golden.replay import deviation

        stored = json.loads(path.read_text())
        assert stored.keys() == values.keys(), f"golden keys differ for {name}"
        off = [f"  {key} = {values[key]!r}, golden {expected!r}"
               for key, expected in stored.items()
               if deviation(values[key], expected, floor) > rtol]
        assert not off, (
            f"{name}: {len(off)} of {len(stored)} values moved beyond rtol={rtol} "
            f"(relative to max(|golden|, {floor})):\n" + "\n".join(off) +
            "\nif the change of the update maths is intended, run pytest --update-golden and "
            "review the diff"
        )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(request.config.getoption("--update-golden"))
