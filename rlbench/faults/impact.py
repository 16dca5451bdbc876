"""How much each fault hurts learning (`rlbench faults impact`).

Each fault that lives in an algorithm's code path is switched on for a few seeds of a real
training run (through the nightly's `LocalExecutor`: a fresh process per run), and its final
eval return is compared with clean runs of the same seeds: mean difference with a bootstrap
95% CI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlbench.curves.executors import LocalExecutor
from rlbench.curves.records import Job, JobRecord
from rlbench.faults.catalogue import BY_ID, CATALOGUE, ENV_VAR, Fault, parse_faults
from rlbench.tables import text_table


def bootstrap_diff_ci(
    fault_returns: Sequence[float], clean_returns: Sequence[float],
    confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
) -> tuple[float, float, float]:
    """Mean(fault) − mean(clean) and its percentile-bootstrap CI (seeded: reproducible).

    Independent resampling of the two groups: a fault changes the whole trajectory, so
    runs sharing a seed are not meaningfully paired. Percentile rather than BCa because
    BCa is undefined for the constant samples a capped return (CartPole's 500) often gives.
    With 5 seeds per group the interval is rough; read it as "clearly hurts" or not.
    """
    from rlbench.curves.stats import mean_difference, two_sample_interval  # scipy: lazily

    x = np.asarray(fault_returns, dtype=float)
    y = np.asarray(clean_returns, dtype=float)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"need >= 2 returns per group for a CI, got {len(x)} and {len(y)}")
    diff = float(x.mean() - y.mean())
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # nothing to resample: the CI is the point
        return diff, diff, diff
    ci = two_sample_interval(mean_difference, x, y, confidence, n_resamples, seed)
    return diff, ci.low, ci.high


MIN_SEEDS_FOR_VERDICT = 5
"""Below this many seeds per group a percentile-bootstrap CI covers far less than 95%:
the numbers are still shown, the verdict says "too few seeds"."""


def verdict(low: float, high: float, n: int = MIN_SEEDS_FOR_VERDICT) -> str:
    """Plain-words reading of a CI of fault − clean from `n` seeds per group."""
    if n < MIN_SEEDS_FOR_VERDICT:
        return "too few seeds"
    if high < 0:
        return "hurts"
    if low > 0:
        return "helps"
    return "no clear effect"


@dataclass(frozen=True)
class Variant:
    """One arm of the impact study: a clean baseline or one fault, with its config setup."""

    name: str
    """"clean", "clean+<setup>" (a baseline for faults that need a setup), or the fault id."""
    fault: str | None
    setup: tuple[str, ...] = ()
    """NAME=VALUE settings from the fault's catalogue row (e.g. actors=2)."""
    baseline: str | None = None
    """The clean variant a fault is compared with: same setup, fault off."""


def impact_variants(algo: str, requested: str | Iterable[str] | None = None) -> list[Variant]:
    """Clean baselines (one per distinct setup) followed by each applicable fault."""
    faults = applicable_faults(algo, requested)

    def base(setup: tuple[str, ...]) -> str:
        return "clean" if not setup else "clean+" + ",".join(setup)

    setups = dict.fromkeys(f.setup for f in faults) or {(): None}
    return [Variant(base(s), None, s) for s in setups] + [
        Variant(f.id, f.id, f.setup, base(f.setup)) for f in faults
    ]


@dataclass
class ImpactRun:
    """One training run of the impact study."""

    variant: str
    seed: int
    status: str = "pending"  # ok | crashed | timeout
    final_eval_return: float | None = None
    seconds: float = 0.0
    error: str = ""
    out_dir: str = ""
    env: str = ""  # the env the trainer actually used (from its summary)


@dataclass
class ImpactRow:
    """One variant summarised over seeds."""

    id: str
    status: str  # ok | crashed
    returns: list[float] = field(default_factory=list)
    mean: float | None = None
    baseline: str | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    verdict: str = ""
    note: str = ""


def applicable_faults(algo: str, requested: str | Iterable[str] | None = None) -> list[Fault]:
    """Catalogue faults whose code path lives in `algo` (catalogue order), optionally only
    `requested` ones; a requested fault that does not apply is an error."""
    ids = parse_faults(requested) if requested else None
    if ids is not None:
        foreign = sorted(i for i in ids if algo not in BY_ID[i].algos)
        if foreign:
            raise ValueError(
                f"fault(s) {', '.join(foreign)} do not apply to {algo}: "
                + "; ".join(f"{i} applies to {', '.join(BY_ID[i].algos)}" for i in foreign)
            )
    return [f for f in CATALOGUE if algo in f.algos and (ids is None or f.id in ids)]


def _job(run: ImpactRun, variant: Variant, algo: str, changes: dict[str, Any],
         timeout: float) -> Job:
    """The curves executor's job for one run: the study's typed config changes plus this
    variant's fault."""
    if variant.fault:
        changes = changes | {"faults": (variant.fault,)}
    return Job(variant.name, algo, run.seed, tuple(changes.items()), timeout)


def _typed_changes(algo: str, steps: int, env_id: str | None,
                   settings: Sequence[str]) -> dict[str, Any]:
    """`--set NAME=VALUE` strings (the catalogue's setup, then the user's: the user's win)
    parsed by the config's field types, plus budget and env: a bad setting is an error
    here, before anything trains."""
    from rlbench.config import with_overrides
    from rlbench.trainers import config_class

    pairs = dict(kv.split("=", 1) for kv in settings)
    config = with_overrides(config_class(algo)(), pairs).replace(total_steps=steps)
    if env_id:
        config = config.replace(env_id=env_id)
    return {name: getattr(config, name) for name in ("total_steps", "env_id", *pairs)}


def _record_into(run: ImpactRun, record: JobRecord) -> None:
    run.seconds = float(record.wall_seconds or 0.0)
    if record.status == "ok":
        run.status, run.final_eval_return = "ok", record.returns[-1]
        return
    error = record.error or "no result"
    run.status = "timeout" if error.startswith("timed out") else "crashed"
    run.error = error.strip().splitlines()[0]


def summarise_impact(runs: Sequence[ImpactRun], variants: Sequence[Variant]) -> list[ImpactRow]:
    """One row per variant, in order. A variant with any crashed/hung seed is reported as
    "crashed" (no number: the surviving seeds would be a biased sample); a fault is compared
    with its own clean baseline (same setup)."""
    by_variant: dict[str, list[ImpactRun]] = {v.name: [] for v in variants}
    for r in runs:
        by_variant[r.variant].append(r)
    rows: dict[str, ImpactRow] = {}
    for v in variants:  # baselines come first, so they are summarised before their faults
        group = sorted(by_variant[v.name], key=lambda r: r.seed)
        bad = [r for r in group if r.status != "ok"]
        if bad or not group:
            reasons = sorted({r.error for r in bad})
            rows[v.name] = ImpactRow(v.name, "crashed", baseline=v.baseline,
                                     note=f"{len(bad)}/{len(group)} seeds: " + " | ".join(reasons))
            continue
        returns = [float(r.final_eval_return) for r in group]  # type: ignore[arg-type]
        row = rows[v.name] = ImpactRow(v.name, "ok", returns, float(np.mean(returns)), v.baseline)
        base = rows.get(v.baseline) if v.baseline else None
        if v.baseline and (base is None or base.status != "ok"):
            row.note = f"baseline {v.baseline} crashed: no comparison"
        elif base is not None and len(returns) >= 2:
            row.diff, row.ci_low, row.ci_high = bootstrap_diff_ci(returns, base.returns)
            row.verdict = verdict(row.ci_low, row.ci_high, min(len(returns), len(base.returns)))
            if returns == base.returns:
                # Same seed, same machine → same run: the fault changed nothing at all here.
                row.note = "every seed identical to the baseline: the fault's code path had no effect"
    return list(rows.values())


def format_impact(rows: Sequence[ImpactRow], header: str) -> str:
    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.1f}"

    table = text_table(
        [[r.id, "crashed" if r.status != "ok" else num(r.mean), r.baseline or "",
          num(r.diff), f"[{num(r.ci_low)}, {num(r.ci_high)}]" if r.ci_low is not None else "",
          r.verdict or ("crashed" if r.status != "ok" else ""), r.note]
         for r in rows],
        ["variant", "mean return", "baseline", "Δ vs baseline", "95% CI of Δ", "verdict", "note"],
    )
    return f"{header}\n{table}"


