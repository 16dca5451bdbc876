"""`rlbench nightly history`: the page lists every night (in creation order) and entry with
its verdict, crashed entries read as such, unfinished folders are skipped with a note, links
resolve, bad input exits 2. The nights are written by the nightly's own writers
(`write_report`, `JobRecord.to_dict`) on synthetic curves: the smoke profile is too slow to
run per test."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from rlbench.cli import build_parser, main
from rlbench.curves.compare import Rule, compare
from rlbench.curves.history import load_nights
from rlbench.curves.records import ERROR, INCOMPLETE, OK, CurveSet, Job, JobRecord
from rlbench.curves.report import EntryResult, ReportContext, write_report
from rlbench.runs import atomic_write_json
from tests.curves.test_curves_compare import curve_set

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DQN, IQN, SAC = "dqn/CartPole-v1", "iqn/CartPole-v1", "sac/CartPole-v1"


def _records(curves: CurveSet, statuses: dict[int, str]) -> list[JobRecord]:
    out = []
    for i, seed in enumerate(curves.seeds):
        job = Job(curves.name, curves.algo, seed, (("env_id", curves.env),))
        status = statuses.get(seed, OK)
        out.append(JobRecord(job, OK, tuple(int(s) for s in curves.steps), tuple(curves.returns[i]),
                             12.0, 1500.0, cpu_seconds=10.0) if status == OK
                   else JobRecord(job, status, error=f"{status}: job {seed} failed on purpose"))
    return out


def _entry(name: str, plateau: float, seed: int, statuses: dict[int, str] | None = None,
           ref_plateau: float = 0.6) -> EntryResult:
    """One entry as `nightly._judge` makes it: compared unless a job did not finish."""
    statuses = statuses or {}
    cand = curve_set(plateau, 5, seed=seed, name=name)
    ref = curve_set(ref_plateau, 10, seed=1, first_seed=100, name=name)
    records = _records(cand, statuses)
    if statuses:
        ok = CurveSet.from_records(name, records, cand.score_range)
        return EntryResult(name, ERROR if ERROR in statuses.values() else INCOMPLETE, records, ok, ref)
    comparison = compare(cand, ref)
    return EntryResult(name, comparison.verdict, records, cand, ref, comparison)


def _night(folder: Path, finished: str, entries: list[EntryResult]) -> Path:
    """A nightly output folder written by the nightly's writers."""
    run = {"started": finished.replace("T03", "T02"), "finished": finished,
           "git_commit": "abc1234", "executor": "local", "jobs": 2}
    atomic_write_json(folder / "manifest.json", {"profile": "quick", "started": run["started"]})
    for e in entries:
        for r in e.records:
            atomic_write_json(folder / "jobs" / f"{r.job.id}.json", r.to_dict())
    write_report(folder, ReportContext("rlbench nightly — profile quick", "quick", Rule(),
                                       "ref.json", run=run), entries)
    return folder


# night folder name -> (finished, {entry: verdict}); names sort unlike the times on purpose.
EXPECTED = {
    "c-first": ("2026-01-01T03:00:00Z", {DQN: "pass", IQN: "regressed"}),
    "a-second": ("2026-01-02T03:00:00Z", {DQN: "error", IQN: "pass", SAC: "improved"}),
    "b-third": ("2026-01-03T03:00:00Z", {DQN: "incomplete"}),
}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nights")
    _night(root / "c-first", EXPECTED["c-first"][0],
           [_entry(DQN, 0.6, 2), _entry(IQN, 0.15, 3)])
    _night(root / "a-second", EXPECTED["a-second"][0],
           [_entry(DQN, 0.6, 4, {2: ERROR}), _entry(IQN, 0.6, 5), _entry(SAC, 0.9, 6, ref_plateau=0.2)])
    _night(root / "b-third", EXPECTED["b-third"][0], [_entry(DQN, 0.6, 7, {3: INCOMPLETE, 4: INCOMPLETE})])
    # Unfinished folders: a run still going (manifest only), a report cut off before its html.
    atomic_write_json(root / "running" / "manifest.json", {"profile": "quick"})
    shutil.copytree(root / "c-first", root / "cut-off")
    (root / "cut-off" / "report.html").unlink()
    return root


@pytest.fixture(scope="module")
def page(nights: Path) -> Path:
    out = nights / "site" / "sub" / "history.html"  # away from the nights: links must be relative
    folders = [nights / n for n in ("b-third", "running", "c-first", "cut-off", "a-second")]
    assert main(["nightly", "history", *map(str, folders), "--out", str(out)]) == 0
    return out


def _cells(text: str) -> dict[tuple[str, int], str]:
    return {(m[0], int(m[1])): m[2] for m in re.findall(
        r'data-entry="([^"]+)" data-night="(\d+)" data-verdict="([^"]+)"', text)}


def test_fixture_verdicts_are_what_the_page_must_show(nights: Path) -> None:
    loaded, _ = load_nights([nights / n for n in EXPECTED])
    for night in loaded:
        assert {k: v["verdict"] for k, v in night.entries.items()} == EXPECTED[night.path.name][1]


