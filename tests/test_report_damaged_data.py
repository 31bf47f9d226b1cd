"""A noise_scan, distance_scaling, clustering or local_limit run whose data file is damaged (cut short, not HDF5) is
incomplete in the runs table and says why, as a flow run with a damaged checkpoint.h5 does, whatever summary.json
says."""

from __future__ import annotations

import os
import shutil

import pytest

from analysis_runs import md_rows, run_dirs

#: fixture run -> its data file
DATA = {"noise": "noise_scan.h5", "scaling": "distances.h5", "clustering": "fig2_distances.h5",
        "local_limit": "local_limit.h5"}


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _damage(path, how: str) -> None:
    if how == "cut short":
        os.truncate(path, 1000)
    else:
        with open(path, "wb") as fh:
            fh.write(b"not HDF5\n" * 200)


@pytest.mark.parametrize("how", ["cut short", "not HDF5"])
@pytest.mark.parametrize("run", sorted(DATA))
def test_a_damaged_data_file_makes_the_run_incomplete_in_its_row(tmp_path, runs, run, how):
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    whole = detect(runs[run])
    assert whole.complete and row(whole)[2] == "finished", row(whole)
    d = tmp_path / run
    shutil.copytree(runs[run], d)
    _damage(d / DATA[run], how)
    info = detect(d)
    reason = f"{DATA[run]} unreadable (damaged); rerun the job with --force"
    assert (info.kind, info.complete, info.reason) == (whole.kind, False, reason)
    assert row(info)[2] == f"incomplete: {reason}"


def test_the_report_calls_damaged_data_files_damaged_in_the_runs_table(tmp_path, runs):
    """The rows of damaged runs say damaged, the whole run's says finished; figures still skip the damaged ones."""
    from hpcflow.report.build import build_report

    dirs = []
    for run in ("noise", "scaling"):
        d = tmp_path / run
        shutil.copytree(runs[run], d)
        _damage(d / DATA[run], "cut short")
        dirs.append(str(d))
    res = build_report([runs["clustering"], *dirs], tmp_path / "out")
    rows = md_rows(open(res["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])
    assert rows["clustering"][2] == "finished"
    for run in ("noise", "scaling"):
        assert rows[run][2] == f"incomplete: {DATA[run]} unreadable (damaged); rerun the job with --force", rows[run]
    assert {p for p, _ in res["skipped"]} == set(dirs)
