"""The fault catalogue stays in sync with its docs and its detectors; faults default off and
unknown ids are a clear error. All checks read files or run in-process: seconds in total."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlbench.cli import main
from rlbench.config import TrainConfig
from rlbench.faults import BY_ID, CATALOGUE, ENV_VAR, Fault, active_faults, parse_faults
from rlbench.faults.detectors import (
    KILL_MATRIX_TEST,
    detector_problem,
    detector_problems,
    marked_detectors,
    with_detectors,
)
from rlbench.trainers import TRAINERS, backend_available, config_class

ROOT = Path(__file__).resolve().parents[2]
# DESIGN.md lives beside the checkout in the project workspace (../shared), not in the repo.
DESIGN = ROOT.parent / "shared" / "DESIGN.md"
FAULT_ID = re.compile(r"^[a-z]+(-[a-z]+)+$")


def _fault_table(markdown: str) -> dict[str, str]:
    """id → source cell of the first table headed `| id | source |` under the
    '## Fault catalogue' heading (later tables there, e.g. impact results, are not it)."""
    match = re.search(r"^##+ Fault catalogue.*?$(.*?)(?=^## |\Z)", markdown, re.M | re.S | re.I)
    assert match, "no '## Fault catalogue' section"
    table = re.search(r"^\| *id *\| *source *\|.*?$(.*?)(?=^[^|]|\Z)", match.group(1), re.M | re.S)
    assert table, "no table headed '| id | source |' in the fault catalogue section"
    rows = {}
    for line in table.group(1).splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and FAULT_ID.match(cells[0]):
            rows[cells[0]] = cells[1]
    return rows


def _short(source: str, item: str) -> str:
    return ("analysis " if "training-loop" in source else "multiprocessing ") + item


def test_catalogue_ids_unique_and_well_formed() -> None:
    ids = [f.id for f in CATALOGUE]
    assert len(ids) == len(set(ids)) == len(BY_ID) == 16
    for f in CATALOGUE:
        assert FAULT_ID.match(f.id), f.id
        assert f.bug and f.fix and re.match(r"^#\d+$", f.item), f.id
        assert f.algos and set(f.algos) <= {"sac", "dqn", "iqn"}, f.id


def test_catalogue_matches_readme_fault_table() -> None:
    readme = _fault_table((ROOT / "README.md").read_text())
    assert readme == {f.id: _short(f.source, f.item) for f in CATALOGUE}, (
        "README's fault table is out of sync with rlbench/faults/catalogue.py; regenerate it with "
        "`rlbench faults list --markdown`"
    )


@pytest.mark.skipif(not DESIGN.is_file(), reason="../shared/DESIGN.md is not beside this checkout")
def test_catalogue_matches_design_fault_list() -> None:
    design = _fault_table(DESIGN.read_text())
    assert set(design) == set(BY_ID)
    for fault_id, source in design.items():  # DESIGN writes "analysis #1", "multiprocessing #1"
        fault = BY_ID[fault_id]
        assert source == _short(fault.source, fault.item), fault_id


def test_catalogue_every_fault_has_detectors() -> None:
    missing = [f.id for f in with_detectors(CATALOGUE, ROOT) if not f.detectors]
    assert not missing, f"faults without @pytest.mark.detects tests: {', '.join(missing)}"


def test_catalogue_every_detector_exists_and_runs_by_default() -> None:
    assert detector_problems(with_detectors(CATALOGUE, ROOT), ROOT) == {}


def test_detects_markers_name_catalogue_faults() -> None:
    unknown = sorted(set(marked_detectors(ROOT)) - set(BY_ID))
    assert not unknown, f"@pytest.mark.detects names unknown fault ids: {', '.join(unknown)}"


def test_marked_detectors_found_on_functions_and_methods(tmp_path: Path) -> None:
    (tmp_path / "tests" / "sub").mkdir(parents=True)
    (tmp_path / "tests" / "sub" / "test_m.py").write_text(
        "import pytest\n"
        "@pytest.mark.detects('a')\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_f(n): pass\n"
        "def test_unmarked(): pass\n"
        "class TestK:\n"
        "    @pytest.mark.detects('a', 'b')\n"
        "    def test_m(self): pass\n"
    )
    (tmp_path / "tests" / "test_broken.py").write_text("@pytest.mark.detects('b')\ndef (:\n")
    assert marked_detectors(tmp_path) == {
        "a": ("tests/sub/test_m.py::test_f", "tests/sub/test_m.py::TestK::test_m"),
        "b": ("tests/sub/test_m.py::TestK::test_m",),
    }
    row = Fault("b", "docs/x.md", "#1", "bug", "fix", ("dqn",), ("other.py::test_own",))
    assert with_detectors([row], tmp_path)[0].detectors == (
        "other.py::test_own", "tests/sub/test_m.py::TestK::test_m")


def test_detector_problem_names_each_kind_of_bad_node_id(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(
        "import pytest\n"
        "def test_plain(): pass\n"
        "@pytest.mark.slow\n"
        "def test_long(): pass\n"
        "class TestK:\n"
        "    def test_m(self): pass\n"
    )
    (tmp_path / "test_b.py").write_text("import pytest\npytestmark = pytest.mark.slow\n"
                                        "def test_x(): pass\n")
    ok = ["test_a.py::test_plain", "test_a.py::test_plain[3]", "test_a.py::TestK::test_m",
          "test_a.py::TestK", "test_a.py"]
    assert [detector_problem(n, tmp_path) for n in ok] == [None] * len(ok)
    assert "no test file" in detector_problem("test_c.py::test_x", tmp_path)
    assert "no test 'test_nope'" in detector_problem("test_a.py::test_nope", tmp_path)
    assert "no test 'test_x'" in detector_problem("test_a.py::TestK::test_x", tmp_path)
    assert "slow" in detector_problem("test_a.py::test_long", tmp_path)
    assert "slow" in detector_problem("test_b.py::test_x", tmp_path)
    assert "kill-matrix" in detector_problem(f"{KILL_MATRIX_TEST}::test_x", tmp_path)


def test_parse_faults_unknown_id_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unknown fault id\(s\) no-such-fault; known: stale-eval"):
        parse_faults("target-not-updated,no-such-fault")
    with pytest.raises(ValueError, match="no-such-fault"):
        TrainConfig(faults=("no-such-fault",))


def test_active_faults_unknown_id_in_env_var_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, "epsilon-not-decayed, typo-fault")
    with pytest.raises(ValueError, match="typo-fault"):
        active_faults()


def test_cli_unknown_fault_id_exits_2_with_message(capsys) -> None:
    assert main(["faults", "verify", "--only", "no-such-fault"]) == 2
    assert "unknown fault id(s) no-such-fault" in capsys.readouterr().err


def test_faults_default_off(monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert active_faults() == frozenset() and active_faults(None) == frozenset()
    assert TrainConfig().faults == ()
    # Every registered trainer's defaults are the clean code (those whose backend is here).
    for algo, spec in TRAINERS.items():
        if backend_available(spec.backend):
            assert config_class(algo)().faults == (), algo


def test_faults_switch_on_from_config_and_env_var(monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, " no-grad-clipping ,")
    assert active_faults(("target-not-updated",)) == {"no-grad-clipping", "target-not-updated"}
    assert TrainConfig(faults=("no-lr-schedule", "eval-mode-training")).faults == (
        "eval-mode-training", "no-lr-schedule")  # normalised: sorted, validated


def test_cli_faults_list_json_is_the_catalogue(capsys) -> None:
    assert main(["faults", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == [f.id for f in CATALOGUE]
    assert all(set(r) >= {"id", "source", "bug", "fix", "algos", "detectors"} for r in rows)


def test_cli_faults_list_markdown_rows_parse_as_the_fault_table(capsys) -> None:
    assert main(["faults", "list", "--markdown"]) == 0
    table = _fault_table("## Fault catalogue\n" + capsys.readouterr().out)
    assert table == {f.id: _short(f.source, f.item) for f in CATALOGUE}
