"""Table 1 reads a row's every column from the run's data file: a summary.json of another job (a copy given another
run's summary) neither lends the row its hyper-parameters nor hides them behind the checkpoint's steps and gains."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import pytest

from analysis_runs import md_rows, run_dirs, script


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_summary_of_another_job_lends_no_column_to_the_row(runs, tmp_path):
    """The flow run (dt 1.0, 120 train points, delta kernel) given flow_gauss's summary.json (dt 0.65, 100 points,
    gaussian): the row is the checkpoint's job throughout, as checkpoint.h5 itself records it."""
    run = tmp_path / "mixed"
    shutil.copytree(runs["flow"], run)
    shutil.copy(os.path.join(runs["flow_gauss"], "summary.json"), run / "summary.json")
    with h5py.File(run / "checkpoint.h5", "r") as f:
        cfg = json.loads(f.attrs["config"])
        steps = len(f["history/sigma_train"]) - 1
    with open(run / "summary.json", encoding="utf-8") as fh:
        assert json.load(fh)["config"]["flow"]["dt"] != cfg["flow"]["dt"]  # the premise: two jobs
    proc = script("table1", run, "--out", tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "t" / "table1.md", encoding="utf-8") as fh:
        row = md_rows(fh.read())["mixed"]
    assert row[1].startswith("incomplete"), row
    assert row[2] == cfg["kernel"]["name"] == "delta", row
    assert row[3].split(" / ")[0] == str(cfg["geometry"]["n_train"]) == "120", row
    assert float(row[4].split(" / ")[0]) == cfg["flow"]["dt"] == 1.0, row
    assert row[8] == str(steps), row
