"""`rlbench nightly --baseline-ref REF`: A/B between two commits in one job, like
`asv continuous`.

REF's code is checked out in a git worktree and run there (its own `rlbench`, by
PYTHONPATH) to write a reference for the profile from the profile's *reference* seeds;
then this checkout runs the profile's nightly seeds against it with the same rule. No
stored reference is needed, both sides run on the same machine (machine differences
cancel), and the seeds are disjoint, so an unchanged trainer is a genuine A/A comparison.
The reference run also measures the rule's false-alarm rate and power (its fault probes),
so the report states them for this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rlbench.curves.profiles import builtin_names
from rlbench.runs import atomic_write_json


def _git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ValueError(f"git {' '.join(args)}: {proc.stderr.strip() or 'failed'}")
    return proc.stdout.strip()


def resolve_ref(ref: str, repo: Path) -> str:
    """REF → a full commit hash of `repo` (a clear error when REF or the repo is not there)."""
    try:
        _git("rev-parse", "--git-dir", cwd=repo)
    except (ValueError, OSError):
        raise ValueError(f"--baseline-ref needs a git checkout; {repo} is not one") from None
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo)
    except ValueError:
        raise ValueError(f"--baseline-ref {ref!r}: no such commit in {repo}") from None


def baseline_from_ref(ref: str, profile: str, out: Path, jobs: int, quiet: bool,
                      repo: Path | None = None, resume: bool = False) -> Path:
    """Run REF's `rlbench nightly --write-reference` for `profile` in a temporary worktree;
    return the reference file it wrote under `out`. The worktree is removed on every exit
    path (its run folders stay under `out/baseline` for the report's links).

    `resume` keeps the baseline jobs an interrupted A/B already finished, but only if they
    ran REF's same commit (recorded in `out/baseline/ref.json`): a branch name that has
    moved since would otherwise mix two commits' code in one reference."""
    repo = repo or Path(__file__).resolve().parents[2]
    commit = resolve_ref(ref, repo)
    out = out.resolve()
    stamp = out / "baseline" / "ref.json"
    if resume and stamp.is_file():
        before = json.loads(stamp.read_text()).get("commit")
        if before != commit:
            raise ValueError(f"--resume: the stored baseline jobs ran {before}, but "
                             f"--baseline-ref {ref!r} is now {commit}; re-run without --resume")
    atomic_write_json(stamp, {"ref": ref, "commit": commit})
    worktree = out / "baseline-src"
    if worktree.exists():
        _git("worktree", "remove", "--force", str(worktree), cwd=repo)
    out.mkdir(parents=True, exist_ok=True)
    _git("worktree", "add", "--detach", "--force", str(worktree), commit, cwd=repo)
    try:
        # A built-in profile is run by name, so REF runs its own definition of it (the
        # candidate's check of the reference then says if the two suites differ); a file is
        # passed as is.
        spec = profile if profile in builtin_names() else str(Path(profile).resolve())
        reference = out / "baseline" / "reference.json"
        cmd = [sys.executable, "-m", "rlbench.cli", "nightly", "--profile", spec,
               "--write-reference", str(reference), "--out", str(out / "baseline"),
               "--jobs", str(jobs)] + (["--quiet"] if quiet else []) + \
              (["--resume"] if resume else [])
        env = os.environ | {"PYTHONPATH": str(worktree)}
        print(f"[baseline] {ref} = {commit[:12]}: reference seeds in {worktree}",
              file=sys.stderr, flush=True)
        rc = subprocess.run(cmd, cwd=worktree, env=env).returncode
        if rc != 0 or not reference.is_file():
            raise RuntimeError(f"the baseline run at {ref} ({commit[:12]}) failed with exit "
                               f"status {rc}; its report is in {out / 'baseline'}")
        return reference
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=repo,
                       capture_output=True)
