"""`hpcflow report --out` into an earlier report replaces it, its figures that the new report does not draw removed:
the output line says so, with how many files were replaced and which were removed."""

from __future__ import annotations

import pytest

from analysis_runs import run_dirs
from hpcflow.report.documents import MANIFEST


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _wrote(capsys, args) -> str:
    from hpcflow.cli import main

    capsys.readouterr()
    assert main(["report", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_a_report_replacing_an_earlier_one_says_so_and_names_the_files_removed(tmp_path, runs, capsys):
    out = tmp_path / "R"
    plain = f"hpcflow report: wrote {out / 'report.html'} and {out / 'report.md'}"
    assert _wrote(capsys, [runs["flow"], runs["flow_gauss"], "--out", str(out)]) == plain  # nothing replaced
    before = {p.name for p in out.iterdir()} - {MANIFEST}
    line = _wrote(capsys, [runs["flow"], "--out", str(out)])
    after = {p.name for p in out.iterdir()} - {MANIFEST}
    gone = sorted(before - after)
    assert len(gone) == 2 and all(n.startswith("per_rank_") for n in gone), gone  # the two runs' per-rank figures
    said = f"replacing the earlier report's {len(before)} files ({len(gone)} removed: {', '.join(gone)})"
    assert line == f"{plain}, {said}"
    line = _wrote(capsys, [runs["flow"], "--out", str(out)])  # the same report again: nothing removed
    assert line == f"{plain}, replacing the earlier report's {len(after)} files"


def test_the_output_line_lists_a_few_removed_files_then_dots():
    from hpcflow.commands.report import replacing

    removed = [f"f{i}.png" for i in range(5)]
    assert replacing({"replaced": ["report.md", *removed], "removed": removed}) == (
        ", replacing the earlier report's 6 files (5 removed: f0.png, f1.png, f2.png, ...)")
    assert replacing({"replaced": ["report.md"], "removed": []}) == ", replacing the earlier report's 1 file"
    assert replacing({"replaced": [], "removed": []}) == ""
