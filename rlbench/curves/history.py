"""`rlbench nightly history DIR... --out PAGE.html`: one static page over successive nights.

Each DIR is one `rlbench nightly --out DIR` folder. The page has

* a verdict table: one row per entry, one column per night (ordered by the time the night's
  verdict was made), each cell the verdict as text *and* colour, with a relative link to that
  night's `report.html`;
* per entry a trend plot: the deciding score's IQM (normalised AUC by default) with its 95%
  bootstrap interval band across nights, against the reference's band, plus each night's
  eval-return IQM curve from its job records; PNGs are embedded as base64 so the page is one
  self-contained file (a CI artifact keeps working when downloaded on its own);
* a note for every folder skipped because its run did not finish.

Entries that crashed or were interrupted are shown as "error" / "incomplete", never as a pass;
an entry a night did not run is "not run". Bad input (a folder that is not a nightly result,
a --write-reference calibration folder, no complete night at all) raises `HistoryError`,
which the CLI prints as one line with exit status 2.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rlbench.curves.records import OK, CurveSet, JobRecord
from rlbench.runs import atomic_write_text

NOT_RUN = "not run"
# Text is always shown next to the colour, so the table reads the same without colour.
COLOURS = {"pass": "#d4edda", "improved": "#cce5ff", "regressed": "#f5b7b1",
           "error": "#f0ad4e", "incomplete": "#fff3cd", NOT_RUN: "#eeeeee"}
_PLOT_COLOURS = {"pass": "tab:blue", "improved": "tab:green", "regressed": "tab:red",
                 "error": "tab:orange", "incomplete": "tab:olive"}


_PARTIAL = ("error", "incomplete")  # verdicts whose curves are only the seeds that finished


class HistoryError(ValueError):
    """Input that cannot make a history page (reported as one line, exit status 2)."""


@dataclass
class Night:
    """One finished nightly folder, as the page needs it."""

    path: Path
    created: dt.datetime
    created_text: str
    verdict: str
    profile: str
    commit: str
    entries: dict[str, dict[str, Any]]  # verdict.json "entries"
    curves: dict[str, CurveSet] = field(default_factory=dict)  # ok job records per entry

    def score(self, entry: str, which: str = "candidate_iqm") -> tuple[float, float, float] | None:
        """(point, low, high) of the entry's deciding score this night, None if not compared."""
        comparison = (self.entries.get(entry) or {}).get("comparison") or {}
        scores = comparison.get("scores") or {}
        key = "auc" if "auc" in scores else next(iter(scores), None)
        if key is None or which not in scores[key]:
            return None
        i = scores[key][which]
        return float(i["point"]), float(i["low"]), float(i["high"])


@dataclass(frozen=True)
class Skipped:
    """A folder left out of the page, and why (shown on the page)."""

    path: Path
    reason: str


def _parse_time(text: Any) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _job_curves(folder: Path) -> dict[str, CurveSet]:
    """Each entry's ok job records from `folder/jobs/*.json` as a curve set (raw returns)."""
    by_entry: dict[str, list[JobRecord]] = {}
    for path in sorted((folder / "jobs").glob("*.json")):
        try:
            record = JobRecord.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an unreadable record only costs its seed's line in the curve panel
        if record.status == OK:
            by_entry.setdefault(record.job.entry, []).append(record)
    # The score range only normalises scores; the panel plots raw returns, so any range does.
    return {name: CurveSet.from_records(name, recs, (0.0, 1.0)) for name, recs in by_entry.items()}


