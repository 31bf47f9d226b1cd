"""The sbatch templates run by bash with a stand-in `srun` (no Slurm here): arguments reach hpcflow run, the GPU
template asks one GPU per task only when the job has GPUs, and a requeued job resumes without the --force it was
submitted with, which a first submission keeps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobtexts import NN_POINTS
from standin_srun import stand_in_srun

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "slurm" / "hpcflow_run.sbatch"
GPU_SCRIPT = ROOT / "slurm" / "hpcflow_gpu.sbatch"

JOB = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 40
n_test = 20
[kernel]
name = "delta"
[flow]
dt = 0.5
steps = 3
"""


def _run(tmp_path, *args, script=SCRIPT, **env_extra):
    bin_dir = tmp_path / "bin"
    stand_in_srun(bin_dir, tmp_path / "srun_options")
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", HPCFLOW_PYTHON=sys.executable,
               PYTHONPATH=str(ROOT), SLURM_SUBMIT_DIR=str(tmp_path), SLURM_CPUS_PER_TASK="1")
    env.update(env_extra)
    for name in ("SLURM_GPUS_PER_NODE", "SLURM_RESTART_COUNT"):  # (the test's own environment may be a Slurm job's)
        if name not in env_extra:
            env.pop(name, None)
    for name in [k for k, v in env.items() if v is None]:  # env_extra NAME=None: NAME unset
        env.pop(name)
    return subprocess.run(["bash", str(script), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_sbatch_script_runs_the_job_with_extra_arguments(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    r = _run(tmp_path, job, "runs/out", "--set", "flow.steps=2")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "runs" / "out" / "summary.json").read_text())  # relative to the submit dir
    assert summary["steps"] == 2 and summary["overrides"] == ["flow.steps=2"]
    assert "hpcflow" in r.stdout  # `hpcflow info` ran first
    r = _run(tmp_path, job)  # OUTDIR missing: usage message, non-zero exit, nothing written
    assert r.returncode != 0 and "usage" in r.stderr


TEMPLATES = sorted((ROOT / "slurm").glob("*.sbatch"))


@pytest.mark.parametrize("script", TEMPLATES, ids=lambda p: p.name)
def test_a_template_without_hpcflow_python_stops_at_once_naming_hpcflow_python(tmp_path, script):
    """Submitted from elsewhere than the repository root, with no venv active, a template ran .venv/bin/python of
    the submit directory ('No such file or directory' from srun, or in the middle of a command substitution). Now it
    stops first with one line naming HPCFLOW_PYTHON (exit 2): no srun, nothing written. So does an HPCFLOW_PYTHON
    that is not a python with hpcflow."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    other = tmp_path / "other_python"  # a python without hpcflow: `python -c "import hpcflow"` fails
    other.write_text("#!/bin/sh\necho 'ModuleNotFoundError: No module named hpcflow' >&2\nexit 1\n")
    other.chmod(0o755)
    for python in (None, str(tmp_path / "nowhere" / "python"), str(other)):
        r = _run(tmp_path, job, "runs/out", "1", script=script, HPCFLOW_PYTHON=python, VIRTUAL_ENV=None)
        assert r.returncode == 2, (python, r.stdout, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{script.name}: error:") and "HPCFLOW_PYTHON=" in lines[0]
        assert not (tmp_path / "srun_options").exists() and not (tmp_path / "runs").exists()


def test_a_template_runs_the_python_of_the_venv_active_at_submission(tmp_path):
    """Without HPCFLOW_PYTHON the venv active when sbatch ran (VIRTUAL_ENV, which sbatch passes on) gives the python,
    whatever the submit directory."""
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\necho venv-python >> "{tmp_path}/calls"\nexec "{sys.executable}" "$@"\n')
    (venv_bin / "python").chmod(0o755)
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    r = _run(tmp_path, job, "runs/out", HPCFLOW_PYTHON=None, VIRTUAL_ENV=str(tmp_path / "venv"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path / "runs" / "out" / "summary.json").read_text())["steps"] == 3
    assert len((tmp_path / "calls").read_text().splitlines()) >= 3  # the check, hpcflow info, the run


def test_gpu_template_binds_one_gpu_per_task_only_with_gpus(tmp_path):
    """Without GPUs (an empty GPU_BIND under set -u) the run goes on NumPy; with 4 per node every srun asks one GPU
    per task. Both srun calls (`hpcflow info`, the run) get the same options."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    kill = "--mpi=pmi2 --kill-on-bad-exit=1"  # a rank that dies ends the others
    for gpus, out, want in ((None, "runs/cpu", kill), ("4", "runs/gpu", f"{kill} --gpus-per-task=1"),
                            ("a100:0", "runs/none", kill)):
        (tmp_path / "srun_options").unlink(missing_ok=True)
        extra = {} if gpus is None else {"SLURM_GPUS_PER_NODE": gpus}
        r = _run(tmp_path, job, out, script=GPU_SCRIPT, HPCFLOW_BACKEND="numpy", **extra)
        assert r.returncode == 0, r.stderr[-2000:]
        assert (tmp_path / "srun_options").read_text().splitlines() == [want, want], gpus
        assert json.loads((tmp_path / out / "summary.json").read_text())["steps"] == 3


MPI_SCRIPT = ROOT / "slurm" / "hpcflow_mpi.sbatch"
NN_JOB = NN_POINTS + """[model]
depth = 1
width = 8
[training]
epochs = 1
batch_size = 100
threads = 1
[ntk]
enabled = false
"""


def _preempted(out: Path) -> None:
    """Mark the finished run in `out` as preempted (what its summary says after SIGUSR1): a requeue resumes it."""
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "status": "preempted"}))


