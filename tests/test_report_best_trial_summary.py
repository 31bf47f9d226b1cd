"""A study's row marks a best trial whose run directory has no summary.json as its run incomplete, as the trial's own
row (and Table 1's) does: the row showed the trial's numbers with no mark."""

from __future__ import annotations

import os

import pytest

from analysis_runs import md_rows
from test_tune_records import _job, _tune


def _status(report_dir, paths, name) -> str:
    from hpcflow.report.build import build_report

    res = build_report([str(p) for p in paths], report_dir)
    with open(res["md"], encoding="utf-8") as fh:
        return md_rows(fh.read().split("## Runs")[1].split("\n## ")[0])[name][2]


@pytest.mark.parametrize("kind", ["flow", "nn"])
def test_a_best_trial_without_summary_json_marks_the_studys_row(tmp_path, capsys, kind):
    if kind == "flow":
        job, extra = _job(tmp_path), []
    else:
        from test_tune_nn import JOB as NN_JOB

        job, extra = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), ["--set", "training.epochs=1"]
    out = tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, *extra)[0] == 0
    trial = out / "trials" / "0000"
    whole = _status(tmp_path / "r0", [out], "s")
    assert "incomplete" not in whole, whole
    os.remove(trial / "summary.json")
    own = _status(tmp_path / "r1", [trial], "0000")
    assert own.startswith("incomplete: no summary.json; trial 0 of the study in "), own
    row = _status(tmp_path / "r2", [out], "s")
    assert row.startswith("1 trial: 1 complete; best trial 0"), row
    assert row.endswith(f"; its run is incomplete: {own[len('incomplete: '):]}"), row
