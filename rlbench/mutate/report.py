"""Results of a mutation run: the kill matrix per operator and per module, the score,
and the terminal, markdown and JSON renderings (files written atomically).

score = (killed + timeout) / (total - equivalent - error). A mutant no test executes
("not-covered") counts against the score like a survivor: the suite cannot catch it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlbench.mutate.generate import Mutant
from rlbench.mutate.operators import OPERATORS
from rlbench.runs import atomic_write_text as write_atomic  # one atomic writer

STATUSES = ("killed", "timeout", "survived", "not-covered", "equivalent", "error")


@dataclass
class Result:
    """One mutant and what became of it."""

    mutant: Mutant
    status: str
    seconds: float = 0.0
    tests: int = 0  # tests selected for it
    detail: str = ""  # the failing test, the equivalence reason, or the error

    def to_dict(self) -> dict[str, Any]:
        return {**self.mutant.to_dict(), "status": self.status, "seconds": round(self.seconds, 3),
                "tests": self.tests, "detail": self.detail}


def module_of(path: str) -> str:
    """rlbench/trainers/sac_jax.py -> rlbench.trainers.sac_jax"""
    return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def score(counts: Counter) -> float | None:
    denominator = sum(counts.values()) - counts["equivalent"] - counts["error"]
    if denominator <= 0:
        return None
    return (counts["killed"] + counts["timeout"]) / denominator


def matrix(results: list[Result], by: str) -> dict[str, Counter]:
    """Status counts per operator (`by="operator"`) or per module (`by="module"`)."""
    rows: dict[str, Counter] = {}
    for r in results:
        key = r.mutant.operator if by == "operator" else module_of(r.mutant.file)
        rows.setdefault(key, Counter())[r.status] += 1
    return dict(sorted(rows.items()))


@dataclass
class Report:
    results: list[Result]
    wall_seconds: float
    workers: int
    min_score: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def totals(self) -> Counter:
        return Counter(r.status for r in self.results)

    @property
    def score(self) -> float | None:
        return score(self.totals)

    @property
    def passed(self) -> bool:
        s = self.score
        return s is None or s >= self.min_score

    def to_dict(self) -> dict[str, Any]:
        def rows(by: str) -> dict[str, dict[str, Any]]:
            return {k: {**{s: c[s] for s in STATUSES}, "total": sum(c.values()), "score": score(c)}
                    for k, c in matrix(self.results, by).items()}

        return {
            "score": self.score, "min_score": self.min_score, "passed": self.passed,
            "wall_seconds": round(self.wall_seconds, 1), "workers": self.workers,
            "totals": {s: self.totals[s] for s in STATUSES} | {"total": len(self.results)},
            "by_operator": rows("operator"), "by_module": rows("module"),
            "operators": {name: op.doc for name, op in OPERATORS.items()},
            "settings": self.settings,
            "mutants": [r.to_dict() for r in self.results],
        }

    # -- renderings -------------------------------------------------------------------------
    def _table(self, by: str) -> list[str]:
        head = [by, "total", *STATUSES, "score"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for key, c in matrix(self.results, by).items():
            s = score(c)
            lines.append("| " + " | ".join([f"`{key}`", str(sum(c.values())),
                                            *(str(c[x]) for x in STATUSES),
                                            "n/a" if s is None else f"{s:.0%}"]) + " |")
        return lines

    def headline(self) -> str:
        s = self.score
        t = self.totals
        partial = sum(r.detail.startswith("partial:") for r in self.results)
        return (f"mutation score {'n/a' if s is None else f'{s:.1%}'} "
                f"(min {self.min_score:.0%}): {len(self.results)} mutants, "
                + ", ".join(f"{t[x]} {x}" for x in STATUSES if t[x])
                + (f" ({partial} survivors ran only part of their tests)" if partial else "")
                + f"; {self.wall_seconds:.0f} s on {self.workers} worker(s)")

    def markdown(self) -> str:
        out = ["# rlbench mutate", "", self.headline(), "",
               "Score = (killed + timeout) / (total - equivalent - error). "
               "Not-covered mutants count as survivors.", "",
               "## Per operator", "", *self._table("operator"), "",
               "## Per module", "", *self._table("module"), ""]
        survivors = [r for r in self.results if r.status in ("survived", "not-covered")]
        out += ["## Survivors", ""]
        if not survivors:
            out += ["None.", ""]
        for r in survivors:
            m = r.mutant
            out += [f"### `{m.file}:{m.line}` {m.operator} in `{m.function}` ({r.status}, "
                    f"{r.tests} tests, key `{m.key}`)", ""]
            if r.detail:
                out += [r.detail, ""]
            out += ["```diff", m.diff.rstrip(), "```", ""]
        equivalents = [r for r in self.results if r.status == "equivalent"]
        if equivalents:
            out += ["## Equivalent (allow-listed)", ""]
            out += [f"- `{r.mutant.file}:{r.mutant.line}` {r.mutant.operator} "
                    f"`{r.mutant.original}` -> `{r.mutant.replacement}`: {r.detail}"
                    for r in equivalents]
            out.append("")
        errors = [r for r in self.results if r.status == "error"]
        if errors:
            out += ["## Errors", ""]
            out += [f"- `{r.mutant.file}:{r.mutant.line}` {r.mutant.operator}: {r.detail}"
                    for r in errors]
            out.append("")
        return "\n".join(out)

    def text(self, max_survivors: int = 50) -> str:
        out = ["", *self._table("operator"), "", *self._table("module"), ""]
        survivors = [r for r in self.results if r.status in ("survived", "not-covered")]
        for r in survivors[:max_survivors]:
            m = r.mutant
            out.append(f"  {r.status:<11} {m.file}:{m.line} {m.operator}: "
                       f"{m.original[:50]} -> {m.replacement[:50]}  [{m.key}]")
        if len(survivors) > max_survivors:
            out.append(f"  ... {len(survivors) - max_survivors} more (see --markdown/--json)")
        out += ["", self.headline()]
        return "\n".join(out)


def write_json(path: str | Path, report: Report) -> None:
    write_atomic(path, json.dumps(report.to_dict(), indent=1) + "\n")
