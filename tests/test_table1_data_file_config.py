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


def _spoil_config(run, value):
    with h5py.File(run / "checkpoint.h5", "a") as f:
        f.attrs["config"] = value


def test_a_checkpoint_config_without_the_job_is_a_marked_row_among_the_others(runs, tmp_path):
    """checkpoint.h5's `config` spoiled to '{"geometry": 3}' beside a whole summary.json: a row marked damaged that
    names the attribute (its job read from summary.json, as where the attribute is missing), and the other run's row
    finished; the table was refused whole, blaming summary.json too."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    shutil.copytree(runs["flow"], good)
    shutil.copytree(runs["flow"], bad)
    _spoil_config(bad, '{"geometry": 3}')
    proc = script("table1", good, bad, "--out", tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "t" / "table1.md", encoding="utf-8") as fh:
        rows = md_rows(fh.read())
    assert rows["good"][1] == "finished", rows["good"]
    assert rows["bad"][1].startswith("incomplete: checkpoint.h5 damaged: attribute 'config'"), rows["bad"]
    assert "[kernel] is missing" in rows["bad"][1], rows["bad"]
    assert rows["bad"][2] == "delta" and rows["bad"][3].startswith("120 / "), rows["bad"]  # the job file's (JOBS)
    assert "bad [delta] (incomplete: checkpoint.h5 damaged: attribute 'config'" in proc.stdout, proc.stdout


def test_a_checkpoint_and_summary_without_the_job_mark_the_row_or_refuse_alone(runs, tmp_path):
    """Neither file holds the job: among other runs a row marked damaged without numbers; alone one line naming
    checkpoint.h5's attribute and summary.json's entry, exit 2."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    shutil.copytree(runs["flow"], good)
    shutil.copytree(runs["flow"], bad)
    _spoil_config(bad, '{"geometry": 3}')
    os.remove(bad / "summary.json")
    proc = script("table1", good, bad, "--out", tmp_path / "t")
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "t" / "table1.md", encoding="utf-8") as fh:
        rows = md_rows(fh.read())
    assert rows["good"][1] == "finished" and rows["bad"][2:] == ["-"] * 10, rows
    assert "attribute 'config' [kernel] is missing" in rows["bad"][1], rows["bad"]
    alone = script("table1", bad, "--out", tmp_path / "t2")
    assert alone.returncode == 2 and alone.stderr.count("\n") == 1, alone.stderr
    assert f"{bad / 'checkpoint.h5'}: attribute 'config' [kernel] is missing, and no summary.json" in alone.stderr
    assert "summary.json or checkpoint.h5" not in alone.stderr
