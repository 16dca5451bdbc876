"""One PNG per (algo, env): each curve's IQM across seeds with its 95% bootstrap band,
drawn against the reference's band."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display exists on CI machines
import matplotlib.pyplot as plt  # noqa: E402

from rlbench.curves import stats  # noqa: E402
from rlbench.curves.records import CurveSet  # noqa: E402

_COLOURS = {"pass": "tab:blue", "improved": "tab:green", "regressed": "tab:red"}


def plot_curves(
    path: str | Path,
    title: str,
    candidate: CurveSet | None,
    reference: CurveSet | None,
    verdict: str = "",
    candidate_label: str = "candidate",
) -> Path:
    """Write the comparison plot of one entry to `path` (PNG) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    try:
        for curves, label, colour in (
            (reference, "reference", "0.35"),
            (candidate, candidate_label, _COLOURS.get(verdict, "tab:orange")),
        ):
            if curves is None:
                continue
            mid, low, high = stats.curve_band(curves)
            ax.fill_between(curves.steps, low, high, color=colour, alpha=0.25, linewidth=0)
            ax.plot(curves.steps, mid, color=colour, linewidth=2,
                    label=f"{label}: IQM of {curves.n} seeds, 95% CI")
            for row in curves.returns:  # faint per-seed lines: one diverged seed stays visible
                ax.plot(curves.steps, row, color=colour, alpha=0.15, linewidth=0.8)
        lo, hi = (candidate or reference).score_range if (candidate or reference) else (0, 1)
        ax.set_ylim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
        ax.set_xlabel("environment steps")
        ax.set_ylabel("eval return (raw)")
        ax.set_title(f"{title}{f' — {verdict}' if verdict else ''}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        tmp = path.with_name(f".{path.name}.tmp")
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)  # atomic: a reader never sees half a PNG
    finally:
        plt.close(fig)
    return path