def test_page_lists_every_night_in_created_order_and_every_verdict(page: Path) -> None:
    text = page.read_text()
    order = ["c-first", "a-second", "b-third"]  # by finish time, not by argument or name order
    headers = re.findall(r'<th class="night"><a href="([^"]+)">([^<]+)</a>', text)
    assert [Path(unquote(h)).parent.name for h, _ in headers] == order
    assert [t for _, t in headers] == [EXPECTED[n][0] for n in order]
    cells = _cells(text)
    entries = [DQN, IQN, SAC]
    assert set(cells) == {(e, i) for e in entries for i in range(3)}  # every entry x every night
    for i, name in enumerate(order):
        for e in entries:
            assert cells[e, i] == EXPECTED[name][1].get(e, "not run"), (e, name)
    # A crashed entry says so and how many seeds finished; it is never shown as a pass.
    crashed = re.search(r'data-entry="dqn/CartPole-v1" data-night="1"[^>]*><b>([^<]+)</b><br>'
                        r"<small>([^<]+)</small>", text)
    assert crashed and crashed[1] == "error" and crashed[2].startswith("4/5 seeds ok: error")


def test_unfinished_folders_are_skipped_with_a_note(page: Path, nights: Path) -> None:
    text = page.read_text()
    notes = re.search(r'<ul id="skipped">(.*?)</ul>', text, re.S)
    assert notes, "no skipped-folders note"
    assert str(nights / "running") in notes[1] and "did not finish" in notes[1]
    assert str(nights / "cut-off") in notes[1] and "report.html is missing" in notes[1]
    assert "cut-off" not in re.search(r'<table id="verdicts">.*?</table>', text, re.S)[0]


def test_links_resolve_and_plots_are_embedded(page: Path) -> None:
    text = page.read_text()
    links = re.findall(r'<a href="([^"]+)"', text)
    assert len(links) == 3
    for link in links:
        assert not link.startswith(("/", "file:")), "links must be relative (artifact moves)"
        assert (page.parent / unquote(link)).resolve().is_file(), link
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', text)
    assert [alt for _, alt in images] == [DQN, IQN, SAC]
    assert all(base64.b64decode(data).startswith(PNG_MAGIC) for data, _ in images)
    assert not [p for p in page.parent.iterdir() if p != page], "temp files left beside the page"


def test_nightly_without_subcommand_still_parses() -> None:
    args = build_parser().parse_args(["nightly", "--profile", "smoke", "--out", "o", "--quiet"])
    assert args.func.__name__ == "cmd_nightly" and args.out == "o"


@pytest.mark.parametrize("case", ["missing", "not-nightly", "only-unfinished", "calibration"])
def test_bad_input_is_one_line_and_exit_2(case: str, nights: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / case
    if case == "not-nightly":
        (folder / "plots").mkdir(parents=True)
    elif case == "calibration":  # a --write-reference folder judges probes, not a nightly
        shutil.copytree(nights / "c-first", folder)
        text = (folder / "verdict.json").read_text().replace('"verdict": "pass"',
                                                              '"verdict": "reference"')
        (folder / "verdict.json").write_text(text)
    args = [str(nights / "running"), str(nights / "cut-off")] if case == "only-unfinished" else [str(folder)]
    out = tmp_path / "page.html"
    assert main(["nightly", "history", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlbench: error: ") and err.count("\n") == 1, err
    assert not out.exists()


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser_or_skip() -> str:
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        pytest.skip(f"no headless browser installed (looked for {', '.join(BROWSERS)} on PATH); "
                    "`.ci/run` installs Debian's chromium, GitHub's ubuntu runners have google-chrome")
    return browser


def test_pages_render_in_a_headless_browser(page: Path, nights: Path, tmp_path: Path) -> None:
    """The history page and a night's report, opened in a real Chromium through Playwright:
    they load without console or page errors, every plot decodes to a non-empty image, and the
    report link on the history page opens that night's report. Screenshots go to
    $RLBENCH_SCREENSHOTS when it is set (for a person to look at), else to tmp_path."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright (test group) not installed")
    browser_path = _browser_or_skip()
    shots = Path(os.environ.get("RLBENCH_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                   if m.type in ("error", "warning") else None)
            tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            tab.on("requestfailed", lambda r: problems.append(f"failed to load {r.url}"))
            for url, name, n_images in [(page.resolve().as_uri(), "history", 3),
                                        ((nights / "c-first" / "report.html").resolve().as_uri(), "report", 2)]:
                tab.goto(url, wait_until="load")
                sizes = tab.eval_on_selector_all(
                    "img", "imgs => imgs.map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
                assert len(sizes) == n_images, (name, sizes)
                assert all(done and w > 0 and h > 0 for done, w, h in sizes), (name, sizes)
                tab.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                assert (shots / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
            # The history page's first night link opens a report that renders (relative links).
            tab.goto(page.resolve().as_uri())
            tab.click("th.night a >> nth=0")
            tab.wait_for_load_state("load")
            assert tab.url.endswith("/c-first/report.html"), tab.url
            assert tab.eval_on_selector_all("img", "imgs => imgs.every(i => i.naturalWidth > 0)")
            assert not problems, problems
        finally:
            browser.close()


def test_page_renders_with_the_browser_cli(page: Path, tmp_path: Path) -> None:
    """Without Playwright: the DOM Chromium builds from the page holds the table and plots."""
    browser = _browser_or_skip()
    dom = subprocess.run(
        [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={tmp_path}",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    assert '<table id="verdicts">' in dom
    assert len(_cells(dom)) == 9 and "regressed" in dom and "improved" in dom
    assert len(re.findall(r'<img src="data:image/png;base64,', dom)) == 3
