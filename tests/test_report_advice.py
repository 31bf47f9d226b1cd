"""The advice `hpcflow report` and the run readers give for a run that is not whole is the command that mends it,
and mends it: a garbled summary.json beside a whole checkpoint is written again by --resume (no step run), not
thrown away with the run by --force."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_garbled_summary_beside_a_whole_checkpoint_is_mended_by_the_resume_it_names(runs, tmp_path):
    from hpcflow.analysis.rundir import completeness

    d = tmp_path / "run"
    shutil.copytree(runs["flow"], d)
    good = (d / "summary.json").read_text()
    (d / "summary.json").write_text("{cut short")
    where = os.path.abspath(d)
    command = f"hpcflow run {shlex.quote(os.path.join(where, 'job.toml'))} --out {shlex.quote(where)} --resume"
    complete, reason = completeness(d)
    assert not complete
    assert reason == f"summary.json is not a JSON object (damaged); continue it with {command}"
    assert "--force" not in reason
    argv = shlex.split(command)
    proc = subprocess.run([sys.executable, "-m", "hpcflow", *argv[1:]], cwd=ROOT, env=env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert completeness(d) == (True, "")
    import json

    mine, its = json.loads((d / "summary.json").read_text()), json.loads(good)
    assert mine["checkpoint_step"] == its["checkpoint_step"] and mine["sigma_train_final"] == its["sigma_train_final"]


@pytest.mark.parametrize("kind, name, script", [("flow", "checkpoint.h5", "sigma_history"),
                                                ("clustering", "fig2_distances.h5", "fig2_heatmaps"),
                                                ("scaling", "distances.h5", "fig3_scaling")])
def test_a_cut_data_file_beside_its_job_and_summary_is_said_damaged_plainly_with_the_command(runs, tmp_path, kind,
                                                                                           name, script):
    from analysis_runs import script as run_script

    d = tmp_path / "run"
    shutil.copytree(runs[kind], d)
    with open(d / name, "r+b") as fh:
        fh.truncate(1000)
    proc = run_script(script, d, "--out", tmp_path / "f")
    assert proc.returncode == 2, proc.stderr
    where = os.path.abspath(d)
    command = f"hpcflow run {shlex.quote(os.path.join(where, 'job.toml'))} --out {shlex.quote(where)} --force"
    assert proc.stderr.startswith(f"{script}: error: {d / name}: not a readable HDF5 file ("), proc.stderr
    assert proc.stderr.endswith(f": the file is damaged; rerun the job with --force: {command}\n"), proc.stderr
    assert "if the run wrote it" not in proc.stderr and "else" not in proc.stderr


def test_a_cut_network_checkpoint_beside_a_finished_nn_h5_names_its_fix(runs, tmp_path):
    from hpcflow.analysis.rundir import completeness

    d = tmp_path / "run"
    shutil.copytree(runs["nn"], d)
    with open(d / "checkpoint.pt", "r+b") as fh:
        fh.truncate(3000)
    where = os.path.abspath(d)
    command = f"hpcflow nn {shlex.quote(os.path.join(where, 'job.toml'))} --out {shlex.quote(where)} --force"
    assert completeness(d) == (False, "status unknown: checkpoint.pt unreadable (damaged); restore it from a copy or "
                                      f"rerun the job with --force: {command}")


def test_a_resume_refused_for_a_damaged_nn_h5_names_the_rerun_command(runs, tmp_path):
    """(The refusal of a caller that does not write nn.h5 again: `hpcflow nn --resume` itself redoes it.)"""
    import torch

    from hpcflow.errors import InputFileError
    from hpcflow.jobs import registry
    from hpcflow.nn.job import check_resume

    d = tmp_path / "run"
    shutil.copytree(runs["nn"], d)
    with open(d / "nn.h5", "r+b") as fh:
        fh.truncate(1000)
    path = str(d / "checkpoint.pt")
    state = torch.load(path, weights_only=True)
    _, cfg = registry.load(str(d / "job.toml"), [])
    with pytest.raises(InputFileError) as exc:
        check_resume(cfg, state, path)
    where = os.path.abspath(d)
    assert str(exc.value).startswith(f"{d / 'nn.h5'}: ")
    assert str(exc.value).endswith(
        "in a finished run, which --resume leaves as it is; rerun the job with --force: hpcflow nn "
        f"{shlex.quote(os.path.join(where, 'job.toml'))} --out {shlex.quote(where)} --force"), str(exc.value)