# One case per template: each has its own line dropping --force from a resumed command; the command itself (run or
# nn, with or without --resume) comes from hpcflow.submit.requeue for every template alike, checked for both kinds
# in tests/test_submit.py (test_the_sbatch_templates_command_follows_the_job_kind_and_the_directory). Both kinds
# still go through a template here.
@pytest.mark.parametrize("script,kind", [(MPI_SCRIPT, "nn"), (GPU_SCRIPT, "flow"), (SCRIPT, "flow")],
                         ids=["mpi-nn", "gpu-flow", "run-flow"])
def test_a_job_submitted_with_force_starts_over_and_resumes_when_requeued(tmp_path, script, kind, monkeypatch):
    """`sbatch TEMPLATE JOB OUT --force ...` on an OUT holding a preempted run starts over, as asked (it resumed it,
    or failed on a job shorter than the checkpoint); the same job requeued after preemption (SLURM_RESTART_COUNT 1)
    runs `--resume` without the --force (which would refuse it) and continues from its checkpoint."""
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(JOB if kind == "flow" else NN_JOB)
    longer = ["--set", "flow.steps=4"] if kind == "flow" else ["--set", "training.epochs=2"]
    out = tmp_path / "runs" / "out"
    # the preempted run the submission finds in OUT (the template's run of it is the one below): made in this process
    monkeypatch.setenv("HPCFLOW_BACKEND", "numpy")
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    assert main(["run", str(job), "--out", str(out), "--quiet", *longer]) == 0
    _preempted(out)
    r = _run(tmp_path, job, "runs/out", "--force", script=script, HPCFLOW_BACKEND="numpy")  # first submission
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] is False and len(summary["legs"]) == 1, summary
    assert summary["checkpoint_step"] == (3 if kind == "flow" else 1), summary
    _preempted(out)
    r = _run(tmp_path, job, "runs/out", "--force", *longer, script=script, HPCFLOW_BACKEND="numpy",
             SLURM_RESTART_COUNT="1")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] is True and summary["status"] == "finished", summary
    assert summary["checkpoint_step"] == (4 if kind == "flow" else 2) and len(summary["legs"]) == 2
