"""A run's other file given for its data file (a torch archive, the job file, summary.json) is named for what it is,
with the run directory to pass instead: it is not damaged, and the advice to rerun the job with --force would replace
a good run. A data file that is damaged is refused alike by every script."""

from __future__ import annotations

import os
import shutil

import pytest

from analysis_runs import run_dirs, script


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


@pytest.mark.parametrize("name, run, file, what, data", [
    ("fig4_ntk", "nn", "checkpoint.pt", "torch archive", "nn.h5"),
    ("sigma_history", "nn", "model.pt", "torch archive", "nn.h5"),
    ("table1", "flow", "job.toml", "job file", "checkpoint.h5"),
    ("table1", "flow", "summary.json", "summary.json", "checkpoint.h5"),
    ("sigma_history", "flow", "job.toml", "job file", "checkpoint.h5"),
])
def test_a_runs_other_file_is_named_with_its_run_directory(runs, tmp_path, name, run, file, what, data):
    path = os.path.join(runs[run], file)
    with open(path, "rb") as fh:  # the premise: not HDF5
        assert not fh.read(8).startswith(b"\x89HDF")
    assert os.path.isfile(os.path.join(runs[run], data))
    proc = script(name, path, "--out", tmp_path / "q")
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1 and "--force" not in line and "damaged" not in line, line
    assert line.startswith(f"{name}: error: {path}: ") and what in line, line
    assert f"pass its run directory {runs[run]} (which holds {data})" in line, line
    assert not os.path.exists(tmp_path / "q")


def test_a_network_runs_model_pt_before_its_nn_h5_names_checkpoint_pt_as_no_hdf5_file(runs, tmp_path):
    """A network run that has not written nn.h5 yet: sigma_history.py reads its checkpoint.pt, a torch archive, and
    says so; the model.pt given for it is named, with the directory to pass."""
    run = tmp_path / "net"
    run.mkdir()
    for name in ("checkpoint.pt", "model.pt"):
        shutil.copy(os.path.join(runs["nn"], name), run / name)
    proc = script("sigma_history", run / "model.pt", "--out", tmp_path / "q")
    assert proc.returncode == 2, proc.stderr
    assert f"pass its run directory {run} (which holds checkpoint.pt)" in proc.stderr, proc.stderr
    assert "checkpoint.pt (HDF5)" not in proc.stderr, proc.stderr


def test_a_torch_archive_for_another_kind_of_run_names_what_it_is_and_what_is_needed(runs, tmp_path):
    """fig2_heatmaps.py given a network's model.pt: no fig2_distances.h5 beside it; the clustering run to pass."""
    path = os.path.join(runs["nn"], "model.pt")
    proc = script("fig2_heatmaps", path, "--out", tmp_path / "q")
    assert proc.returncode == 2, proc.stderr
    assert "torch archive" in proc.stderr and "--force" not in proc.stderr, proc.stderr
    assert "run directory of a clustering job" in proc.stderr, proc.stderr


def test_a_truncated_checkpoint_given_as_a_file_is_refused_by_sigma_history_as_by_table1(runs, tmp_path):
    trunc = tmp_path / "trunc.h5"
    with open(os.path.join(runs["flow"], "checkpoint.h5"), "rb") as src, open(trunc, "wb") as dst:
        dst.write(src.read(3000))
    said = {}
    for name in ("sigma_history", "table1"):
        proc = script(name, trunc, "--out", tmp_path / name)
        assert proc.returncode == 2, proc.stderr
        said[name] = proc.stderr.strip().removeprefix(f"{name}: error: ")
    head = f"{trunc}: not a readable HDF5 file (Unable to synchronously open file (truncated file: eof = 3000"
    for name, line in said.items():
        assert line.startswith(head), (name, line)
        assert f"{tmp_path} holds no job.toml, so there is no job to rerun" in line, (name, line)
        assert "--force" not in line, (name, line)
    assert said["sigma_history"].split("; else ")[0] == said["table1"].split("; else ")[0], said


def test_a_renamed_copy_of_a_job_file_is_named_as_a_job_file(runs, tmp_path):
    job = tmp_path / "mine.toml"
    shutil.copy(os.path.join(runs["flow"], "job.toml"), job)
    for name in ("sigma_history", "table1", "fig3_noise"):
        proc = script(name, job, "--out", tmp_path / name)
        assert proc.returncode == 2, proc.stderr
        assert "a job file (TOML)" in proc.stderr and "--force" not in proc.stderr, proc.stderr
