"""The sbatch templates run by bash with a stand-in `srun` (no Slurm here): arguments reach hpcflow run, the GPU
template asks one GPU per task only when the job has GPUs, a requeued job resumes without the --force it was
submitted with, which a first submission keeps, an HPCFLOW_THREADS exported at submission is kept (and checked), and
an HPCFLOW_MPI that srun cannot start as one MPI world is refused before any srun; a tune array worker signalled
with SIGUSR1 checkpoints its trial and requeues the job."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hung
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
#: the job's search space for `hpcflow tune` (hpcflow_tune_array.sbatch)
TUNE = """[checkpoint]
every = 1
[tune]
sampler = "random"
pruner = "none"
[tune.space]
"flow.dt" = {low = 0.5, high = 4.0}
"""


def _env(tmp_path, mpi_list="", **env_extra) -> dict:
    """The environment of a template run by bash: the stand-in srun (`srun --mpi=list` printing `mpi_list` on
    stderr) first on PATH, hpcflow's python, the submit directory tmp_path, Slurm job 4242 (SLURM_JOB_ID, which a
    requeue keeps), and env_extra (NAME=None: unset)."""
    bin_dir = tmp_path / "bin"
    stand_in_srun(bin_dir, tmp_path / "srun_options", mpi_list, stream=2)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", HPCFLOW_PYTHON=sys.executable,
               PYTHONPATH=str(ROOT), SLURM_SUBMIT_DIR=str(tmp_path), SLURM_CPUS_PER_TASK="1", SLURM_JOB_ID="4242")
    env.update(env_extra)
    for name in ("SLURM_GPUS_PER_NODE", "SLURM_RESTART_COUNT"):  # (the test's own environment may be a Slurm job's)
        if name not in env_extra:
            env.pop(name, None)
    for name in [k for k, v in env.items() if v is None]:  # env_extra NAME=None: NAME unset
        env.pop(name)
    return env


def _run(tmp_path, *args, script=SCRIPT, mpi_list="", **env_extra):
    return subprocess.run(["bash", str(script), *map(str, args)], env=_env(tmp_path, mpi_list, **env_extra),
                          capture_output=True, text=True, timeout=120)


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
        # (srun --mpi=list: HPCFLOW_MPI's check, before both)
        assert (tmp_path / "srun_options").read_text().splitlines() == ["--mpi=list", want, want], gpus
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


@pytest.mark.parametrize("script", [MPI_SCRIPT, GPU_SCRIPT, SCRIPT], ids=lambda p: p.name)
def test_a_requeued_template_job_whose_run_had_finished_has_nothing_to_do(tmp_path, script):
    """A job requeued after its run finished (SLURM_RESTART_COUNT 1, the same SLURM_JOB_ID, the finished run in OUT)
    continues it as a requeued `hpcflow submit` job does: `--resume` says there is nothing to do, status 0, the
    results untouched, also where it was submitted with --force. It ran plain `hpcflow run`, refused (status 2) on
    the results. A first submission into the same OUT is still refused."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    r = _run(tmp_path, job, "runs/out", script=script, HPCFLOW_BACKEND="numpy")
    assert r.returncode == 0, r.stderr[-2000:]
    finished = (tmp_path / "runs" / "out" / "summary.json").read_text()
    assert json.loads(finished)["provenance"]["slurm_job_id"] == "4242"
    for force in ((), ("--force",)):
        r = _run(tmp_path, job, "runs/out", *force, script=script, HPCFLOW_BACKEND="numpy", SLURM_RESTART_COUNT="1")
        assert r.returncode == 0 and "finished at step 3 ([flow].steps = 3): nothing to do" in r.stdout, r.stderr
        assert (tmp_path / "runs" / "out" / "summary.json").read_text() == finished
    r = _run(tmp_path, job, "runs/out", script=script, HPCFLOW_BACKEND="numpy")
    assert r.returncode == 2 and "already holds results" in r.stderr, r.stderr


