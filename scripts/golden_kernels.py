"""How far the replay goldens move under other CPU kernels, rounding noise and each fault.

By hand, not in CI (a few minutes on 2 cores):

    MUJOCO_GL=disable .venv/bin/python scripts/golden_kernels.py --markdown

Each row runs the replays of tests/golden/replay.py in a fresh process under one kernel
setting, then reports the largest deviation from the committed goldens
(tests/golden/data/replay_*.json) in the metric the tests use:
|got - golden| / max(|golden|, FLOOR). Kernel settings one machine can emulate:

* OPENBLAS_CORETYPE: numpy's OpenBLAS kernel (DQN's numpy acting path, not the updates);
* ATEN_CPU_CAPABILITY: torch's vectorised elementwise/reduction kernels;
* MKL_ENABLE_INSTRUCTIONS: the MKL sgemm behind torch's Linear layers;
* XLA_FLAGS=--xla_cpu_max_isa: the instruction set XLA compiles SAC's update for.

A setting the CPU cannot run (AVX-512 kernels on an AVX2 machine) falls back or fails; the
row says which. `--whole-run` adds the old whole-run golden (DQN CartPole 3k-step eval
return), which forks on a rounding tie. Rows `perturb` (every initial weight times
1 ± 2^-23, i.e. one float32 rounding) and `fault:<id>` measure sensitivity and power.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.golden.replay import deviation  # noqa: E402
from tests.golden.test_golden_replay import CASES, FLOOR, GOLDEN_RTOL  # noqa: E402

KERNELS: list[tuple[str, dict[str, str]]] = [
    ("default (this CPU)", {}),
    *[(f"OPENBLAS_CORETYPE={c}", {"OPENBLAS_CORETYPE": c})
      for c in ("Haswell", "SkylakeX", "Sandybridge")],
    *[(f"ATEN_CPU_CAPABILITY={c}", {"ATEN_CPU_CAPABILITY": c})
      for c in ("default", "avx2", "avx512")],
    *[(f"MKL_ENABLE_INSTRUCTIONS={c}", {"MKL_ENABLE_INSTRUCTIONS": c})
      for c in ("SSE4_2", "AVX", "AVX2")],
    *[(f"XLA --xla_cpu_max_isa={c}", {"XLA_FLAGS": f"--xla_cpu_max_isa={c}"})
      for c in ("SSE4_2", "AVX")],
]

CHILD = """
import json, sys
from tests.golden.test_golden_replay import CASES
from tests.golden.replay import replay_torch, replay_sac
perturb, faults, whole = float(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
out = {}
for name, (fn, kwargs) in CASES.items():
    try:
        out[name] = {"torch": replay_torch, "sac": replay_sac}[fn](**kwargs, perturb=perturb, faults=faults)
    except Exception as e:  # a fault may crash the update: that also fails the golden
        out[name] = {"error": f"{type(e).__name__}: {e}"[:120]}
if whole:
    import tempfile, torch
    from rlbench.config import DQNConfig
    from rlbench.trainers.dqn_torch import DQNAgent
    from rlbench.trainers.q_learning import fit
    cfg = DQNConfig(env_id="CartPole-v1", seed=0, total_steps=3_000, learning_starts=500,
                    train_frequency=2, batch_size=64, eval_interval=1_000, eval_episodes=3,
                    log_interval=500)
    with tempfile.TemporaryDirectory() as d:
        summary, _ = fit(cfg, DQNAgent, "dqn", d, progress=False)
    out["whole_run_dqn_eval_3000"] = summary["eval_history"][-1]["return_mean"]
print("RESULT" + json.dumps(out))
"""


def run_case(env: dict[str, str], perturb: float = 0.0, faults: str = "",
             whole: bool = False) -> dict | str:
    """One fresh process with `env` added; its replay values, or the reason it failed."""
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(perturb), faults, "1" if whole else "0"],
        cwd=ROOT, env={**os.environ, "MUJOCO_GL": "disable", **env},
        capture_output=True, text=True, timeout=900,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[len("RESULT"):])
    tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return f"failed (exit {proc.returncode}): {tail[:100]}"


def summarise(result: dict | str, goldens: dict[str, dict]) -> list[str]:
    """Per case: the largest deviation from its golden (or the error)."""
    if isinstance(result, str):
        return [result] * len(CASES)
    cells = []
    for name in CASES:
        got = result[name]
        if "error" in got:
            cells.append(f"error: {got['error'][:60]}")
            continue
        worst = max(deviation(got[k], v, FLOOR) for k, v in goldens[name].items())
        cells.append(f"{worst:.1e}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--whole-run", action="store_true", help="add the old whole-run DQN golden")
    parser.add_argument("--faults", action="store_true", help="add one row per catalogued fault")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument("--json", type=Path, help="write all raw results here")
    args = parser.parse_args()

    from rlbench.faults import CATALOGUE

    goldens = {name: json.loads((ROOT / "tests/golden/data" / f"replay_{name}.json").read_text())
               for name in CASES}
    rows: list[tuple[str, dict | str]] = []
    for label, env in KERNELS:
        rows.append((label, run_case(env, whole=args.whole_run)))
        print(label, "done", file=sys.stderr)
    for seed_scale in (2.0**-23, 2.0**-20):
        rows.append((f"perturb x(1 ± {seed_scale:.1e})", run_case({}, perturb=seed_scale)))
    if args.faults:
        for fault in CATALOGUE:
            extra = {"RLBENCH_FAULTS": fault.id}
            rows.append((f"fault:{fault.id}", run_case(extra)))
            print(fault.id, "done", file=sys.stderr)

    header = ["setting", *CASES, *(["whole-run DQN eval@3k"] if args.whole_run else [])]
    rtols = ", ".join(f"{name} {GOLDEN_RTOL[CASES[name][0]]:g}" for name in CASES)
    print(f"largest deviation |got - golden| / max(|golden|, {FLOOR}); golden rtol: {rtols}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for label, result in rows:
        cells = summarise(result, goldens)
        if args.whole_run:
            whole = result.get("whole_run_dqn_eval_3000") if isinstance(result, dict) else None
            cells.append("" if whole is None else f"{whole:g}")
        print("| " + " | ".join([label, *cells]) + " |")
    if args.json:
        args.json.write_text(json.dumps(dict(rows), indent=1))


if __name__ == "__main__":
    main()
