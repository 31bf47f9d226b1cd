"""`hpcflow report` judges each flow checkpoint once (`load_resume`, which reads every row for NaN/inf), though
its runs-table row, its Table 1 row and its sigma-history line each ask for the run's state; a checkpoint changed
meanwhile is judged again."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from analysis_runs import md_rows, run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_report_reads_each_checkpoint_once_and_a_changed_one_again(tmp_path, runs, monkeypatch):
    import hpcflow.checkpoint
    from hpcflow.analysis.rundir import completeness, judging_once
    from hpcflow.report.build import build_report

    read, load = [], hpcflow.checkpoint.load_resume

    def counted(path, **kw):
        read.append(path)
        return load(path, **kw)

    monkeypatch.setattr(hpcflow.checkpoint, "load_resume", counted)
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(runs["flow"], a)
    shutil.copytree(runs["flow_gauss"], b)
    res = build_report([a, b], tmp_path / "out")
    md = open(res["md"], encoding="utf-8").read()
    assert sorted(read) == sorted([str(a / "checkpoint.h5"), str(b / "checkpoint.h5")])  # once each
    assert "| a | finished |" in md.split("## Table 1")[1] and "| b | finished |" in md.split("## Table 1")[1]
    assert md_rows(md.split("## Runs")[1].split("\n## ")[0])["a"][2] == "finished"
    read.clear()
    with judging_once():
        assert completeness(a) == (True, "")
        with h5py.File(a / "checkpoint.h5", "a") as f:
            f["train/g"][2, 1, 1] = np.nan
        assert completeness(a)[1].startswith("checkpoint.h5 damaged: train/g holds a non-finite value")
        assert completeness(a)[0] is False and len(read) == 2
