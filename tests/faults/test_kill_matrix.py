"""The kill matrix as a test: every catalogue fault is caught by its detectors, and every
detector passes on clean code.

CI runs the kill matrix once, as `rlbench faults verify` in `make test` (after pytest), so
this test is marked slow: the default pytest run skips it instead of running the same
~17 pytest processes a second time. Run it on its own with
`pytest -m slow tests/faults/test_kill_matrix.py` (the nightly job does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rlbench.faults import CATALOGUE, ENV_VAR
from rlbench.faults.detectors import project_root


@pytest.mark.slow
def test_kill_matrix_every_fault_killed_and_clean_passes() -> None:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR} | {"MUJOCO_GL": "disable"}
    out = subprocess.run(
        [sys.executable, "-m", "rlbench.cli", "faults", "verify", "--json"],
        cwd=project_root(), env=env, capture_output=True, text=True, timeout=1800,
    )
    rows = json.loads(out.stdout)
    assert [r["id"] for r in rows] == [f.id for f in CATALOGUE]
    bad = [f"{r['id']}: killed={r['killed']} clean_passed={r['clean_passed']} {r['note']}"
           for r in rows if not (r["killed"] and r["clean_passed"] and r["detectors"])]
    assert not bad, "kill matrix not clean:\n" + "\n".join(bad)
    assert out.returncode == 0, out.stderr
