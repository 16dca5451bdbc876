"""`rlbench nightly --baseline-ref REF`: REF's code, run in a git worktree on the reference
seeds, is the baseline; this checkout's nightly seeds are judged against it. Bad refs are
bad input; the worktree never outlives the run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from rlbench.cli import main
from rlbench.curves.baseline_ref import resolve_ref

REPO = Path(__file__).resolve().parents[2]


def _worktrees() -> str:
    return subprocess.run(["git", "worktree", "list"], cwd=REPO, capture_output=True,
                          text=True).stdout


def test_bad_ref_and_no_repo_are_one_line_errors(tmp_path: Path, capsys) -> None:
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    assert main(["nightly", "--profile", "smoke", "--baseline-ref", "no-such-ref-xyz",
                 "--out", str(tmp_path / "out")]) == 2
    assert "--baseline-ref 'no-such-ref-xyz': no such commit" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs a git checkout"):
        resolve_ref("HEAD", tmp_path)
    assert main(["nightly", "--profile", "smoke", "--baseline-ref", "HEAD", "--baseline",
                 "x.json", "--out", str(tmp_path / "out")]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_resume_refuses_baseline_jobs_of_another_commit(tmp_path: Path, capsys) -> None:
    """An interrupted A/B resumed after REF moved must not mix two commits in one reference."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    stamp = tmp_path / "out" / "baseline" / "ref.json"
    stamp.parent.mkdir(parents=True)
    stamp.write_text(json.dumps({"ref": "HEAD", "commit": "0" * 40}))
    assert main(["nightly", "--profile", "smoke", "--baseline-ref", "HEAD", "--resume",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "stored baseline jobs ran " + "0" * 40 in err and "without --resume" in err
    assert str(tmp_path / "out" / "baseline-src") not in _worktrees()


@pytest.mark.slow
def test_ab_against_head_is_a_same_code_pass(tmp_path: Path) -> None:
    """The smoke profile A/B against HEAD (~2 min on 2 busy cores): same code, disjoint seeds,
    so the rule must not call a regression; the worktree is gone afterwards."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    out = tmp_path / "ab"
    head = resolve_ref("HEAD", REPO)  # one commit for both runs, even if HEAD moves meanwhile
    rc = main(["nightly", "--profile", "smoke", "--baseline-ref", head, "--out", str(out),
               "--jobs", "2", "--quiet"])
    assert rc == 0
    verdict = json.loads((out / "verdict.json").read_text())
    assert json.loads((out / "baseline" / "reference.json").read_text())["meta"]["git_commit"]
    assert verdict["verdict"] in ("pass", "improved")
    assert str(out / "baseline-src") not in _worktrees()
    # Resumed, both sides keep their finished jobs: the baseline records it did.
    n_jobs = len(list((out / "baseline" / "jobs").glob("*.json")))
    assert main(["nightly", "--profile", "smoke", "--baseline-ref", head, "--out", str(out),
                 "--jobs", "2", "--quiet", "--resume"]) == 0
    meta = json.loads((out / "baseline" / "reference.json").read_text())["meta"]
    assert meta["resumed_jobs"] == n_jobs > 0
    assert str(out / "baseline-src") not in _worktrees()