def plot_impact(rows: Sequence[ImpactRow], path: Path, title: str) -> None:
    """Bar chart of Δ vs baseline with CI whiskers; crashed faults labelled, not plotted."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display exists on CI machines
    import matplotlib.pyplot as plt

    faults = [r for r in rows if r.baseline is not None]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(faults) + 2), 4.5))
    xs = np.arange(len(faults))
    for x, r in zip(xs, faults):
        if r.diff is None:
            label = "crashed" if r.status != "ok" else "baseline crashed"
            ax.text(x, 0, label, rotation=90, ha="center", va="bottom", color="tab:red")
            continue
        color = {"hurts": "tab:red", "helps": "tab:green"}.get(r.verdict, "tab:gray")
        ax.bar(x, r.diff, color=color)
        ax.errorbar(x, r.diff, yerr=[[r.diff - r.ci_low], [r.ci_high - r.diff]],
                    color="black", capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    labels = [r.id if r.baseline == "clean" else f"{r.id}\n(vs {r.baseline})" for r in faults]
    ax.set_xticks(xs, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("final eval return: fault − clean")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)  # same atomicity as the JSON: never half a PNG


def impact(
    algo: str,
    seeds: int,
    steps: int,
    faults: str | Iterable[str] | None = None,
    out: Path | None = None,
    jobs: int = 1,
    env_id: str | None = None,
    sets: Sequence[str] = (),
    timeout: float = 3600.0,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Train `algo` clean and with each applicable fault for seeds 0..seeds-1, write
    `impact.json` (updated after every run) and `impact.png` under `out`; return the result."""
    from rlbench.runs import atomic_write_json
    from rlbench.trainers import TRAINERS

    if algo not in TRAINERS:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(TRAINERS) or 'none yet'}")
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 for a confidence interval, got {seeds}")
    if steps < 1 or jobs < 1:
        raise ValueError(f"steps and jobs must be >= 1, got steps={steps} jobs={jobs}")
    if os.environ.get(ENV_VAR):
        raise ValueError(f"unset {ENV_VAR}: impact switches each fault on itself")
    variants = impact_variants(algo, faults)
    changes = {v.name: _typed_changes(algo, steps, env_id, [*v.setup, *sets]) for v in variants}
    out = Path(out or f"runs/impact-{algo}")
    plan = [(ImpactRun(v.name, s), v) for v in variants for s in range(seeds)]
    jobs_by_id = {}
    for run, v in plan:
        job = _job(run, v, algo, changes[v.name], timeout)
        run.out_dir, run.env = str(out / "runs" / job.id), str(changes[v.name]["env_id"])
        jobs_by_id[job.id] = (job, run)
    runs = [r for r, _ in plan]
    meta = {"algo": algo, "env": env_id, "steps": steps, "seeds": list(range(seeds)),
            "sets": list(sets), "variants": [asdict(v) for v in variants]}

    def save(rows: list[ImpactRow] | None) -> None:
        atomic_write_json(out / "impact.json", {
            **meta, "complete": rows is not None,
            "rows": [asdict(r) for r in rows or []],
            "runs": [asdict(r) for r in runs if r.status != "pending"],
        })

    done = 0

    def on_result(record: JobRecord) -> None:  # called in this thread as each job ends
        nonlocal done
        r = jobs_by_id[record.job.id][1]
        _record_into(r, record)
        done += 1
        value = f"{r.final_eval_return:.1f}" if r.status == "ok" else f"{r.status}: {r.error}"
        log(f"[impact] {done}/{len(runs)} {r.variant} seed {r.seed}: {value} ({r.seconds:.0f} s)")
        save(None)

    # The nightly's executor: one fresh process per run in its own process group (a fault
    # that kills the trainer or its actors takes only that run down; a hang ends at
    # `timeout`; Ctrl-C stops every run), one intra-op thread each.
    LocalExecutor(jobs).run([job for job, _ in jobs_by_id.values()], out / "runs", on_result)
    rows = summarise_impact(runs, variants)
    save(rows)
    env_used = runs[0].env
    title = (f"{algo} on {env_used}: final eval return, fault − clean baseline\n"
             f"{seeds} seeds × {steps} steps; bar: mean Δ, whiskers: 95% bootstrap CI")
    plot_impact(rows, out / "impact.png", title)
    return {**meta, "rows": rows, "title": title, "out": str(out)}


