"""The nightly verdict: `verdict.json`, `report.md`, `report.html` and one PNG per entry.

Entry verdicts: pass / improved / regressed from the rule; "error" when any of the entry's
jobs crashed or timed out, "incomplete" when any never finished (interrupted run). Errors
and incomplete entries are never compared: half a seed set is neither a pass nor a
regression.

Exit status: 1 when anything regressed; otherwise 3 when anything is error/incomplete (a
nightly job whose trainer crashed must not turn CI green, yet must not read as a
regression); otherwise 0.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlbench.curves.compare import IMPROVED, PASS, REGRESSED, Comparison, Rule
from rlbench.curves.plots import plot_curves
from rlbench.curves.records import ERROR, INCOMPLETE, CurveSet, JobRecord, slug
from rlbench.runs import atomic_write_json, atomic_write_text

EXIT_OK, EXIT_REGRESSED, EXIT_UNFINISHED = 0, 1, 3


@dataclass
class EntryResult:
    """Everything the report says about one entry."""

    name: str
    verdict: str  # pass | improved | regressed | error | incomplete
    records: list[JobRecord]
    candidate: CurveSet | None  # the ok seeds (also shown for error/incomplete entries)
    reference: CurveSet | None
    comparison: Comparison | None = None
    note: str = ""  # e.g. "fault probe: expected to regress"
    plot: str | None = None  # path relative to the report folder
    error: str = ""  # why a finished entry could not be compared

    def problems(self) -> list[JobRecord]:
        return [r for r in self.records if r.status in (ERROR, INCOMPLETE)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "note": self.note,
            "seeds": sorted(r.job.seed for r in self.records),
            "statuses": {str(r.job.seed): r.status for r in self.records},
            "errors": {str(r.job.seed): r.error for r in self.problems()},
            "comparison": self.comparison.to_dict() if self.comparison else None,
            "plot": self.plot,
            "error": self.error,
        }


@dataclass
class ReportContext:
    """What the report says about the run as a whole."""

    title: str
    profile: str
    rule: Rule
    baseline: str
    baseline_meta: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)  # started, wall, executor, jobs, ...
    reference_written: str | None = None  # set by --write-reference: no verdict to give


def overall(entries: list[EntryResult]) -> tuple[str, int]:
    """Suite verdict and exit status (see the module docstring)."""
    verdicts = {e.verdict for e in entries if not e.note}  # fault probes never fail a run
    if REGRESSED in verdicts:
        return REGRESSED, EXIT_REGRESSED
    if verdicts & {ERROR, INCOMPLETE}:
        return (ERROR if ERROR in verdicts else INCOMPLETE), EXIT_UNFINISHED
    return (IMPROVED if IMPROVED in verdicts else PASS), EXIT_OK


def _fmt(x: float | None, digits: int = 1) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _summary_rows(entries: list[EntryResult]) -> list[list[str]]:
    rows = []
    for e in entries:
        ok = sum(r.status == "ok" for r in e.records)
        seeds = f"{ok}/{len(e.records)}" + (f" vs {e.reference.n}" if e.reference else "")
        cells = [e.name, e.verdict.upper() if e.verdict == REGRESSED else e.verdict, seeds]
        for score in ("final", "auc"):
            c = e.comparison.scores.get(score) if e.comparison else None
            if c is None:
                cells += ["—", "—"]
                continue
            cells.append(f"{c.candidate.fmt(2)} vs {c.reference.fmt(2)}")
            cells.append(f"{c.poi.fmt(2)} ({c.verdict})")
        rows.append(cells)
    return rows


_SUMMARY_HEADER = ["entry", "verdict", "seeds ok (vs ref)", "final IQM [CI] vs ref",
                   "P(final > ref) [CI]", "AUC IQM [CI] vs ref", "P(AUC > ref) [CI]"]


def _calibration_rows(calibration: dict[str, Any]) -> tuple[list[list[str]], list[list[str]]]:
    aa = [[name, f"{r['n_candidate']} vs {r['n_reference']} (pool {r['pool']['candidate']})",
           str(r["trials"]), str(r["trials"] - r["counts"]["pass"]),
           f"{_pct(r['false_alarm_rate'])} [{_pct(r['false_alarm_ci'][0])}, {_pct(r['false_alarm_ci'][1])}]"]
          for name, r in calibration.get("aa", {}).items()]
    power = [[name, r["fault"], f"{r['n_candidate']} vs {r['n_reference']}", str(r["trials"]),
              str(r["counts"]["regressed"]),
              f"{_pct(r['power'])} [{_pct(r['power_ci'][0])}, {_pct(r['power_ci'][1])}]"]
             for name, r in calibration.get("power", {}).items()]
    return aa, power


_AA_HEADER = ["entry", "split (candidate vs reference)", "trials", "false alarms",
              "rate [95% CI]"]
_POWER_HEADER = ["entry", "fault", "seeds", "trials", "regressed", "power [95% CI]"]


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc[1:]])


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _provenance_lines(whose: str, made: dict[str, Any]) -> list[str]:
    """A warning when a set of jobs ran on several machines (resumed elsewhere, or a
    distributed executor): its curves then differ by machine as well as by seed."""
    if not made.get("mixed_machines"):
        return []
    where = ", ".join(f"{m} ({n} jobs)" for m, n in made.get("job_machines", {}).items())
    span = made.get("jobs_finished") or ["?", "?"]
    return [f"**{whose} jobs ran on {len(made.get('job_machines', {}))} machines**: {where}; "
            f"finished between {span[0]} and {span[-1]}. Machine differences add to seed noise."]


def _resumed_note(made: dict[str, Any]) -> str:
    """Say when a reference was finished by --resume: its jobs ran at different times."""
    if not made.get("resumed_jobs"):
        return ""
    span = made.get("jobs_finished") or ["?", "?"]
    return (f"; {made['resumed_jobs']} of its jobs were kept from an interrupted run by "
            f"--resume, so its jobs finished between {span[0]} and {span[-1]}")


def _sections(ctx: ReportContext, entries: list[EntryResult], verdict: str, code: int):
    """The report as (heading, paragraphs, table, images) sections, rendered twice."""
    run = ctx.run
    meta = ctx.baseline_meta
    cal = ctx.calibration
    headline = (
        f"Reference written to `{ctx.reference_written}`. Below: each fault probe judged "
        "against it (it should regress), the reference curves, and the rule's measured "
        "false-alarm rate and power."
        if ctx.reference_written else f"Verdict: **{verdict}** (exit status {code}).")
    lines = [
        headline,
        f"Profile `{ctx.profile}`; executor {run.get('executor', '?')} with "
        f"{run.get('jobs', '?')} parallel job(s); {run.get('n_jobs', '?')} jobs "
        f"({run.get('resumed', 0)} reused by --resume); wall time {_fmt(run.get('wall_seconds'), 0)} s "
        f"on {run.get('machine', '?')}, 1-minute load average {_fmt(run.get('load_at_start'), 2)} "
        "when the jobs started (a busy machine makes wall times pessimistic).",
        f"Baseline `{ctx.baseline}`, made on {meta.get('machine', '?')} at "
        f"{meta.get('created', '?')} (rlbench commit {meta.get('git_commit', '?')})"
        + _resumed_note(meta) + ".",
        *_provenance_lines("This run's", run), *_provenance_lines("The baseline's", meta),
    ]
    sections = [("Summary", lines, (_SUMMARY_HEADER, _summary_rows(entries)), [])]
    rule_lines = [
        f"Rule: {ctx.rule.describe()}.",
        "Scores are normalised to the env's score range (CartPole 0–500, dm_control 0–1000); "
        "AUC is the time-averaged normalised eval return; P is rliable's probability of "
        "improvement; intervals are percentile stratified bootstraps over seeds "
        f"({ctx.rule.reps} resamples).",
    ]
    if cal:
        aa_rows, power_rows = _calibration_rows(cal)
        k = len(aa_rows)
        worst = max((r["false_alarm_rate"] for r in cal.get("aa", {}).values()), default=0.0)
        rule_lines.append(
            f"Calibration measured on {cal.get('machine', '?')} at {cal.get('created', '?')} from "
            f"real runs: A/A (same code, disjoint seed sets drawn from the reference pool; every "
            f"non-pass is a false alarm) and power (runs with a known fault vs clean reference "
            f"subsets). Trials reuse seeds from one pool, so the intervals understate the real "
            f"uncertainty. Suite-level false-alarm chance with {k} "
            f"entr{'y' if k == 1 else 'ies'} "
            f"<= 1-(1-{worst:.3f})^{k} = {_pct(1 - (1 - worst) ** k)}."
        )
        sections.append(("Rule and its measured error rates", rule_lines, None, []))
        sections.append(("False alarms (A/A)", [], (_AA_HEADER, aa_rows), []))
        sections.append(("Power on known faults", [], (_POWER_HEADER, power_rows), []))
    else:
        rule_lines.append("No calibration is stored with this baseline.")
        sections.append(("Rule", rule_lines, None, []))
    plots = [(e.name, e.plot) for e in entries if e.plot]
    sections.append(("Curves", ["Each curve's IQM across seeds with its 95% bootstrap band; grey is "
                                "the reference; faint lines are single seeds."], None, plots))
    problems = [[e.name, str(r.job.seed), r.status, (r.error or "").splitlines()[0][:200]]
                for e in entries for r in e.problems()]
    problems += [[e.name, "all", "error", e.error] for e in entries if e.error]
    if problems:
        sections.append(("Jobs that did not finish", [
            "Reported as such: these entries are neither passes nor regressions. "
            "`--resume` re-runs them."], (["entry", "seed", "status", "error"], problems), []))
    timing = [[e.name, str(r.job.seed), r.status, _fmt(r.wall_seconds), _fmt(r.cpu_seconds),
               _fmt(r.sps, 0)] for e in entries for r in e.records]
    cpu = sum(r.cpu_seconds or 0.0 for e in entries for r in e.records)
    sections.append(("Jobs", [
        f"Total CPU time of the jobs: {cpu / 60:.1f} CPU-minutes (independent of machine load; "
        "wall times on a shared machine are not)."],
        (["entry", "seed", "status", "wall s", "CPU s", "SPS"], timing), []))
    return sections


def write_report(
    out_dir: str | Path, ctx: ReportContext, entries: list[EntryResult]
) -> tuple[str, int]:
    """Plots, verdict.json, report.md and report.html into `out_dir`; the suite verdict
    and exit status."""
    out = Path(out_dir)
    for e in entries:
        if e.candidate is not None or e.reference is not None:
            rel = f"plots/{slug(e.name)}.png"
            plot_curves(out / rel, e.name, e.candidate, e.reference, e.verdict,
                        "with fault" if e.note else "candidate")
            e.plot = rel
    verdict, code = overall(entries)
    atomic_write_json(out / "verdict.json", {
        "verdict": verdict, "exit_status": code, "profile": ctx.profile, "title": ctx.title,
        "baseline": ctx.baseline, "rule": ctx.rule.to_dict(), "run": ctx.run,
        "calibration": ctx.calibration, "entries": {e.name: e.to_dict() for e in entries},
    })
    sections = _sections(ctx, entries, verdict, code)
    md = [f"# {ctx.title}", ""]
    body = []
    for heading, paragraphs, table, images in sections:
        md += [f"## {heading}", ""]
        md += [p + "\n" for p in paragraphs]
        body.append(f"<h2>{html.escape(heading)}</h2>")
        body += [f"<p>{_md_inline_to_html(p)}</p>" for p in paragraphs]
        if table:
            md += [_md_table(*table), ""]
            body.append(_html_table(*table))
        for name, path in images:
            md += [f"![{name}]({path})", ""]
            body.append(f'<figure><img src="{html.escape(path)}" alt="{html.escape(name)}">'
                        f"<figcaption>{html.escape(name)}</figcaption></figure>")
    atomic_write_text(out / "report.md", "\n".join(md).rstrip() + "\n")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;"
             "font-size:90%}figure{display:inline-block;margin:4px}")
    atomic_write_text(out / "report.html", (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(ctx.title)}"
        f"</title><style>{style}</style></head><body><h1>{html.escape(ctx.title)}</h1>"
        + "\n".join(body) + "</body></html>\n"))
    return verdict, code


def _md_inline_to_html(text: str) -> str:
    """`code` and **bold** of our own paragraphs (everything else escaped)."""
    out = html.escape(text)
    for mark, tag in (("**", "b"), ("`", "code")):
        parts = out.split(mark)
        out = "".join(p if i % 2 == 0 else f"<{tag}>{p}</{tag}>" for i, p in enumerate(parts))
    return out
