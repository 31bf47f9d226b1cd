"""`hpcflow sample --force` replaces only a PointSet file that `hpcflow sample` wrote: a flow run's checkpoint.h5 (in
its run directory or copied out of it), a text file, a FIFO or a PointSet in a run's directory are refused in one
line naming --out and the fix, exit 2, the file unchanged (--force replaced any file, and a run whose checkpoint it
replaced could no longer be resumed or reported)."""

from __future__ import annotations

import hashlib
import os
import shutil

import h5py
import pytest

from hpcflow.cli import main
from hpcflow.geometry import PointSet
from test_submit import JOB  # tests/ is on sys.path (pytest's default import mode)

FIX = "choose another --out, or remove the file yourself"


def _sample(out, *more) -> int:
    return main(["sample", "--n", "30", "--seed", "3", "--threads", "1", "--quiet", "--out", str(out), *more])


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_a_pointset_file_is_replaced_with_force(tmp_path, capsys):
    out = tmp_path / "points.h5"
    assert _sample(out) == 0
    before = PointSet.load(str(out))
    assert main(["sample", "--n", "45", "--seed", "4", "--threads", "1", "--quiet", "--out", str(out), "--force"]) == 0
    after = PointSet.load(str(out))
    assert len(before) != len(after) and after.seed == 4  # the new sampling, not the old file
    with h5py.File(out, "r") as f:
        assert f.attrs["kind"] == "hpcflow.PointSet"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A flow run's output directory (job.toml, summary.json, checkpoint.h5)."""
    base = tmp_path_factory.mktemp("run")
    (base / "job.toml").write_text(JOB)
    assert main(["run", str(base / "job.toml"), "--out", str(base / "r"), "--quiet"]) == 0
    return base / "r"


def _refused(capsys, out, said: str) -> None:
    before = _digest(out)
    assert _sample(out, "--force") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hpcflow sample: error: --out {out}: "), err
    assert said in err and FIX in err, err
    assert _digest(out) == before  # unchanged


def test_a_runs_checkpoint_is_refused_and_left_as_it_is(run_dir, capsys):
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.h5", "job.toml", "summary.json"]
    _refused(capsys, run_dir / "checkpoint.h5", "output directory of an hpcflow run")
    assert main(["run", str(run_dir / "job.toml"), "--out", str(run_dir), "--resume", "--quiet"]) == 0  # still its own


def test_a_checkpoint_outside_its_run_and_a_link_to_one_are_refused(run_dir, tmp_path, capsys):
    copy = tmp_path / "checkpoint.h5"
    shutil.copyfile(run_dir / "checkpoint.h5", copy)
    _refused(capsys, copy, "an HDF5 file of kind 'hpcflow.flow_checkpoint', not a PointSet file")
    link = tmp_path / "link.h5"
    link.symlink_to(run_dir / "checkpoint.h5")
    _refused(capsys, link, "(the target of the link")
    assert link.is_symlink()


def test_a_pointset_file_in_a_runs_directory_is_refused(run_dir, tmp_path, capsys):
    out = run_dir / "points.h5"
    assert _sample(out) == 0
    try:
        _refused(capsys, out, "output directory of an hpcflow run")
    finally:
        out.unlink()


@pytest.mark.parametrize("text", [b"my notes\n", b""])
def test_a_text_file_is_refused_and_left_as_it_is(tmp_path, capsys, text):
    out = tmp_path / "notes.txt"
    out.write_bytes(text)
    _refused(capsys, out, "not an HDF5 file")
    assert out.read_bytes() == text


def test_an_hdf5_file_of_a_user_is_refused(tmp_path, capsys):
    out = tmp_path / "mine.h5"
    with h5py.File(out, "w") as f:
        f["x"] = [1.0, 2.0]
    _refused(capsys, out, "an HDF5 file without attribute 'kind', not a PointSet file")


def test_a_fifo_is_refused_without_opening_it(tmp_path, capsys):
    out = tmp_path / "pipe.h5"
    os.mkfifo(out)
    assert _sample(out, "--force") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a regular file" in err and FIX in err, err
    assert out.is_fifo()


def test_a_file_put_at_out_while_sampling_is_refused_and_kept(tmp_path, capsys, monkeypatch):
    from hpcflow.geometry import sampling

    out = tmp_path / "points.h5"
    waves = sampling.sample_waves

    def writes_meanwhile(*args, **kwargs):
        out.write_bytes(b"another process's file")
        return waves(*args, **kwargs)

    monkeypatch.setattr(sampling, "sample_waves", writes_meanwhile)
    assert _sample(out, "--force") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an HDF5 file" in err and FIX in err, err
    assert out.read_bytes() == b"another process's file"