@pytest.mark.parametrize("script", [MPI_SCRIPT, SCRIPT], ids=lambda p: p.name)
def test_a_requeued_template_job_stopped_before_it_replaced_another_jobs_run_starts_it_over(tmp_path, script):
    """`sbatch TEMPLATE JOB OUT --force` on an OUT holding the finished run of another job (4242), preempted before
    its run replaced it (Slurm job 5151 requeued, SLURM_RESTART_COUNT 1): the requeued leg runs as the first leg
    would have, --force starting over. It was continued with --resume, the --force dropped, and said "nothing to do"
    (status 0): the run asked for never ran, the other job's run left in OUT as the job's result."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    r = _run(tmp_path, job, "runs/out", script=script, HPCFLOW_BACKEND="numpy")
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(tmp_path, job, "runs/out", "--force", script=script, HPCFLOW_BACKEND="numpy", SLURM_JOB_ID="5151",
             SLURM_RESTART_COUNT="1")
    assert r.returncode == 0 and "nothing to do" not in r.stdout + r.stderr, r.stdout + r.stderr
    summary = json.loads((tmp_path / "runs" / "out" / "summary.json").read_text())
    assert summary["provenance"]["slurm_job_id"] == "5151" and summary["resumed"] is False, summary
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 3


def _recording_python(tmp_path) -> Path:
    """A python for HPCFLOW_PYTHON that appends "THREADS ARGS" (its HPCFLOW_THREADS, or `unset`) to tmp_path/calls
    for every call, and runs everything but the job's own command (`-m hpcflow run|nn|tune ...`: exit 0 at once)."""
    python = tmp_path / "recording_python"
    python.write_text(f'#!/bin/bash\necho "${{HPCFLOW_THREADS-unset}} $*" >> "{tmp_path}/calls"\n'
                      'case "$1 $2 $3" in "-m hpcflow run"|"-m hpcflow nn"|"-m hpcflow tune") exit 0 ;; esac\n'
                      f'exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return python


def _job_calls(tmp_path) -> list:
    """The HPCFLOW_THREADS each `-m hpcflow run|nn|tune` call of the recording python saw (not the template's
    `--check` of the job before it, hpcflow.submit.template_check)."""
    lines = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    commands = [["-m", "hpcflow", cmd] for cmd in ("run", "nn", "tune")]
    return [line.split(" ", 1)[0] for line in lines if line.split(" ")[1:4] in commands
            and "--check" not in line.split(" ")]


@functools.cache
def _hpcflow_info_refusal(threads: str) -> str:
    """What `hpcflow info` says on stderr when HPCFLOW_THREADS=threads, asserted to be a refusal (exit 2); asked once
    per value for every template's case."""
    said = subprocess.run([sys.executable, "-m", "hpcflow", "info"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_THREADS=threads))
    assert said.returncode == 2, (threads, said.stdout, said.stderr)
    return said.stderr


@pytest.mark.parametrize("script", TEMPLATES, ids=lambda p: p.name)
def test_a_template_keeps_the_hpcflow_threads_exported_at_submission(tmp_path, script):
    """HPCFLOW_THREADS=3 exported at submission reaches the job's command (the templates set it to the task's CPUs,
    2 here, whatever it was); unset or blank, the command gets the task's CPUs. A value hpcflow refuses stops the
    template at once with hpcflow's own line for it, under the template's name (exit 2): no srun, nothing written."""
    job = tmp_path / "job.toml"
    job.write_text(JOB + (TUNE if script.name == "hpcflow_tune_array.sbatch" else ""))  # (checked before it runs)
    python = _recording_python(tmp_path)
    for given, want in (("3", "3"), (None, "2"), ("  ", "2")):
        (tmp_path / "calls").unlink(missing_ok=True)
        r = _run(tmp_path, job, "runs/out", "1", script=script, HPCFLOW_PYTHON=str(python), SLURM_CPUS_PER_TASK="2",
                 HPCFLOW_THREADS=given)
        assert r.returncode == 0, (given, r.stderr[-2000:])
        assert _job_calls(tmp_path) == [want], (given, (tmp_path / "calls").read_text())
    for bad in ("abc", "0", "1025"):
        (tmp_path / "srun_options").unlink(missing_ok=True)
        (tmp_path / "calls").unlink(missing_ok=True)
        said = _hpcflow_info_refusal(bad)
        assert said.startswith("hpcflow info: error: HPCFLOW_THREADS="), said
        r = _run(tmp_path, job, "runs/out", "1", script=script, HPCFLOW_PYTHON=str(python), HPCFLOW_THREADS=bad)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert r.stderr == said.replace("hpcflow info:", f"{script.name}:", 1), r.stderr
        assert not (tmp_path / "srun_options").exists() and not (tmp_path / "runs").exists()
        assert not _job_calls(tmp_path)


#: `srun --mpi=list` of Slurm 23.x (its log form, on stderr)
MPI_LIST = "srun: MPI types are...\nsrun: cray_shasta\nsrun: none\nsrun: pmi2\nsrun: pmix\nsrun: pmix_v4\n"


@pytest.mark.parametrize("script", [MPI_SCRIPT, GPU_SCRIPT], ids=lambda p: p.name)
def test_an_mpi_template_refuses_an_hpcflow_mpi_its_srun_cannot_start_as_one_world(tmp_path, script):
    """HPCFLOW_MPI that srun does not offer (srun failed as the job's first step started, exit 1 in srun's own words),
    the default pmi2 where srun lacks it, and `none` for two tasks (srun starts each as a world of one rank, and each
    runs the whole job): one line naming HPCFLOW_MPI, and for a type srun lacks the types it offers, exit 2 before
    any other srun or the run. One that srun offers, and `none` for one task, reach every srun."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    python = _recording_python(tmp_path)
    offered = "cray_shasta, none, pmi2, pmix, pmix_v4"
    for listing, mpi, ntasks, said in (
            (MPI_LIST, "pmi", "1", f"HPCFLOW_MPI='pmi' is not an MPI type of this cluster's srun, which offers "
                                   f"{offered} (srun --mpi=list); set HPCFLOW_MPI to one of them, or unset it (pmi2)"),
            (MPI_LIST.replace("srun: pmi2\n", ""), None, "2", "HPCFLOW_MPI (unset: its default pmi2) is not an MPI "
             "type of this cluster's srun, which offers cray_shasta, none, pmix, pmix_v4 (srun --mpi=list); set "
             "HPCFLOW_MPI to one of them"),
            (MPI_LIST, "none", "2", "HPCFLOW_MPI='none' starts each of the job's 2 tasks as an MPI world of one rank"),
            ("", "--mpi=pmi2", "1", "HPCFLOW_MPI='--mpi=pmi2' is not an MPI type name")):  # srun's list unknown
        for name in ("srun_options", "calls"):
            (tmp_path / name).unlink(missing_ok=True)
        r = _run(tmp_path, job, "runs/out", script=script, mpi_list=listing, HPCFLOW_PYTHON=str(python),
                 HPCFLOW_MPI=mpi, SLURM_NTASKS=ntasks)
        assert r.returncode == 2, (mpi, r.stdout, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{script.name}: error: {said}"), (mpi, r.stderr)
        record = tmp_path / "srun_options"
        assert not record.exists() or record.read_text() == "--mpi=list\n", mpi  # no other srun
        assert not (tmp_path / "runs").exists() and not _job_calls(tmp_path)
    for mpi, ntasks in (("cray_shasta", "2"), ("none", "1")):
        (tmp_path / "srun_options").unlink(missing_ok=True)
        r = _run(tmp_path, job, "runs/out", script=script, mpi_list=MPI_LIST, HPCFLOW_PYTHON=str(python),
                 HPCFLOW_MPI=mpi, SLURM_NTASKS=ntasks)
        assert r.returncode == 0, (mpi, r.stderr[-2000:])
        calls = (tmp_path / "srun_options").read_text().splitlines()
        assert calls[0] == "--mpi=list" and len(calls) == 3, calls  # the check, `hpcflow info`, the run
        assert all(line.split()[0] == f"--mpi={mpi}" for line in calls[1:]), calls


TUNE_SCRIPT = ROOT / "slurm" / "hpcflow_tune_array.sbatch"


@pytest.mark.parametrize("who", ["batch", "full"])
def test_a_tune_array_worker_signalled_checkpoints_its_trial_and_requeues_the_job(tmp_path, who):
    """SIGUSR1 to the tune array template's batch shell alone (what --signal=B:USR1@120 sends) or to it and its step
    (scancel --full) while a trial runs: the trial's checkpoint is written, the worker exits 4 and the job is requeued
    (scontrol requeue SLURM_JOB_ID), as in the MPI and GPU templates. bash ended on the signal (138), the job was
    never requeued, and the worker ran on or stopped unrequeued. (On a real Slurm: tests/test_slurm.py.)"""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> "{tmp_path}/scontrol.log"\n')
    (bin_dir / "scontrol").chmod(0o755)
    job = tmp_path / "job.toml"
    job.write_text(JOB.replace("steps = 3", "steps = 100000") + TUNE)
    proc = subprocess.Popen(["bash", str(TUNE_SCRIPT), str(job), "study", "1"], stdout=subprocess.PIPE,
                            env=_env(tmp_path, SLURM_JOB_ID="77", **hung.FAULTS), stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not list((tmp_path / "study").glob("trials/*/checkpoint.h5")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.1)
        (os.killpg if who == "full" else os.kill)(proc.pid, signal.SIGUSR1)
        try:
            said, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # the stand-in srun's task runs in a process group of its own
            pytest.fail(hung.describe(proc, int((bin_dir / "srun.task").read_text())))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # (a worker left running by bash's end)
    assert proc.returncode == 4, said
    assert "hpcflow tune: stopped: signal received during trial 0 (checkpoint in study/trials/0000)" in said, said
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77\n"


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_a_template_run_stopped_by_sigterm_alone_is_not_requeued(tmp_path, sig):
    """A signal to the run's tasks alone (what `scancel --signal=...` sends; the stand-in srun's task group here):
    SIGUSR1 writes the checkpoint and requeues the job (exit 4); SIGTERM, the user's stop, writes it too but the job is
    not requeued, as a `hpcflow submit` job stopped so is not (exit 4, said in one line). Both were requeued.
    (On a real Slurm: tests/test_slurm.py.)"""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> "{tmp_path}/scontrol.log"\n')
    (bin_dir / "scontrol").chmod(0o755)
    job = tmp_path / "job.toml"
    job.write_text(JOB.replace("steps = 3", "steps = 100000") + "[checkpoint]\nevery = 1\n")
    proc = subprocess.Popen(["bash", str(MPI_SCRIPT), str(job), "runs/out"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=_env(tmp_path, MPI_LIST, SLURM_JOB_ID="78", HPCFLOW_BACKEND="numpy"))
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "runs" / "out" / "checkpoint.h5").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.1)
        os.killpg(int((bin_dir / "srun.task").read_text()), getattr(signal, sig))
        said, _ = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 4, said
    assert "hpcflow run: stopped: signal received: checkpoint of step" in said, said
    requeued = (tmp_path / "scontrol.log").read_text() if (tmp_path / "scontrol.log").exists() else ""
    if sig == "SIGUSR1":
        assert requeued == "requeue 78\n", said
    else:
        # (the stand-in scontrol says nothing of the job: whether Slurm requeues it is unknown)
        assert requeued == "-o show job 78\n" and said.count(
            "the run stopped on SIGTERM, its checkpoint written; the job is not requeued for it: unless Slurm requeues "
            "it (scontrol requeue, preemption), continue it with: scontrol requeue 78\n") == 1, said


@pytest.mark.parametrize("script", [SCRIPT, MPI_SCRIPT], ids=lambda p: p.name)
def test_a_checkpoint_request_as_the_run_step_starts_leaves_the_run_to_take_the_later_one(tmp_path, script):
    """SIGUSR1 (and SIGUSR2) in the run step's first moments, before Python has set a handler: here each task's
    process, and the hpcflow command it starts, signals itself as it starts, before it execs Python (a stand-in
    python). The run goes on, and a later SIGUSR1 writes the checkpoint and requeues the job. By the signal's default
    action the task ended (138), and the job FAILED, not requeued, with nothing written. (On a real Slurm:
    tests/test_slurm.py.)"""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> "{tmp_path}/scontrol.log"\n')
    (bin_dir / "scontrol").chmod(0o755)
    python = tmp_path / "python"  # the step's tasks (and their hpcflow run) signalled as they start
    python.write_text('#!/bin/bash\nif [[ "$*" == "-m hpcflow.submit.step --task "* || "$*" == "-m hpcflow run "* ]]; '
                      f'then kill -USR2 $$; kill -USR1 $$; echo "signalled: $2" >> "{tmp_path}/signalled"; fi\n'
                      f'exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    job = tmp_path / "job.toml"
    job.write_text(JOB.replace("steps = 3", "steps = 100000") + "[checkpoint]\nevery = 1\n")
    proc = subprocess.Popen(["bash", str(script), str(job), "runs/out"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env=_env(tmp_path, MPI_LIST, SLURM_JOB_ID="79", HPCFLOW_BACKEND="numpy",
                                     HPCFLOW_PYTHON=str(python)))
    try:
        deadline = time.monotonic() + 90
        while not (tmp_path / "runs" / "out" / "checkpoint.h5").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
            time.sleep(0.1)
        os.killpg(int((bin_dir / "srun.task").read_text()), signal.SIGUSR1)
        said, _ = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    info = "signalled: hpcflow.submit.step\n" if script == MPI_SCRIPT else ""  # (its hpcflow info step's task too)
    # (first the `hpcflow run --check` before them, hpcflow.submit.template_check, which ignores both as it starts)
    assert (tmp_path / "signalled").read_text() == ("signalled: hpcflow\n" + info +
                                                    "signalled: hpcflow.submit.step\nsignalled: hpcflow\n"), said
    assert proc.returncode == 4, said
    assert "hpcflow run: stopped: signal received: checkpoint of step" in said, said
    assert (tmp_path / "scontrol.log").read_text() == "requeue 79\n", said


@pytest.mark.parametrize("script", [MPI_SCRIPT, GPU_SCRIPT], ids=lambda p: p.name)
def test_an_mpi_template_ends_with_the_status_of_hpcflow_infos_refusal(tmp_path, script):
    """An MPI type srun offers (cray_shasta) that still hands the tasks PMIx variables, where the MPI mpi4py loads
    has no PMIx: the first step, `hpcflow info` under those variables, refuses in one line with exit 2, and the job
    ends with that status before the run, not with grep's 1 at the end of the pipe that read its output."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    r = _run(tmp_path, job, "runs/out", script=script, mpi_list=MPI_LIST, HPCFLOW_MPI="cray_shasta", SLURM_NTASKS="1",
             PMIX_RANK="0", PMIX_NAMESPACE="slurm.pmix.4242.0")
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcflow info: error: PMIX_"), r.stderr
    assert not (tmp_path / "runs").exists()