def load_night(folder: str | Path) -> Night | Skipped:
    """Read one nightly folder. An unfinished one comes back as `Skipped`; a folder that is
    no nightly result at all raises `HistoryError`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HistoryError(f"{folder}: not a folder (expected an `rlbench nightly --out` folder)")
    verdict_path = folder / "verdict.json"
    if not verdict_path.is_file():
        if (folder / "manifest.json").is_file() or (folder / "jobs").is_dir():
            # The nightly deletes verdict.json when it starts and writes it last.
            return Skipped(folder, "no verdict.json: the run did not finish "
                                   "(killed, or still running)")
        raise HistoryError(f"{folder}: not a nightly result (no verdict.json or manifest.json)")
    try:
        data = json.loads(verdict_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Skipped(folder, f"verdict.json is unreadable ({exc})")
    if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
        raise HistoryError(f"{verdict_path}: not a nightly verdict (no 'entries' table)")
    if any(isinstance(e, dict) and e.get("verdict") == "reference" for e in data["entries"].values()):
        raise HistoryError(f"{folder}: a --write-reference calibration report, not a nightly result")
    if not (folder / "report.html").is_file():
        return Skipped(folder, "report.html is missing: the report was not finished")
    run = data.get("run") if isinstance(data.get("run"), dict) else {}
    created_text = str(run.get("finished") or run.get("started") or "")
    created = _parse_time(created_text) if created_text else None
    if created is None:  # older or hand-made verdicts: the file's time is the best we have
        created = dt.datetime.fromtimestamp(verdict_path.stat().st_mtime, dt.UTC)
        created_text = created.strftime("%Y-%m-%dT%H:%M:%SZ") + " (file time)"
    return Night(folder, created, created_text, str(data.get("verdict", "?")),
                 str(data.get("profile", "?")), str(run.get("git_commit", "?")),
                 {str(k): v for k, v in data["entries"].items() if isinstance(v, dict)},
                 _job_curves(folder))


def load_nights(folders: Sequence[str | Path]) -> tuple[list[Night], list[Skipped]]:
    """Nights ordered by creation time (ties: by path) and the skipped folders."""
    if not folders:
        raise HistoryError("no nightly folders given")
    nights, skipped, seen = [], [], set()
    for folder in folders:
        key = Path(folder).resolve()
        if key in seen:  # the same folder twice (e.g. overlapping globs) is one night
            continue
        seen.add(key)
        loaded = load_night(folder)
        (nights if isinstance(loaded, Night) else skipped).append(loaded)
    if not nights:
        why = "; ".join(f"{s.path}: {s.reason}" for s in skipped)
        raise HistoryError(f"no finished nightly result among the folders given ({why})")
    nights.sort(key=lambda n: (n.created, str(n.path)))
    return nights, skipped


def entry_names(nights: Sequence[Night]) -> list[str]:
    """Every entry of any night, in order of first appearance (keeps the profile's order)."""
    names: dict[str, None] = {}
    for night in nights:
        names.update(dict.fromkeys(night.entries))
    return list(names)


def cell(night: Night, entry: str) -> tuple[str, str]:
    """(verdict text, detail) of one table cell."""
    e = night.entries.get(entry)
    if e is None:
        return NOT_RUN, ""
    verdict = str(e.get("verdict", "?"))
    statuses = e.get("statuses") or {}
    if verdict in _PARTIAL or e.get("error"):
        ok = sum(s == OK for s in statuses.values())
        first = next((str(m) for m in (e.get("errors") or {}).values() if m), e.get("error") or "")
        detail = f"{ok}/{len(statuses)} seeds ok"
        return verdict, detail + (f": {first.splitlines()[0][:160]}" if first else "")
    score = night.score(entry)
    return verdict, (f"AUC IQM {score[0]:.2f} [{score[1]:.2f}, {score[2]:.2f}]" if score else "")


def _short(night: Night) -> str:
    return night.created.strftime("%m-%d %H:%M")


def plot_entry(nights: Sequence[Night], entry: str) -> bytes:
    """PNG of one entry: its score's IQM band across nights | each night's IQM curve."""
    import matplotlib

    matplotlib.use("Agg")  # files only; CI machines have no display
    import matplotlib.pyplot as plt
    import numpy as np

    from rlbench.curves import stats

    x = np.arange(len(nights))
    cand = [n.score(entry) for n in nights]
    ref = [n.score(entry, "reference_iqm") for n in nights]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), dpi=90)
    try:
        for series, colour, label in ((ref, "0.5", "reference"), (cand, "tab:blue", "nightly")):
            # NaN leaves a gap: a night that ran no comparison is not interpolated over.
            mid, low, high = (np.array([s[i] if s else math.nan for s in series]) for i in range(3))
            left.fill_between(x, low, high, color=colour, alpha=0.25, linewidth=0)
            left.plot(x, mid, color=colour, label=f"{label} IQM, 95% CI")
            if label == "reference":  # its interval as a bar too, for nights without neighbours
                left.errorbar(x - 0.06, mid, yerr=[mid - low, high - mid], fmt=".", color=colour,
                              capsize=2)
        for i, night in enumerate(nights):
            verdict = cell(night, entry)[0]
            if verdict == NOT_RUN:
                continue
            if cand[i] is None:  # crashed / interrupted: marked, never drawn as a score
                left.axvline(i, color=_PLOT_COLOURS.get(verdict, "k"), linestyle="--", alpha=0.7)
                left.annotate(verdict, (i, 0.02), rotation=90, fontsize=8,
                              xycoords=("data", "axes fraction"))
            else:
                point, low, high = cand[i]  # error bar too: one night alone has no band
                left.errorbar(i, point, yerr=[[point - low], [high - point]], fmt="o",
                              color=_PLOT_COLOURS.get(verdict, "k"), capsize=3, markersize=6)
        left.set_xticks(x, [_short(n) for n in nights], rotation=30, fontsize=7, ha="right")
        left.set_xlim(-0.5, len(nights) - 0.5)
        left.set_ylabel("normalised AUC (IQM across seeds)")
        left.set_title(f"{entry}: deciding score per night", fontsize=9)
        left.grid(alpha=0.3)
        left.legend(fontsize=7, loc="best")
        drawn = [n for n in nights if entry in n.curves]
        cmap = plt.get_cmap("viridis")
        for k, night in enumerate(drawn):
            curves = night.curves[entry]
            colour = cmap(0.85 * k / max(1, len(drawn) - 1))
            mid, low, high = stats.curve_band(curves, reps=500)
            if k == len(drawn) - 1:  # band for the latest night only: several overlap unreadably
                right.fill_between(curves.steps, low, high, color=colour, alpha=0.25, linewidth=0)
            right.plot(curves.steps, mid, color=colour, linewidth=2 if k == len(drawn) - 1 else 1,
                       label=f"{_short(night)} ({curves.n} seeds"
                             + (f", {v})" if (v := cell(night, entry)[0]) in _PARTIAL else ")"))
        if drawn:
            right.legend(fontsize=7, loc="lower right")
        else:
            right.text(0.5, 0.5, "no job records", ha="center", transform=right.transAxes)
        right.set_xlabel("environment steps")
        right.set_ylabel("eval return (IQM across seeds)")
        right.set_title("eval-return curve per night (latest with 95% CI)", fontsize=9)
        right.grid(alpha=0.3)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    finally:
        plt.close(fig)
    return buf.getvalue()


