"""A noise_scan, distance_scaling, clustering or local_limit run whose data file is damaged (cut short, not HDF5) is
incomplete in the runs table and says why, as a flow run with a damaged checkpoint.h5 does, whatever summary.json
says."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from analysis_runs import forced, md_rows, run_dirs

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
    reason = f"{DATA[run]} unreadable (damaged); {forced(d)}"
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
        assert rows[run][2] == f"incomplete: {DATA[run]} unreadable (damaged); {forced(tmp_path / run)}", rows[run]
    assert {p for p, _ in res["skipped"]} == set(dirs)


def _cut_flow(runs, tmp_path) -> str:
    d = tmp_path / "cut"
    shutil.copytree(runs["flow"], d)
    _damage(d / "checkpoint.h5", "cut short")
    return str(d)


def test_a_flow_run_with_a_cut_checkpoint_among_others_is_marked_once(tmp_path, runs, capsys):
    """A truncated checkpoint.h5 beside other runs: the report marks its row and lists it once under Skipped (its
    sigma histories not drawn, as a damaged nn.h5's Fig. 4);
    sigma_history.py and table1.py mark it and draw the others (exit 0); alone they still refuse it (exit 2)."""
    from hpcflow.analysis.script import main as script
    from hpcflow.report.build import build_report

    cut = _cut_flow(runs, tmp_path)
    res = build_report([cut, runs["noise"]], tmp_path / "out")
    rows = md_rows(open(res["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])
    assert rows["cut"][2] == f"incomplete: checkpoint.h5 unreadable (damaged); {forced(cut)}"
    assert res["skipped"] == [(cut, f"sigma histories: not drawn: {rows['cut'][2].removeprefix('incomplete: ')}")]
    mark = f"cut (incomplete: checkpoint.h5 unreadable (damaged); {forced(cut)}): not "
    for name in ("sigma_history", "table1"):
        capsys.readouterr()
        assert script(name, [cut, runs["flow"], "--out", str(tmp_path / name)]) == 0
        printed = capsys.readouterr().out
        assert mark in printed and "flow" in printed, printed
        assert script(name, [cut, "--out", str(tmp_path / f"{name}_alone")]) == 2
    table = (tmp_path / "table1" / "table1.md").read_text()
    assert md_rows(table)["cut"][1] == f"incomplete: checkpoint.h5 unreadable (damaged); {forced(cut)}"


def test_a_flow_run_without_its_checkpoint_is_said_to_miss_it(tmp_path, runs):
    from hpcflow.report.detect import detect

    d = tmp_path / "nockpt"
    shutil.copytree(runs["flow"], d)
    os.remove(d / "checkpoint.h5")
    reason = detect(d).reason
    assert reason.startswith("the flow run's checkpoint.h5 is missing") and "holds none of" not in reason, reason


def test_fig4_of_a_network_run_killed_before_nn_h5_says_to_resume_it(tmp_path, runs, capsys):
    from hpcflow.analysis.script import main as script

    d = tmp_path / "killed"
    shutil.copytree(runs["nn"], d)
    os.remove(d / "nn.h5")
    os.remove(d / "summary.json")  # written after nn.h5: with it, the run finished and its nn.h5 is missing
    capsys.readouterr()
    assert script("fig4_ntk", [str(d), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted" in err and f"--out {d} --resume" in err, err
    assert "[ntk] enabled" not in err


def test_a_cut_checkpoint_shows_no_sigma_or_gain_in_the_runs_table_as_in_table1(tmp_path, runs):
    """The runs table showed summary.json's sigmas and gains beside "checkpoint.h5 unreadable (damaged)", where
    table1.py's row of the same run shows '-': the data file is the record, and it cannot be read. The sigma and
    gain cells are '-' in both; the whole run beside it keeps its numbers."""
    import json

    from hpcflow.analysis.script import main as script
    from hpcflow.report.build import build_report

    cut = _cut_flow(runs, tmp_path)
    with open(os.path.join(cut, "summary.json"), encoding="utf-8") as fh:
        assert isinstance(json.load(fh)["gain_train"], float)  # the premise: the summary has numbers to show
    res = build_report([cut, runs["flow"]], tmp_path / "out")
    rows = md_rows(open(res["md"], encoding="utf-8").read().split("## Runs")[1].split("\n## ")[0])
    assert rows["cut"][6:10] == ["-", "-", "-", "-"], rows["cut"]
    assert all(c != "-" for c in rows["flow"][6:10]), rows["flow"]
    assert script("table1", [cut, runs["flow"], "--out", str(tmp_path / "t")]) == 0
    table = md_rows((tmp_path / "t" / "table1.md").read_text())
    assert table["cut"][9:11] == ["-", "-"], table["cut"]


@pytest.mark.parametrize("dataset, product", [("history/sigma_val", "sigma histories"),
                                              ("ntk/wasserstein", "Fig. 4: metric-NTK evolution")])
@pytest.mark.parametrize("with_checkpoint", [True, False])
def test_a_network_run_whose_nn_h5_lacks_a_dataset_is_told_to_resume_where_its_checkpoint_can_write_it_again(
        tmp_path, runs, capsys, dataset, product, with_checkpoint):
    """A finished network run whose nn.h5 opens but lacks a dataset its run wrote: the row advised a full retrain
    ("rerun the job with --force") inside a reason that told the user to "pass the run directory of a flow or nn job",
    which they had. Now the row and the skipped line say the file is damaged and name `hpcflow nn ... --resume`,
    which writes nn.h5 again from checkpoint.pt, and --force only where there is no checkpoint.pt."""
    import h5py

    from hpcflow.cli import main

    d = tmp_path / "net"
    shutil.copytree(runs["nn"], d)
    with h5py.File(d / "nn.h5", "a") as f:
        del f[dataset]
    if not with_checkpoint:
        os.remove(d / "checkpoint.pt")
    fix = (f"write it again with hpcflow nn {d / 'job.toml'} --out {d} --resume" if with_checkpoint else
           forced(d, "nn"))
    capsys.readouterr()
    assert main(["report", str(d), "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    md = (tmp_path / "rep" / "report.md").read_text()
    status = md_rows(md.split("## Runs")[1].split("\n## ")[0])["net"][2]
    said = f"{d / 'nn.h5'}: no dataset '{dataset}': the file is damaged"
    assert status == f"incomplete: nn.h5 damaged (dataset {dataset} missing); {fix}", status  # (as --resume says)
    assert f"hpcflow report: skipped {d}: {product}: {said}; {fix}\n" in printed, printed
    for text in (md, printed):
        assert "pass the run directory" not in text and (with_checkpoint or "--resume" not in text)
        assert with_checkpoint is ("--force" not in text)


def test_a_network_run_given_by_a_relative_path_whose_nn_h5_lacks_a_fig4_dataset_is_marked_once_everywhere(
        tmp_path, runs, monkeypatch):
    """The run given as 'net' from its parent: the row said the fix twice (once inside Fig. 4's reason with absolute
    paths, once after it with the relative ones), and its sigma histories, drawn from the same nn.h5, carried no mark
    though the row said incomplete. Now the fix is said once, with the absolute paths of every advised command, and
    the sigma histories' legend and printed line carry the row's mark."""
    import h5py

    from hpcflow.report.build import build_report

    shutil.copytree(runs["nn"], tmp_path / "net")
    with h5py.File(tmp_path / "net" / "nn.h5", "a") as f:
        del f["ntk/wasserstein"]
    monkeypatch.chdir(tmp_path)
    res = build_report(["net"], "rep")
    md = open(res["md"], encoding="utf-8").read()
    status = md_rows(md.split("## Runs")[1].split("\n## ")[0])["net"][2]
    assert status == ("incomplete: nn.h5 damaged (dataset ntk/wasserstein missing); write it again with hpcflow nn "
                      f"{tmp_path / 'net' / 'job.toml'} --out {tmp_path / 'net'} --resume"), status
    history = md.split("## sigma histories")[1].split("\n## ")[0]
    assert "\nnet (incomplete: nn.h5 damaged): sigma train " in history, history
    assert "*net (incomplete: nn.h5 damaged)*" in history, history  # the per-rank figure's caption


@pytest.mark.parametrize("name, row, value", [("table/gain_test", 1, np.inf), ("table/gain_train", 0, np.nan)])
def test_a_local_limit_run_whose_gain_is_not_finite_is_damaged_in_its_row(tmp_path, runs, name, row, value):
    """A local_limit run writes a finite gain for every width (a stopped flow keeps its last finite step's), and no
    figure reads local_limit.h5: its row said "finished" beside an inf gain. Now it says the file is damaged, naming
    the dataset and the row, as a noise scan's non-finite gain does."""
    import h5py

    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row as table_row

    d = tmp_path / "ll"
    shutil.copytree(runs["local_limit"], d)
    with h5py.File(d / "local_limit.h5", "a") as f:
        f[name][row] = value
    info = detect(str(d))
    assert not info.complete
    assert table_row(info)[2] == (f"incomplete: local_limit.h5 damaged: dataset '{name}' holds {value!r} at row {row}, "
                                  f"not a finite gain > 0; {forced(d)}"), table_row(info)
    assert table_row(detect(runs["local_limit"]))[2] == "finished"
