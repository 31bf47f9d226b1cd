"""A run's kind is its data file's: a directory holding a flow's checkpoint.h5 and a network's files (their summary.json
the network's) was listed as 'reported as a flow run (checkpoint.h5)' while its row said kind nn, kernel 'network',
with the flow's numbers; a flow whose summary.json was edited to say kind nn was a finished nn row. Now both rows are
flow rows, marked incomplete: summary.json is another job's."""

from __future__ import annotations

import json
import os
import shutil

import h5py
import pytest

from analysis_runs import forced, md_rows, run_dirs

SAID = ('incomplete: summary.json is another job\'s: it says kind "nn", but checkpoint.h5 holds a flow run '
        '(inconsistent: checkpoint.h5 holds the run); ')


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _rows(res) -> dict:
    with open(res["md"], encoding="utf-8") as fh:
        md = fh.read()
    return md_rows(md.split("## Runs")[1].split("\n## ")[0]), md


def _sigmas(run_dir) -> tuple:
    """(train, test) 'first -> last' cells of a flow's checkpoint.h5 histories, as the runs table writes them."""
    with h5py.File(os.path.join(run_dir, "checkpoint.h5"), "r") as f:
        st, se = f["history/sigma_train"][()], f["history/sigma_test"][()]
    return f"{st[0]:.4g} -> {st[-1]:.4g}", f"{se[0]:.4g} -> {se[-1]:.4g}"


def test_a_directory_of_two_runs_and_an_edited_kind_are_flow_rows_whose_summary_is_another_jobs(tmp_path, runs):
    from hpcflow.report.build import build_report

    merged, edited = tmp_path / "merged", tmp_path / "edited"
    shutil.copytree(runs["flow"], merged)
    for name in os.listdir(runs["nn"]):  # cp nnrun/* merged/: the network's summary.json over the flow's
        shutil.copy(os.path.join(runs["nn"], name), merged / name)
    shutil.copytree(runs["flow"], edited)
    summary = json.loads((edited / "summary.json").read_text())
    (edited / "summary.json").write_text(json.dumps({**summary, "kind": "nn"}))
    res = build_report([str(merged), str(edited)], tmp_path / "r")
    rows, md = _rows(res)
    assert dict(res["skipped"])[str(merged)].startswith("also holds nn.h5, checkpoint.pt (another run's), not "
                                                       "reported: the directory is reported as a flow run")
    for name, verb in (("merged", "nn"), ("edited", "run")):  # the rerun of its job.toml (merged: the network's)
        cells = rows[name]
        assert cells[1:3] == ["flow", SAID + forced(tmp_path / name, verb)], cells
        assert cells[4] == "delta" and "network" not in cells[4], cells  # the flow's kernel, not the network's
        assert tuple(cells[6:8]) == _sigmas(runs["flow"]), cells
        assert f"{name} [delta] (incomplete: summary.json is another job's" in md  # the sigma histories say it too
