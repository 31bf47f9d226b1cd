"""The advice for a damaged data file: one fix where the reader's advice is that fix (a noise scan's noise_scan.h5:
not "if the run wrote it, ...: rerun that job with --force; else rerun the job with --force"), no rerun where the
directory holds no job.toml, and a flow run with a damaged checkpoint.h5 among others listed under Skipped as a
damaged nn.h5 or noise_scan.h5 run is."""

from __future__ import annotations

import os
import shutil

import pytest

from analysis_runs import forced, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _refusal(capsys, args) -> str:
    from hpcflow.cli import main

    capsys.readouterr()
    assert main(["report", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_a_damaged_noise_scan_file_is_given_one_fix(tmp_path, runs, capsys):
    d = shutil.copytree(runs["noise"], tmp_path / "noise")
    os.truncate(d / "noise_scan.h5", 1000)
    err = _refusal(capsys, [str(d), "--out", str(tmp_path / "R")])
    assert "not a readable HDF5 file" in err and err.count("rerun the job with --force") == 1, err
    assert err.endswith(f"the file is damaged; {forced(d)}\n"), err
    assert "else" not in err and "that job" not in err, err


def test_a_directory_without_job_toml_is_told_it_holds_none_not_to_rerun_a_job(tmp_path, runs, capsys):
    from hpcflow.report import build_report

    d = tmp_path / "nojob"
    d.mkdir()
    (d / "checkpoint.h5").write_bytes(b"not HDF5\n" * 200)
    err = _refusal(capsys, [str(d), "--out", str(tmp_path / "R")])
    assert "holds no job.toml" in err and "rerun" not in err.replace("no job to rerun", ""), err
    res = build_report([runs["flow"], str(d)], tmp_path / "R2")  # among others: its row and its skip line alike
    md = open(res["md"], encoding="utf-8").read()
    row = next(line for line in md.splitlines() if line.startswith("| nojob |"))
    assert "holds no job.toml" in row and "rerun the job" not in row, row
    assert [r for p, r in res["skipped"] if p == str(d) and "holds no job.toml" in r], res["skipped"]


def test_a_flow_run_with_a_damaged_checkpoint_is_skipped_as_a_damaged_network_or_scan_run(tmp_path, runs):
    from hpcflow.report import build_report

    damaged = {"flow": "checkpoint.h5", "nn": "nn.h5", "noise": "noise_scan.h5"}
    dirs = []
    for kind, name in damaged.items():
        d = shutil.copytree(runs[kind], tmp_path / f"cut_{kind}")
        os.truncate(d / name, 1000)
        dirs.append(str(d))
    res = build_report([runs["flow"], *dirs], tmp_path / "R")
    skipped = dict(res["skipped"])
    assert set(skipped) == set(dirs), res["skipped"]  # each once
    assert skipped[dirs[0]] == f"sigma histories: not drawn: checkpoint.h5 unreadable (damaged); {forced(dirs[0])}", \
        skipped
    md = open(res["md"], encoding="utf-8").read()
    listed = md.split("\nSkipped:\n")[1].split("\n## ")[0]
    assert all(f"`{d}`" in listed for d in dirs), listed