def _mpich_wheel_maps_libmpi() -> str | None:
    """The libmpi file `from mpi4py import MPI` maps into a python (without MPI_Init, links resolved, read from
    /proc/self/maps) where it is one of the files pip's mpich distribution installed, else None."""
    from importlib import metadata

    code = ("from mpi4py import MPI\nimport os\nprint(next(os.path.realpath(l.split(maxsplit=5)[-1].strip()) "
            "for l in open('/proc/self/maps') if '/libmpi' in l))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, MPI4PY_RC_INITIALIZE="false"))
    assert r.returncode == 0, r.stderr
    try:
        dist = metadata.distribution("mpich")
    except metadata.PackageNotFoundError:
        return None
    wheel = {os.path.realpath(dist.locate_file(f)) for f in dist.files or ()}
    return r.stdout.strip() if r.stdout.strip() in wheel else None


@pytest.mark.parametrize("script", [MPI_SCRIPT, GPU_SCRIPT], ids=lambda p: p.name)
def test_an_mpi_template_refuses_pmix_where_mpi4py_loads_the_mpich_wheel(tmp_path, script):
    """HPCFLOW_MPI=pmix or pmix_v4, which srun offers, where mpi4py loads the mpich wheel's MPI (PMI-1/PMI-2 only):
    the job's first srun failed with exit 1 and one "can not load PMIx library" line a task. Refused in the batch
    shell in one line naming HPCFLOW_MPI and the wheel's library, with the fix pmi2, exit 2, before any srun but
    the --mpi=list check, for one task as for two (the template's srun gets --mpi either way), as `hpcflow submit
    --mpi pmix` refuses it. pmi2 reaches every srun."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    python = _recording_python(tmp_path)
    mapped = _mpich_wheel_maps_libmpi()
    for mpi, ntasks in (("pmix", "2"), ("pmix_v4", "1"), ("pmi2", "2")):
        for name in ("srun_options", "calls"):
            (tmp_path / name).unlink(missing_ok=True)
        r = _run(tmp_path, job, "runs/out", script=script, mpi_list=MPI_LIST, HPCFLOW_PYTHON=str(python),
                 HPCFLOW_MPI=mpi, SLURM_NTASKS=ntasks)
        if mpi == "pmi2" or mapped is None:  # (mpi4py installed against another MPI: not refused)
            assert r.returncode == 0, (mpi, r.stderr[-2000:])
            calls = (tmp_path / "srun_options").read_text().splitlines()
            assert len(calls) == 3 and all(line.split()[0] == f"--mpi={mpi}" for line in calls[1:]), calls
            continue
        assert r.returncode == 2, (mpi, r.stdout, r.stderr)
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"{script.name}: error: HPCFLOW_MPI={mpi!r}: mpi4py loads the MPI library of the mpich wheel"), r.stderr
        assert os.path.basename(mapped) in lines[0] and "HPCFLOW_MPI=pmi2" in lines[0], lines
        assert (tmp_path / "srun_options").read_text() == "--mpi=list\n", mpi  # no other srun
        assert not (tmp_path / "runs").exists() and not _job_calls(tmp_path)


@pytest.mark.parametrize("script", sorted((ROOT / "slurm").glob("*.sbatch")), ids=lambda p: p.name)
def test_a_requeueing_template_asks_for_the_checkpoint_signal_before_its_time_limit(script):
    """A template with --requeue asks Slurm for SIGUSR1 before its time limit (--signal=USR1@120, which its run
    checkpoints and the job is requeued on): without it the time limit's SIGTERM ends the job, not requeued."""
    headers = [line.split(None, 1)[1] for line in script.read_text().splitlines() if line.startswith("#SBATCH ")]
    if "--requeue" in headers:
        assert "--signal=USR1@120" in headers, headers


@pytest.mark.parametrize("script", TEMPLATES, ids=lambda p: p.name)
def test_a_template_refuses_a_python_that_imports_hpcflow_without_its_dependencies(tmp_path, script):
    """HPCFLOW_PYTHON a python where hpcflow imports from PYTHONPATH but NumPy and the rest are missing (here: the
    test's python without site-packages): one line naming HPCFLOW_PYTHON and the missing modules, exit 2, before any
    srun; it passed the template's `import hpcflow` check and failed in a ModuleNotFoundError traceback, exit 1."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    bare = tmp_path / "bare_python"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    bare.chmod(0o755)
    assert subprocess.run([str(bare), "-c", "import hpcflow"], env=_env(tmp_path)).returncode == 0
    r = _run(tmp_path, job, "runs/out", "1", script=script, HPCFLOW_PYTHON=str(bare))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script.name}: error: HPCFLOW_PYTHON"), r.stderr
    assert "numpy" in lines[0], lines[0]
    assert not (tmp_path / "srun_options").exists() and not (tmp_path / "runs").exists()


def test_the_modules_a_template_checks_are_the_packages_hpcflow_requires():
    """template_env's REQUIRED_MODULES import the packages of setup.cfg's install_requires."""
    import configparser
    import re

    from hpcflow.submit.template_env import REQUIRED_MODULES

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    packages = {re.split(r"[<>=!~ ;\[]", line.strip())[0].lower()
                for line in cfg["options"]["install_requires"].splitlines() if line.strip()}
    assert {{"sklearn": "scikit-learn"}.get(m, m) for m in REQUIRED_MODULES} == packages


@pytest.mark.parametrize("script", TEMPLATES, ids=lambda p: p.name)
def test_a_template_without_its_arguments_says_its_usage_in_one_line(tmp_path, script):
    """Without JOB.toml and OUTDIR (the tune template: and TRIALS_PER_WORKER), or with one empty: bash's
    `line 27: 1: usage: ...` and exit 1 before; now the template's one line, exit 2, before any srun."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    for args in ((), (job,), (job, ""), ("", "runs/out", "1")):
        r = _run(tmp_path, *args, script=script)
        assert r.returncode == 2, (args, r.stderr)
        line, = r.stderr.splitlines()
        assert line.startswith(f"{script.name}: error: ") and f"usage: sbatch slurm/{script.name} JOB.toml OUTDIR" in line
        assert not (tmp_path / "srun_options").exists() and not (tmp_path / "runs").exists()
