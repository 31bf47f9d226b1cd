"""A flow run's checkpoint.h5 whose sigma histories are empty (shape (0,)) is damaged: a run writes step 0 first.
Its sigma histories were refused with 'pass the run directory of a flow or nn job', though it is one, while its row
beside other runs said 'rerun the job with --force'; now the refusal says the file is damaged and names the run's
fix, alone (the one-line error) and beside others (the skipped list, as the row)."""

from __future__ import annotations

import shutil

import h5py
import pytest

from analysis_runs import forced, md_rows, run_dirs, script

HINT = "pass the run directory of a flow or nn job"


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


@pytest.fixture
def empty(runs, tmp_path):
    """A copy of the flow run whose histories hold no step."""
    d = tmp_path / "empty"
    shutil.copytree(runs["flow"], d)
    with h5py.File(d / "checkpoint.h5", "a") as f:
        for name in ("history/sigma_train", "history/sigma_test"):
            del f[name]
            f.create_dataset(name, data=[], dtype="f8")
    return str(d)


def test_the_script_and_the_report_alone_call_it_damaged_and_name_the_runs_fix(empty, tmp_path):
    from hpcflow.errors import UserError
    from hpcflow.report.build import build_report

    said = (f"{empty}/checkpoint.h5: dataset 'history/sigma_train' is empty (shape (0,)): the file is damaged; "
            f"{forced(empty)}")
    proc = script("sigma_history", empty, "--out", tmp_path / "figs")
    assert proc.returncode == 2 and proc.stderr == f"sigma_history: error: {said}\n", proc.stderr
    with pytest.raises(UserError) as exc:
        build_report([empty], tmp_path / "r")
    assert str(exc.value) == f"nothing to report: {empty}: sigma histories: {said}", str(exc.value)
    assert HINT not in str(exc.value)


def test_beside_another_run_its_skip_says_what_its_row_says(empty, runs, tmp_path):
    from hpcflow.report.build import build_report

    res = build_report([empty, runs["flow"]], tmp_path / "r")
    why = dict(res["skipped"])[empty]
    assert why.endswith(f"is empty (shape (0,)): the file is damaged; {forced(empty)}") and HINT not in why, why
    with open(res["md"], encoding="utf-8") as fh:
        row = md_rows(fh.read().split("## Runs")[1].split("\n## ")[0])["empty"]
    assert row[2].startswith("incomplete: checkpoint.h5 damaged") and row[2].endswith(f"; {forced(empty)}"), row
