"""A data file that another process holds locked (HDF5's file lock: a run writing it, a program holding it open for
writing) is in use, not damaged: the analysis and the report say so and how to read it, never "rerun ... --force",
which would replace a file that may be whole; beside other runs it is marked and the others are read."""

from __future__ import annotations

import fcntl
import os
import shutil
from contextlib import contextmanager

import pytest

from analysis_runs import md_rows, run_dirs

#: what every message about a locked file says instead of "damaged"
IN_USE = "in use (locked by another process); wait for that process to end or close the file, then try again"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


@contextmanager
def held(path):
    """`path` locked as a writer holds an HDF5 file (an exclusive flock on another open file description, which
    h5py's own shared lock for reading conflicts with, as with a writer in another process)."""
    with open(path, "rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _copy(runs, tmp_path, run, name=None) -> str:
    d = tmp_path / (name or run)
    shutil.copytree(runs[run], d)
    return str(d)


def _no_damage_said(text) -> None:
    assert "damaged" not in text and "--force" not in text, text


def test_the_lock_is_told_from_damage():
    import h5py

    from hpcflow.h5read import locked

    assert locked(BlockingIOError(11, "Unable to synchronously open file (unable to lock file, errno = 11, ...)"))
    assert locked(OSError("Unable to open file (unable to lock file, errno = 35, error message = '...')"))
    assert not locked(OSError("Unable to synchronously open file (file signature not found)"))
    assert not locked(RuntimeError("unable to lock file"))  # not h5py's error for an open
    with pytest.raises(OSError) as damaged:
        h5py.File(__file__, "r")
    assert not locked(damaged.value)


@pytest.mark.parametrize("exc", [OSError("Unable to synchronously open file (unable to lock file, errno = 37, error "
                                         "message = 'No locks available')"),
                                 OSError(38, "Unable to open file (unable to lock file, errno = 38, ...)")])
def test_a_file_system_that_refuses_locks_is_no_process_holding_the_file(exc):
    """ENOLCK (NFS without lockd), ENOSYS (a file system without flock): HDF5's lock fails with no other process
    holding it; said so, and the fix is HDF5_USE_FILE_LOCKING=FALSE, not to wait for a writer."""
    from hpcflow.h5read import in_use, locked

    assert locked(exc)
    said = in_use("f.h5", exc)
    assert "refuses HDF5's file lock" in said and "HDF5_USE_FILE_LOCKING=FALSE" in said, said
    assert "another process" not in said and "wait" not in said, said
    held_said = in_use("f.h5", BlockingIOError(11, "Unable to synchronously open file (unable to lock file, ...)"))
    assert "another process holds it locked" in held_said, held_said


def test_a_locked_checkpoint_alone_is_said_in_use_with_how_to_read_it(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main as script
    from hpcflow.cli import main

    d = _copy(runs, tmp_path, "flow")
    with held(os.path.join(d, "checkpoint.h5")):
        for name in ("sigma_history", "table1"):
            capsys.readouterr()
            assert script(name, [d, "--out", str(tmp_path / name)]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and "checkpoint.h5: in use: another process holds it locked" in err, err
            assert "HDF5_USE_FILE_LOCKING=FALSE" in err
            _no_damage_said(err)
        capsys.readouterr()
        assert main(["report", d, "--out", str(tmp_path / "rep")]) == 2
        err = capsys.readouterr().err
        assert "in use: another process holds it locked" in err, err
        _no_damage_said(err)


def test_a_locked_checkpoint_among_others_is_marked_in_use_and_the_others_read(runs, tmp_path, capsys):
    from hpcflow.analysis.script import main as script
    from hpcflow.report.build import build_report

    d = _copy(runs, tmp_path, "flow", "held")
    with held(os.path.join(d, "checkpoint.h5")):
        mark = f"status unknown: checkpoint.h5 {IN_USE}"
        for name in ("sigma_history", "table1"):
            capsys.readouterr()
            assert script(name, [d, runs["flow_gauss"], "--out", str(tmp_path / name)]) == 0
            printed = capsys.readouterr().out
            assert f"held ({mark}" in printed and "flow_gauss [" in printed, printed
            _no_damage_said(printed)
        table = md_rows((tmp_path / "table1" / "table1.md").read_text())
        assert table["held"][1].startswith(mark), table["held"]
        res = build_report([d, runs["flow_gauss"]], tmp_path / "out")
    md = open(res["md"], encoding="utf-8").read()
    rows = md_rows(md.split("## Runs")[1].split("\n## ")[0])
    assert rows["held"][2].startswith(mark) and "HDF5_USE_FILE_LOCKING=FALSE" in rows["held"][2], rows["held"]
    assert rows["flow_gauss"][2] == "finished"
    assert res["skipped"] == [], res["skipped"]
    _no_damage_said(md)


@pytest.mark.parametrize("run, name", [("nn", "nn.h5"), ("noise", "noise_scan.h5")])
def test_a_locked_data_file_of_another_kind_is_in_use_in_its_row(runs, tmp_path, run, name):
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    d = _copy(runs, tmp_path, run)
    with held(os.path.join(d, name)):
        info = detect(d)
        status = row(info)[2]
    assert not info.complete and status.startswith(f"status unknown: {name} {IN_USE}"), status
    _no_damage_said(status)


def test_sigma_history_of_a_network_run_with_a_locked_nn_h5_says_in_use(runs, tmp_path, capsys):
    """Drawn from its checkpoint.pt (below), its label saying nn.h5 is in use, nothing said damaged."""
    from hpcflow.analysis.script import main as script

    d = _copy(runs, tmp_path, "nn")
    with held(os.path.join(d, "nn.h5")):
        capsys.readouterr()
        assert script("sigma_history", [d, "--out", str(tmp_path / "f")]) == 0
    said = capsys.readouterr()
    assert "nn.h5 in use (locked by another process)" in said.out, said
    _no_damage_said(said.out + said.err)


def test_a_network_run_whose_nn_h5_is_locked_is_drawn_from_its_training_checkpoint(runs, tmp_path, capsys):
    """nn.h5 in use, checkpoint.pt beside it holding the whole training: the σ history is drawn from checkpoint.pt, as
    for a damaged nn.h5, not refused; its values are those of nn.h5 read once the lock is gone."""
    import numpy as np

    from hpcflow.analysis.histories import load

    d = _copy(runs, tmp_path, "nn")
    free = load(d)
    with held(os.path.join(d, "nn.h5")):
        drawn = load(d)
    assert drawn["unit"] == "epoch" and drawn["file"].endswith("checkpoint.pt"), drawn["file"]
    np.testing.assert_array_equal(drawn["train"], free["train"])
    np.testing.assert_array_equal(drawn["test"], free["test"])
