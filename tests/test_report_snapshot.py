"""A report of a run still in progress read its checkpoint.h5 once for the row and again for the sigma histories;
the run replaces that file (atomically) every [checkpoint].every steps, so the row showed one step's sigma and the
history line and figure a later one's. Now each data file of a live run is read as it was when the report first read
it: the row, the printed line and the figure show one checkpoint."""

from __future__ import annotations

import os
import re
import shutil

import h5py
import pytest

from analysis_runs import md_rows, run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _sigmas(path) -> tuple:
    with h5py.File(path, "r") as f:
        return f["history/sigma_train"][()], f["history/sigma_test"][()]


def test_a_live_runs_row_and_sigma_histories_show_the_checkpoint_first_read(tmp_path, runs, monkeypatch):
    from hpcflow.jobs import outlock
    from hpcflow.report import build

    run = tmp_path / "live"
    shutil.copytree(runs["flow"], run)
    os.remove(run / "summary.json")  # a run in progress has written no summary yet
    later = tmp_path / ".later.h5"  # the checkpoint the run writes next: other sigmas
    shutil.copy(run / "checkpoint.h5", later)
    with h5py.File(later, "a") as f:
        for name in ("history/sigma_train", "history/sigma_test"):
            f[name][...] = f[name][()] * 0.5
    first_train, first_test = _sigmas(run / "checkpoint.h5")
    run_product = build._run_product

    def replaced_meanwhile(*args, **kwargs):  # between the row's reading and the figures'
        if later.exists():
            os.replace(later, run / "checkpoint.h5")
        return run_product(*args, **kwargs)

    monkeypatch.setattr(build, "_run_product", replaced_meanwhile)
    lock = outlock.acquire(run, command="hpcflow run")  # the run's lock, held: a live run
    try:
        res = build.build_report([str(run)], tmp_path / "r")
    finally:
        lock.release()
    assert not later.exists()  # the file was replaced during the report
    with open(res["md"], encoding="utf-8") as fh:
        md = fh.read()
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["live"]
    assert row[2].startswith("running: hpcflow run, pid "), row
    train = f"{first_train[0]:.4g} -> {first_train[-1]:.4g}"
    test = f"{first_test[0]:.4g} -> {first_test[-1]:.4g}"
    assert row[6:8] == [train, test], row
    line = re.search(r"^live \[delta\] \(running: .*\): sigma train (.*), test (.*) \(\d+ flow steps\)$", md, re.M)
    assert line and line.groups() == (train, test), md


def test_a_live_run_is_reported_by_name_where_no_temporary_directory_can_be_made(tmp_path, runs, monkeypatch):
    """The links of `one_snapshot` live in a temporary directory: where it cannot be made (TMPDIR gone, read-only,
    full) the files are read by their names, as without /proc/self/fd; before, the report ended in a traceback
    (FileNotFoundError) with the descriptor just opened left open."""
    import tempfile

    from hpcflow.jobs import outlock
    from hpcflow.report import build

    run = tmp_path / "live"
    shutil.copytree(runs["flow"], run)
    os.remove(run / "summary.json")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no such directory"))
    before = set(os.listdir("/proc/self/fd"))
    lock = outlock.acquire(run, command="hpcflow run")
    try:
        res = build.build_report([str(run)], tmp_path / "r")
    finally:
        lock.release()
    with open(res["md"], encoding="utf-8") as fh:
        row = md_rows(fh.read().split("## Runs")[1].split("\n## ")[0])["live"]
    train, _ = _sigmas(run / "checkpoint.h5")
    assert row[2].startswith("running: hpcflow run, pid ") and row[6] == f"{train[0]:.4g} -> {train[-1]:.4g}", row
    assert set(os.listdir("/proc/self/fd")) <= before  # no descriptor left open