def _link(page_dir: Path, target: Path) -> str:
    """Relative URL from the page's folder to `target` (the page may sit anywhere)."""
    rel = os.path.relpath(target.resolve(), page_dir.resolve())
    return quote(Path(rel).as_posix())


def render(nights: Sequence[Night], skipped: Sequence[Skipped], page: Path) -> str:
    """The page's HTML."""
    esc = html.escape
    page_dir = page.parent
    names = entry_names(nights)
    head = "".join(
        f'<th class="night"><a href="{esc(_link(page_dir, n.path / "report.html"))}">'
        f"{esc(n.created_text)}</a><br><small>{esc(n.path.resolve().name)} · {esc(n.commit)}</small></th>"
        for n in nights)
    rows = ['<tr class="suite"><th>suite</th>' + "".join(
        f'<td class="verdict" style="background:{COLOURS.get(n.verdict, "#fff")}">'
        f"<b>{esc(n.verdict)}</b></td>" for n in nights) + "</tr>"]
    for name in names:
        cells = []
        for i, night in enumerate(nights):
            verdict, detail = cell(night, name)
            cells.append(
                f'<td class="verdict" data-entry="{esc(name)}" data-night="{i}" '
                f'data-verdict="{esc(verdict)}" style="background:{COLOURS.get(verdict, "#fff")}">'
                f"<b>{esc(verdict)}</b>" + (f"<br><small>{esc(detail)}</small>" if detail else "")
                + "</td>")
        rows.append(f"<tr><th>{esc(name)}</th>{''.join(cells)}</tr>")
    profiles = sorted({n.profile for n in nights})
    intro = (f"{len(nights)} night(s), {esc(nights[0].created_text)} to "
             f"{esc(nights[-1].created_text)}; profile(s): {esc(', '.join(profiles))}. "
             "Columns are ordered by the time each night's verdict was made; each header links "
             "to that night's report. Crashed or interrupted entries read <b>error</b> / "
             "<b>incomplete</b> (never a pass); <b>not run</b>: the night had no such entry.")
    if len(profiles) > 1:
        intro += " <b>Note:</b> the nights ran different profiles, so budgets may differ."
    parts = [f"<h1>rlbench nightly history</h1><p>{intro}</p>"]
    if skipped:
        items = "".join(f"<li><code>{esc(str(s.path))}</code>: {esc(s.reason)}</li>" for s in skipped)
        parts.append(f'<h2>Skipped folders</h2><ul id="skipped">{items}</ul>')
    parts.append(f'<h2>Verdicts</h2><table id="verdicts"><thead><tr><th>entry</th>{head}</tr>'
                 f"</thead><tbody>{''.join(rows)}</tbody></table>")
    parts.append("<h2>Curves</h2><p>Left: the deciding score (normalised AUC) IQM of each night "
                 "with its 95% bootstrap interval band, grey the reference's; dots coloured by "
                 "verdict, dashed lines mark crashed or interrupted nights. Right: each night's "
                 "eval-return IQM curve from its job records.</p>")
    for name in names:
        png = base64.b64encode(plot_entry(nights, name)).decode("ascii")
        parts.append(f'<figure><img src="data:image/png;base64,{png}" alt="{esc(name)}">'
                     f"<figcaption>{esc(name)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1400px;margin:2em auto}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;"
             "font-size:90%;vertical-align:top}figure{margin:8px 0}img{max-width:100%}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>rlbench nightly history"
            f"</title><style>{style}</style></head><body>" + "\n".join(parts) + "</body></html>\n")


def write_history(folders: Sequence[str | Path], page: str | Path) -> tuple[list[Night], list[Skipped]]:
    """Build the page over `folders` and write it to `page` atomically."""
    page = Path(page)
    nights, skipped = load_nights(folders)
    atomic_write_text(page, render(nights, skipped, page))
    return nights, skipped


def cmd_history(folders: Sequence[str], page: str) -> int:
    """The CLI command: write the page, say where; bad input raises `HistoryError`."""
    nights, skipped = write_history(folders, page)
    print(f"history: {len(nights)} night(s), {len(skipped)} skipped -> {page}")
    return 0
