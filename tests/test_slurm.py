"""The sbatch templates and `hpcflow submit --executor slurm` on a real Slurm (slurm/local-cluster.sh start).

Without a Slurm that answers, the Slurm tests are skipped with the reason; with HPCFLOW_CI=1 (set by .ci/run,
which starts the local cluster) they fail instead.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jobtexts import DELTA_FLOW

ROOT = Path(__file__).resolve().parents[1]
#: seconds between two looks at a job's state (squeue, scontrol show job)
POLL = 0.1
TEMPLATES = sorted((ROOT / "slurm").glob("*.sbatch")) + [ROOT / "slurm" / "local-cluster.sh"]

JOB = """
[job]
kind = "flow"
[geometry]
n_train = 90
n_test = 50
seed = 4
""" + DELTA_FLOW + """[tune]
sampler = "random"
pruner = "none"
[tune.space]
"flow.dt" = {low = 0.5, high = 4.0}
"""


@pytest.mark.parametrize("script", TEMPLATES, ids=lambda p: p.name)
def test_templates_parse_and_say_what_to_edit(script):
    """Each sbatch template appends to its log: a requeued job (every template's can be: --requeue, or Slurm's
    default JobRequeue=1 after a node failure) truncated it as it started again, losing the first leg's lines."""
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    lines = script.read_text().splitlines()
    assert lines[0] == "#!/bin/bash" or lines[0] == "#!/usr/bin/env bash"
    assert lines[1].startswith("# EDIT:")
    if script.suffix == ".sbatch":
        assert "#SBATCH --open-mode=append" in lines


@functools.cache
def _slurm_answers() -> bool:
    """Whether sinfo answers: asked once for the module (with no controller up, sinfo gives up after ~9 s)."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return False
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    """A working directory for jobs on a Slurm that answers (skip without one; fail under HPCFLOW_CI=1)."""
    if not _slurm_answers():
        reason = "no Slurm answers here (sinfo); start one with: sudo slurm/local-cluster.sh start"
        if os.environ.get("HPCFLOW_CI") == "1":
            pytest.fail(f"HPCFLOW_CI=1 but {reason}")
        pytest.skip(reason)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("HPCFLOW_PYTHON", sys.executable)
    (tmp_path / "job.toml").write_text(JOB)
    return tmp_path


def _sbatch(cwd, *args, timeout=150):
    """sbatch, then poll squeue until the job (every task of an array) has left the queue; cancel it on timeout."""
    r = subprocess.run(["sbatch", "--parsable", "--mem=1G", *map(str, args)], cwd=cwd, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return _completed(r.stdout.strip().split(";")[0], args, timeout)


def _completed(job: str, args, timeout: float, state: str = "COMPLETED") -> str:
    """Poll squeue until `job` has left the queue (cancel it after `timeout` s); assert that it ended in `state`."""
    deadline = time.monotonic() + timeout
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, timeout=30).stdout.strip():
        if time.monotonic() > deadline:
            subprocess.run(["scancel", job], timeout=30)
            pytest.fail(f"sbatch {args} did not finish in {timeout} s (job {job}); is the node idle? sinfo")
        time.sleep(POLL)
    info = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30).stdout
    states = re.findall(r"JobState=(\S+)", info)
    assert states and set(states) == {state}, info
    return job


def _documented_run_lines() -> list:
    """The `sbatch ... slurm/hpcflow_run.sbatch JOB DIR` lines the README's command list and the template's header give
    for a Slurm node of their own (README: JOB.toml DIR; the header's workstation example), as argument lists."""
    import shlex

    readme = re.findall(r"^ +(sbatch [^#\n]*slurm/hpcflow_run\.sbatch JOB\.toml DIR) ", (ROOT / "README.md").read_text(),
                        re.M)
    header = re.findall(r"^#\s+(sbatch -c .*slurm/hpcflow_run\.sbatch .*)$", (ROOT / "slurm" / "hpcflow_run.sbatch")
                        .read_text(), re.M)
    return [shlex.split(line) for line in readme[:1] + header]


def test_the_documented_run_template_lines_fit_a_workstation_node(slurm):
    """The README's first `sbatch slurm/hpcflow_run.sbatch JOB.toml DIR` (the command list) and the template's own
    workstation example ask what this one-node cluster (slurm/local-cluster.sh: a workstation's CPUs) holds:
    `sbatch --test-only` accepts them. The README's line ran the template's -c 8 --mem=16G unedited, which on a 2-CPU
    node pends for ever (PartitionConfig)."""
    lines = _documented_run_lines()
    assert lines and lines[0][-2:] == ["JOB.toml", "DIR"], lines  # the README's line first
    for argv in lines:
        args = [str(ROOT / a) if a == "slurm/hpcflow_run.sbatch" else a for a in argv[1:]]
        r = subprocess.run(["sbatch", "--test-only", *args], cwd=slurm, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "to start at" in r.stderr, (argv, r.stdout + r.stderr)


def test_run_template_on_slurm(slurm):
    job = _sbatch(slurm, "--cpus-per-task=1", "--output=run.out", ROOT / "slurm" / "hpcflow_run.sbatch",
                  "job.toml", "runs/a", "--set", "flow.steps=2")
    assert job.isdigit()
    assert json.loads((slurm / "runs" / "a" / "summary.json").read_text())["steps"] == 2


@pytest.mark.parametrize("template, extra", [
    ("hpcflow_mpi.sbatch", ()),
    # no GPU on the test cluster: the GPU template's launch (one rank per task, one MPI world) without GPUs
    ("hpcflow_gpu.sbatch", ("--gpus-per-node=0", "--cpus-per-task=1")),
])
def test_mpi_templates_give_one_world_of_two_ranks(slurm, template, extra):
    _sbatch(slurm, "--ntasks-per-node=2", *extra, "--output=mpi.out", ROOT / "slurm" / template, "job.toml", "runs/m")
    log = (slurm / "mpi.out").read_text()
    assert re.search(r"^mpi_world_size\s+2$", log, re.M), log  # srun --mpi=pmi2: one world, not two of size 1
    assert json.loads((slurm / "runs" / "m" / "summary.json").read_text())["n_train"] == 90


@pytest.mark.parametrize("template, extra", [("hpcflow_run.sbatch", ("--cpus-per-task=1",)),
                                             ("hpcflow_mpi.sbatch", ("--ntasks-per-node=2",))])
def test_a_template_job_with_a_bad_job_file_fails_at_once_with_its_one_line(slurm, template, extra):
    """A job file with an unknown key: the job FAILED with exit code 2 and its log is the one line naming the key,
    written before `hpcflow info` (no environment said) and before any step; nothing in OUT."""
    (slurm / "bad job.toml").write_text(JOB.replace("n_train", "n_trian"))
    r = subprocess.run(["sbatch", "--parsable", "--mem=1G", *extra, "--output=bad.out", str(ROOT / "slurm" / template),
                        "bad job.toml", "runs/b"], cwd=slurm, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    job = _completed(r.stdout.strip(), template, 120, state="FAILED")
    assert re.search(r"(?:^|\s)ExitCode=2:0(?:\s|$)", _job_info(job)), _job_info(job)
    lines = (slurm / "bad.out").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcflow run: error: bad job.toml: [geometry].n_trian "), lines
    assert not (slurm / "runs").exists()


def test_tune_array_workers_share_one_journal(slurm):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    _sbatch(slurm, "--array=0-1", "--output=tune-%a.out", ROOT / "slurm" / "hpcflow_tune_array.sbatch",
            "job.toml", "study", "2")
    storage = JournalStorage(JournalFileBackend(str(slurm / "study" / "study.journal")))
    trials = optuna.load_study(study_name="job", storage=storage).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 4
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # two array tasks, one study
    assert all((slurm / "study" / t.user_attrs["run_dir"] / "checkpoint.h5").is_file() for t in trials)


def test_a_signalled_tune_array_worker_checkpoints_its_trial_and_is_requeued(slurm):
    """hpcflow_tune_array.sbatch (one worker) sent SIGUSR1 while a trial runs, as its --signal=USR1@120 sends it
    before the time limit: the trial writes its checkpoint, the worker exits 4 and the job is requeued (Restarts=1),
    as with the MPI template. The template's worker was a plain srun, without --signal, a trap or
    hpcflow.submit.step: its status 4 ended the job FAILED, never requeued, the trial's checkpoint left unused."""
    # dt up to 1.5, where every trial's points keep positive-definite metrics (2.54 diverged at step 10 once, ending
    # the trial before the signal; 2.5 did so for 1 seed of 6 at 300 steps, 1.5 for none of 26 at 300-600)
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", "steps = 100000").replace("high = 4.0", "high = 1.5")
                                     + "[checkpoint]\nevery = 1\n")
    template = ROOT / "slurm" / "hpcflow_tune_array.sbatch"
    assert "#SBATCH --signal=USR1@120" in template.read_text().splitlines()
    r = subprocess.run(["sbatch", "--parsable", "--mem=1G", "--array=0", "--output=tune.out", str(template),
                        "long.toml", "study", "1"], cwd=slurm, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    job = r.stdout.strip().split(";")[0]
    _signal_and_wait_for_requeue(job, slurm / "study" / "trials" / "0000" / "checkpoint.h5", "USR1",
                                 lambda: (slurm / "tune.out").read_text())
    log = (slurm / "tune.out").read_text()
    assert log.count("hpcflow tune: stopped: signal received during trial 0 (checkpoint in study/trials/0000)") == 1, log
    assert "Exited with exit code 4" in log, log  # srun's line for the worker's status


def test_hpcflow_submit_slurm_wait_returns_the_exit_status(slurm):
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "runs/s", "--executor", "slurm",
                        "--ntasks-per-node", "2", "--time", "5", "--wait"], cwd=slurm, capture_output=True, text=True,
                       timeout=150)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"slurm job \d+: hpcflow run ", r.stdout) and "finished with exit status 0" in r.stdout
    _no_sacct_noise(r.stdout + r.stderr)
    script = next((slurm / "runs" / "s_logs").glob("*_submission.sh")).read_text()
    assert "--mpi=pmi2" in script and "#SBATCH --signal=USR2@120" in script
    assert "--kill-on-bad-exit=1" in script  # a rank that dies ends the others (Slurm's default: they wait on)
    assert "#SBATCH --open-mode=append" in script  # (submitit's own: a requeued job's log keeps both legs)
    assert json.loads((slurm / "runs" / "s" / "summary.json").read_text())["steps"] == 3


def test_submit_wait_returns_2_when_every_rank_refuses_the_job_as_it_starts(slurm):
    """A two-rank job refused as it starts (its allocation, SBATCH_MEM_PER_NODE, below two ranks' estimate; submit
    checked this host's memory): `--wait` exits 2, the refusal's status. Rank 1 left by SystemExit(2) (the refusal
    decided together) and wrote no result, so the job 'ended without a result (state FAILED)', exit 1."""
    from hpcflow.jobs import registry
    from hpcflow.resources import estimate

    _, cfg = registry.load(str(slurm / "job.toml"), memory_check=False)
    node = int(1.5 * estimate(cfg, ranks=2).bytes / 2**20)  # MiB: 0.75 of the estimate per rank
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "runs/m", "--executor", "slurm",
                        "--ntasks-per-node", "2", "--time", "5", "--wait"], cwd=slurm, capture_output=True, text=True,
                       timeout=150, env=dict(os.environ, SBATCH_MEM_PER_NODE=f"{node}M"))
    assert r.returncode == 2 and "finished with exit status 2" in r.stdout, r.stdout + r.stderr
    assert "without a result" not in r.stdout + r.stderr
    err = next((slurm / "runs" / "m_logs").glob("*_0_log.err")).read_text()
    assert "SLURM_MEM_PER_NODE / 2 ranks per node" in err, err


def _no_sacct_noise(said: str) -> None:
    """Where sacct fails (no accounting, as on the local cluster), `--wait` said so once at most: submitit printed
    sacct's error and 'Bypassing sacct error' (twice: stdout and stderr) at every poll."""
    assert "Bypassing sacct error" not in said and said.count("accounting storage is disabled") <= 1, said
    assert said.count("sacct cannot report job states") <= 1, said


def test_submit_wait_ends_when_its_job_is_killed(slurm):
    """A job killed before it has a result: `--wait` says so and exits 1. Without accounting, sacct never gave its
    state and the wait went on for ever."""
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", "steps = 100000").split("[tune]")[0])
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "submit", "long.toml", "--out", "runs/k", "--executor",
                             "slurm", "--time", "5", "--wait"], cwd=slurm, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    job = None
    try:
        job = re.search(r"slurm job (\d+):", proc.stdout.readline()).group(1)
        subprocess.run(["scancel", "--full", "--signal=KILL", job], check=True, timeout=30)
        said, _ = proc.communicate(timeout=90)
    finally:
        proc.kill()
        if job:
            subprocess.run(["scancel", job], timeout=30)
    assert proc.returncode == 1, said
    assert re.search(rf"job {job} ended without a result \(state (CANCELLED|FAILED|ENDED)\)", said), said
    _no_sacct_noise(said)


def test_a_preempted_two_rank_submit_job_leaves_mpi_before_it_is_requeued(slurm):
    """hpcflow submit --executor slurm on 2 ranks: submitit's USR2 writes the checkpoint and the job is requeued,
    after every rank left MPI. A rank killed inside MPI by the requeue leaves its /dev/shm/mpich_shm_* segment, which
    the requeued step (same job and step id) opens again: its MPI_Init failed and the job never resumed. (The
    requeued job is cancelled here: Slurm holds it back for minutes, BeginTime.)"""
    (slurm / "long.toml").write_text(JOB.replace("n_train = 90", "n_train = 3000").replace("steps = 3", "steps = 400")
                                     .split("[tune]")[0] + "[checkpoint]\nevery = 1\n")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "long.toml", "--out", "runs/p", "--executor",
                        "slurm", "--ntasks-per-node", "2", "--time", "5"], cwd=slurm, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    job = re.search(r"slurm job (\d+):", r.stdout).group(1)
    segments = set()  # its ranks' (other MPI runs on the machine make, and leave, their own)
    _signal_and_wait_for_requeue(job, slurm / "runs" / "p" / "checkpoint.h5", "USR2", lambda: _job_info(job),
                                 running=lambda: segments.update(_mpich_segments(job)))
    assert segments, "the job's ranks mapped no /dev/shm/mpich_shm_* segment: MPICH's shared memory was not in use"
    _steps_gone(job, time.monotonic() + 60)  # (srun's lines of the step's end are written)
    err = next((slurm / "runs" / "p_logs").glob(f"{job}_0_log.err")).read_text()
    copy = next((slurm / "runs" / "p_logs").glob("job-*/long.toml"))  # the copy of the job file that the job runs
    again = shlex.join(["hpcflow", "run", str(copy), "--out", str(slurm / "runs" / "p"), "--resume"])
    assert "checkpoint of step" in err and f"continue with: {again}\n" in err, err  # the command line submitted
    said = f"hpcflow submit: the job has requeued itself (scontrol requeue {job}): it continues the run"
    assert err.count(said) == 1 and err.index(again) < err.index(said), err  # not to be run by hand as well
    # every task leaves with status 0 as the job is requeued: srun says no task's exit (submitit's requeue exited 255
    # on task 0; a task that ended with the run's 4, "tasks 0-1: Exited with exit code 4", would fail the step)
    assert "DUE TO JOB REQUEUE" in err and "srun: error:" not in err and "Exited with exit code" not in err, err
    other = (slurm / "runs" / "p_logs" / f"{job}_1_log.err").read_text()
    assert "hpcflow submit:" not in other and "Traceback" not in other, other  # task 1 neither fails nor says so
    leaked = sorted(n for n in segments if os.path.exists(f"/dev/shm/{n}"))
    assert not leaked, leaked


def test_a_preempted_two_rank_submit_network_job_requeues_once_both_tasks_have_exited(slurm):
    """hpcflow submit --command nn on 2 ranks, `scancel --signal=USR2` during training: the checkpoint is written and
    task 0 requeues the job once task 1's process has exited (its lock beside the logs released), not while task 1
    still tears down torch after both left MPI: the requeue killed it, "srun: error: NODE: task 1: Killed"."""
    (slurm / "nn.toml").write_text(NN_JOB.replace("epochs = 60", "epochs = 2000"))
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "nn.toml", "--out", "runs/n", "--executor",
                        "slurm", "--command", "nn", "--ntasks-per-node", "2", "--time", "5"], cwd=slurm,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    job = re.search(r"slurm job (\d+):", r.stdout).group(1)
    logs = slurm / "runs" / "n_logs"
    err = logs / f"{job}_0_log.err"
    _signal_and_wait_for_requeue(job, slurm / "runs" / "n" / "checkpoint.pt", "USR2",
                                 lambda: err.read_text() if err.exists() else "")
    _steps_gone(job, time.monotonic() + 60)  # (srun's lines of the step's end are written)
    text = err.read_text()
    assert "signal received" in text and "DUE TO JOB REQUEUE" in text, text
    assert "srun: error:" not in text and "Exited with exit code" not in text, text
    assert not (logs / f"{job}_1.alive").exists()


@pytest.mark.parametrize("sig", ["USR1", "USR2"])
def test_a_submit_job_signalled_in_its_batch_shell_ends_as_its_run_does(slurm, sig):
    """`scancel --full --signal=SIG` (the batch shell and the run's step) on a `hpcflow submit --executor slurm` job:
    USR1 (a checkpoint request: not submit's time-limit signal) writes the checkpoint and the job ends FAILED 4:0, not
    requeued; USR2 (submitit's time-limit signal) writes it and requeues the job. submitit's batch shell ended on
    either (its default action): FAILED, ExitCode 0:10 or 0:12, reason JobLaunchFailure, never requeued."""
    job, err = _submit_long(slurm, "b", steps=100000, every=1)
    out = slurm / "runs" / "b"
    if sig == "USR2":
        _signal_and_wait_for_requeue(job, out / "checkpoint.h5", sig, err, who=("--full",))
    else:
        try:
            deadline = time.monotonic() + 120
            while not (out / "checkpoint.h5").exists():
                info = _job_info(job)
                assert time.monotonic() < deadline and re.search(r"JobState=(PENDING|RUNNING)", info), err()
                time.sleep(POLL)
            subprocess.run(["scancel", "--full", f"--signal={sig}", job], check=True, timeout=30)
            while not re.search(ENDED, info := _job_info(job)):
                assert time.monotonic() < deadline + 60 and "Restarts=1" not in info, f"{info}\n{err()}"
                time.sleep(POLL)
        finally:
            subprocess.run(["scancel", job], timeout=30)
        assert "JobState=FAILED" in info and "ExitCode=4:0" in info and "Restarts=0" in info, f"{info}\n{err()}"
    assert json.loads((out / "summary.json").read_text())["status"] == "preempted", err()
    script = next((slurm / "runs" / "b_logs").glob("*_submission.sh")).read_text()
    assert "\ntrap '' USR1 USR2" in script, script


def _submit_long(slurm, out: str, *, steps: int, every: int) -> tuple:
    """`hpcflow submit long.toml --out runs/OUT --executor slurm` of one task, the job with `steps` steps and a
    checkpoint every `every`: (its job id, a function that reads its logs)."""
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", f"steps = {steps}").split("[tune]")[0]
                                     + f"[checkpoint]\nevery = {every}\n")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "long.toml", "--out", f"runs/{out}", "--executor",
                        "slurm", "--time", "5", "--quiet"], cwd=slurm, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    job = re.search(r"slurm job (\d+):", r.stdout).group(1)
    return job, lambda: "\n".join(p.read_text() for p in (slurm / "runs" / f"{out}_logs").glob(f"{job}_*_log.*"))


def _queue_long(slurm, template: str, out: str, log: str, *options, steps: int = 100000, every: int = 1) -> str:
    """Queue slurm/TEMPLATE (sbatch `options`, its log `log`) on long.toml, the job with `steps` steps and a
    checkpoint every `every`, into `out`; its job id."""
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", f"steps = {steps}").split("[tune]")[0]
                                     + f"[checkpoint]\nevery = {every}\n")
    r = subprocess.run(["sbatch", "--parsable", "--mem=1G", *options, f"--output={log}", str(ROOT / "slurm" / template),
                        "long.toml", out, "--quiet"], cwd=slurm, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("who", ["--full", "--batch"])
def test_a_template_job_signalled_in_its_batch_shell_checkpoints_and_is_requeued(slurm, who):
    """hpcflow_mpi.sbatch on 2 ranks, SIGUSR1 sent to the batch shell too (scancel --full) or to it alone (--batch,
    as sbatch --signal=B:USR1@120 sends it): the ranks write their checkpoint, exit 4, and the job is requeued, as
    with the steps-only signal of the documented --signal=USR1@120. bash, the batch step, ended on the signal: the
    job ended FAILED and was never requeued, the checkpoint written (--full) or not even asked for (--batch)."""
    job = _queue_long(slurm, "hpcflow_mpi.sbatch", "runs/l", "long.out", "--ntasks-per-node=2")
    out = slurm / "runs" / "l"
    _signal_and_wait_for_requeue(job, out / "checkpoint.h5", "USR1", lambda: (slurm / "long.out").read_text(),
                                 who=(who,))
    log = (slurm / "long.out").read_text()
    assert log.count("hpcflow run: stopped: signal received: checkpoint of step") == 1, log  # said by rank 0
    assert "tasks 0-1: Exited with exit code 4" in log, log  # both ranks stopped at the checkpoint (srun's line)
    assert json.loads((out / "summary.json").read_text())["status"] == "preempted"
    from hpcflow.submit.requeue import command

    # what the requeued job (the same job id, which the preempted run's summary.json records) runs
    assert command(str(slurm / "long.toml"), str(out), slurm_job=job) == ["run", "--resume"]


def test_a_template_job_stopped_by_sigterm_checkpoints_and_is_not_requeued(slurm):
    """`scancel --signal=TERM` (the user's stop, reaching the steps' tasks) on a two-rank hpcflow_mpi.sbatch job: the
    run writes its checkpoint and stops with 4, and the job ends FAILED 4:0, not requeued, as a `hpcflow submit` job
    stopped so does (README). It was requeued and resumed, as after SIGUSR1."""
    job = _queue_long(slurm, "hpcflow_mpi.sbatch", "runs/t", "term.out", "--ntasks-per-node=2")
    out, log = slurm / "runs" / "t", slurm / "term.out"
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.h5").exists():
            info = _job_info(job)
            assert time.monotonic() < deadline and re.search(r"JobState=(PENDING|RUNNING)", info), log.read_text()
            time.sleep(POLL)
        subprocess.run(["scancel", "--signal=TERM", job], check=True, timeout=30)
        while not re.search(ENDED, info := _job_info(job)):
            assert time.monotonic() < deadline + 60 and "Restarts=1" not in info, f"{info}\n{log.read_text()}"
            time.sleep(POLL)
    finally:
        subprocess.run(["scancel", job], timeout=30)
    text = log.read_text()
    assert "JobState=FAILED" in info and "ExitCode=4:0" in info and "Restarts=0" in info, f"{info}\n{text}"
    assert text.count("hpcflow run: stopped: signal received: checkpoint of step") == 1, text
    assert f"the job is not requeued for it: continue it with: scontrol requeue {job}\n" in text, text
    assert json.loads((out / "summary.json").read_text())["status"] == "preempted"


def test_a_cancelled_template_job_leaves_no_signal_folder(slurm):
    """`scancel JOBID` (SIGTERM to the batch step and the tasks) on a two-rank hpcflow_mpi.sbatch job: the batch step
    (hpcflow.submit.step) outlives the SIGTERM until the run has written its checkpoint and ended, then removes the
    folder its tasks note their signals in (hpcflow-step-JOBID-* in the job's temporary directory). It ended on the
    SIGTERM at once and left the folder behind."""
    import tempfile

    job = _queue_long(slurm, "hpcflow_mpi.sbatch", "runs/c", "cancel.out", "--ntasks-per-node=2")
    out, log = slurm / "runs" / "c", slurm / "cancel.out"
    folders = Path(tempfile.gettempdir())  # (sbatch passes TMPDIR on to the job)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.h5").exists() or not list(folders.glob(f"hpcflow-step-{job}-*")):
            info = _job_info(job)
            assert time.monotonic() < deadline and re.search(r"JobState=(PENDING|RUNNING)", info), log.read_text()
            time.sleep(POLL)
        subprocess.run(["scancel", job], check=True, timeout=30)
        while not re.search(ENDED, info := _job_info(job)) or "COMPLETING" in info:
            assert time.monotonic() < deadline + 60, info
            time.sleep(POLL)
    finally:
        subprocess.run(["scancel", job], timeout=30)
    text = log.read_text()
    assert text.count("hpcflow run: stopped: signal received: checkpoint of step") == 1, text
    assert not list(folders.glob(f"hpcflow-step-{job}-*")), text


def test_a_run_template_job_slurm_requeues_resumes_its_checkpoint(slurm):
    """hpcflow_run.sbatch requeued while it runs (scontrol requeue, as Slurm does after a node failure or preemption):
    SIGTERM writes the checkpoint (exit 4) and the requeued job continues with --resume to the last step, its log
    appended to. The requeued job ran plain `hpcflow run`, refused on the interrupted run in --out (exit 2)."""
    job = _queue_long(slurm, "hpcflow_run.sbatch", "runs/r", "run.out", "--cpus-per-task=1", steps=4000, every=100)
    out, log = slurm / "runs" / "r", slurm / "run.out"
    _signal_and_wait_for_requeue(job, out / "checkpoint.h5", None, log.read_text, release=True)
    _completed(job, "(requeued)", 150)
    text = log.read_text()
    assert text.count("hpcflow run: stopped: signal received: checkpoint of step") == 1, text
    # (the stopped leg said it was not requeued, and to requeue it by hand, though Slurm had)
    assert text.count("Slurm has requeued the job (scontrol requeue, preemption): it continues from the checkpoint "
                      "when it starts again\n") == 1 and "scontrol requeue " + job not in text, text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["resumed"] is True and len(summary["legs"]) == 2, text
    assert summary["checkpoint_step"] == 4000


def test_a_run_template_job_signalled_in_its_batch_shell_checkpoints_and_is_requeued(slurm):
    """hpcflow_run.sbatch sent SIGUSR1 to its batch shell and its step (scancel --full --signal=USR1): the run writes
    its checkpoint, exits 4 and the job is requeued, as with the MPI template. Its batch shell, without a trap, ended
    on the signal (JobLaunchFailure, ExitCode 0:10), the checkpoint written but the job not requeued."""
    job, log = _queue_long(slurm, "hpcflow_run.sbatch", "runs/u", "run.out", "--cpus-per-task=1"), slurm / "run.out"
    _signal_and_wait_for_requeue(job, slurm / "runs" / "u" / "checkpoint.h5", "USR1", log.read_text, who=("--full",))
    text = log.read_text()
    assert text.count("hpcflow run: stopped: signal received: checkpoint of step") == 1, text
    assert json.loads((slurm / "runs" / "u" / "summary.json").read_text())["status"] == "preempted"


@pytest.mark.parametrize("who", [(), ("--full",)], ids=["steps", "full"])
def test_a_run_template_job_sent_sigusr2_checkpoints_and_is_requeued(slurm, who):
    """`scancel --signal=USR2` (the README's checkpoint request for `hpcflow submit` jobs) on a hpcflow_run.sbatch job,
    to its steps or (--full) its batch shell too: taken as SIGUSR1, the run writes its checkpoint and the job is
    requeued. The run ignored it (steps: no checkpoint, no line), and --full ended the batch shell (FAILED,
    JobLaunchFailure, not requeued)."""
    job, log = _queue_long(slurm, "hpcflow_run.sbatch", "runs/u2", "run.out", "--cpus-per-task=1"), slurm / "run.out"
    _signal_and_wait_for_requeue(job, slurm / "runs" / "u2" / "checkpoint.h5", "USR2", log.read_text, who=who)
    _steps_gone(job, time.monotonic() + 60)  # (the batch step's last line is written)
    text = log.read_text()
    assert text.count("hpcflow run: stopped: signal received: checkpoint of step") == 1, text
    # after the run's "continue with: ... --resume", the log says the job requeued itself: not to be run by hand too
    said = "hpcflow.submit.step: the run stopped with its checkpoint on the checkpoint request"
    assert text.count(said) == 1 and f"the job has requeued itself (scontrol requeue {job})" in text, text
    assert text.index("continue with: hpcflow run") < text.index(said), text
    assert json.loads((slurm / "runs" / "u2" / "summary.json").read_text())["status"] == "preempted"


NN_JOB = """
[job]
kind = "nn"
[geometry]
n_train = 2000
n_val = 500
seed = 3
[model]
depth = 2
width = 8
[training]
epochs = 60
batch_size = 50
lr = 1e-3
threads = 1
[ntk]
enabled = false
[checkpoint]
every = 1
"""


def test_a_preempted_network_job_requeues_itself_and_resumes(slurm):
    """hpcflow_mpi.sbatch with a network job on 2 ranks: SIGUSR1 to its step (what --signal=USR1@120 sends before
    the time limit) writes the checkpoint, exit 4, and the script requeues the job; the requeued job (started at
    once: Slurm holds it back for minutes, BeginTime) continues with `hpcflow nn --resume` and finishes every epoch.
    The template's log (%x-%j.out, the same file for both legs) holds both: it was truncated as the job started
    again, the first leg's 'signal received' lost."""
    (slurm / "nn.toml").write_text(NN_JOB)
    r = subprocess.run(["sbatch", "--parsable", "--mem=2G", "--ntasks-per-node=2",
                        str(ROOT / "slurm" / "hpcflow_mpi.sbatch"), "nn.toml", "runs/nn"], cwd=slurm,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    job = r.stdout.strip()
    out, log = slurm / "runs" / "nn", slurm / f"hpcflow-mpi-{job}.out"
    # training has begun when the first checkpoint appears (one every epoch)
    _signal_and_wait_for_requeue(job, out / "checkpoint.pt", "USR1", log.read_text, release=True)
    _completed(job, "(requeued)", 150)
    assert "Restarts=1" in _job_info(job)
    text = log.read_text()
    assert "signal received" in text and text.index("signal received") < text.index("resuming after epoch"), text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 60 and summary["ranks"] == 2


@pytest.mark.parametrize("template, extra", [
    ("hpcflow_mpi.sbatch", ()),
    ("hpcflow_gpu.sbatch", ("--gpus-per-node=0", "--cpus-per-task=1")),
])
def test_a_checkpoint_request_during_the_first_step_leaves_the_job_to_run(slurm, template, extra):
    """`scancel --signal=USR1` (what --signal=USR1@120 sends) while the MPI and GPU templates' first step (`srun ...
    hpcflow info`, held 3 s here) runs: the job goes on, its run starts, and a later SIGUSR1 writes the checkpoint and
    requeues the job as usual. The step's tasks ended on the signal ('tasks 0-1: User defined signal 1'): the job
    ended FAILED, not requeued, with nothing written."""
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", "steps = 100000").split("[tune]")[0]
                                     + "[checkpoint]\nevery = 1\n")
    started = slurm / "info-started"
    python = slurm / "python"  # hpcflow's python, its `hpcflow info` held 3 s once it has said so in `started`
    python.write_text(f'#!/bin/bash\nif [[ "$*" == "-m hpcflow info" ]]; then touch "{started}"; sleep 3; fi\n'
                      f'exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    r = subprocess.run(["sbatch", "--parsable", "--mem=1G", "--ntasks-per-node=2", *extra, "--output=early.out",
                        str(ROOT / "slurm" / template), "long.toml", "runs/e"], cwd=slurm, capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, HPCFLOW_PYTHON=str(python)))
    assert r.returncode == 0, r.stdout + r.stderr
    job = r.stdout.strip()
    log = slurm / "early.out"
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            info = _job_info(job)
            assert time.monotonic() < deadline and re.search(r"JobState=(PENDING|RUNNING)", info), info
            time.sleep(0.1)
        subprocess.run(["scancel", "--signal=USR1", job], check=True, timeout=30)
    except BaseException:
        subprocess.run(["scancel", job], timeout=30)
        raise
    _signal_and_wait_for_requeue(job, slurm / "runs" / "e" / "checkpoint.h5", "USR1", log.read_text)
    text = log.read_text()
    assert re.search(r"^mpi_world_size\s+2$", text, re.M), text  # the first step's output, one world
    assert "User defined signal" not in text, text
    assert text.count("hpcflow run: stopped: signal received: checkpoint of step") == 1, text


def _held_python(folder: Path, started: Path, pattern: str) -> Path:
    """A stand-in for hpcflow's python: where its arguments match the bash `pattern`, it says so in `started` and
    holds its start 3 s (its checkpoint signals as the task's process got them) before it execs Python."""
    python = folder / "held-python"
    python.write_text(f'#!/bin/bash\nif [[ "$*" == {pattern} ]]; then touch "{started}"; sleep 3; fi\n'
                      f'exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return python


def _signal_once_started(job: str, started: Path, sig: str, log) -> None:
    """Once `started` exists, send SIG to the job's steps (`scancel --signal`, as --signal=SIG@DELAY sends it)."""
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            info = _job_info(job)
            assert time.monotonic() < deadline and re.search(r"JobState=(PENDING|RUNNING)", info), f"{info}\n{log()}"
            time.sleep(POLL)
        subprocess.run(["scancel", f"--signal={sig}", job], check=True, timeout=30)
    except BaseException:
        subprocess.run(["scancel", job], timeout=30)
        raise


def test_a_checkpoint_request_as_the_run_step_starts_leaves_the_run_to_take_the_later_one(slurm):
    """`scancel --signal=USR1` while hpcflow_run.sbatch's run step starts (its task's process held 3 s before it
    execs Python): the run goes on, and a later SIGUSR1 writes the checkpoint and requeues the job. The task ended on
    the signal ('task 0: User defined signal 1'): the job FAILED 138, not requeued, with nothing written."""
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", "steps = 100000").split("[tune]")[0]
                                     + "[checkpoint]\nevery = 1\n")
    started = slurm / "task-started"
    python = _held_python(slurm, started, '"-m hpcflow.submit.step --task "*')
    r = subprocess.run(["sbatch", "--parsable", "--mem=1G", "-c", "1", "--time=5", "--output=early.out",
                        str(ROOT / "slurm" / "hpcflow_run.sbatch"), "long.toml", "runs/e"], cwd=slurm,
                       capture_output=True, text=True, timeout=30, env=dict(os.environ, HPCFLOW_PYTHON=str(python)))
    assert r.returncode == 0, r.stdout + r.stderr
    job, log = r.stdout.strip(), (slurm / "early.out")
    _signal_once_started(job, started, "USR1", lambda: log.read_text() if log.exists() else "")
    _signal_and_wait_for_requeue(job, slurm / "runs" / "e" / "checkpoint.h5", "USR1", log.read_text)
    text = log.read_text()
    assert "User defined signal" not in text, text
    assert text.count("hpcflow run: stopped: signal received: checkpoint of step") == 1, text


def test_a_submit_job_signalled_as_its_step_starts_takes_the_later_signal(slurm, monkeypatch, capsys):
    """`scancel --signal=USR2` (submitit's time-limit signal) while a `hpcflow submit --executor slurm` job's step
    starts (its task's process held 3 s before it execs Python): the run goes on, and a later USR2 writes the
    checkpoint and requeues the job. The task ended on the signal ('task 0: User defined signal 2'): the job FAILED
    140, not requeued, with nothing written."""
    from hpcflow.cli import main

    (slurm / "long.toml").write_text(JOB.replace("steps = 3", "steps = 100000").split("[tune]")[0]
                                     + "[checkpoint]\nevery = 1\n")
    started = slurm / "task-started"
    monkeypatch.setattr(sys, "executable", str(_held_python(slurm, started, '*" -m submitit.core._submit "*')))
    monkeypatch.chdir(slurm)
    assert main(["submit", "long.toml", "--out", "runs/u", "--executor", "slurm", "--time", "5", "--quiet"]) == 0
    job = re.search(r"slurm job (\d+):", capsys.readouterr().out).group(1)
    log = lambda: "\n".join(p.read_text() for p in (slurm / "runs" / "u_logs").glob(f"{job}_*_log.*"))  # noqa: E731
    _signal_once_started(job, started, "USR2", log)
    _signal_and_wait_for_requeue(job, slurm / "runs" / "u" / "checkpoint.h5", "USR2", log)
    text = log()
    assert "User defined signal" not in text, text
    assert "signal received: checkpoint of step" in text, text


def test_a_finished_template_job_requeued_has_nothing_to_do(slurm):
    """hpcflow_mpi.sbatch's job requeued after it finished (scontrol requeue of the COMPLETED job): its directory holds
    the finished run, which the requeued job continues as a requeued `hpcflow submit` job does (`--resume`: nothing to
    do, status 0) and the job completes again. It ran plain `hpcflow run`, refused on the results there (status 2),
    and the job ended FAILED."""
    job = _sbatch(slurm, "--ntasks-per-node=2", "--output=done.out", ROOT / "slurm" / "hpcflow_mpi.sbatch", "job.toml",
                  "runs/d")
    out = slurm / "runs" / "d"
    finished = (out / "summary.json").read_text()
    _signal_and_wait_for_requeue(job, out / "checkpoint.h5", None, (slurm / "done.out").read_text, release=True)
    _completed(job, "(requeued)", 150)
    assert "Restarts=1" in _job_info(job)
    text = (slurm / "done.out").read_text()
    assert "already finished at step 3 ([flow].steps = 3): nothing to do" in text, text
    assert "already holds results" not in text, text
    assert (out / "summary.json").read_text() == finished  # the finished run as it was


def _signal_and_wait_for_requeue(job: str, checkpoint: Path, sig: str | None, log, *, who=(), running=None,
                                 release=False, before_release=None) -> None:
    """Once `checkpoint` exists, call running() and send SIG to the job (scancel options `who`; default its steps),
    or with sig None requeue it (`scontrol requeue`: SIGTERM to the job, then requeued as after a node failure),
    wait until Slurm holds it requeued (Restarts=1, PENDING); then cancel it, or with `release` let it start again
    within seconds (scontrol update StartTime=now), once before_release() has returned, the stopped leg's steps have
    ended (`_steps_gone`) and the second its credential was revoked in is past. log() says why the job ended early."""
    requeued = False
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists():
            queued = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True, timeout=30).stdout
            assert time.monotonic() < deadline and queued.strip(), log()
            time.sleep(POLL)
        if running is not None:
            running()
        send = ["scontrol", "requeue", job] if sig is None else ["scancel", *who, f"--signal={sig}", job]
        subprocess.run(send, check=True, timeout=30)
        deadline = time.monotonic() + 120
        while "Restarts=1" not in (info := _job_info(job)) or "JobState=PENDING" not in info:
            ended = re.search(ENDED, info)
            assert time.monotonic() < deadline and not ended, f"the job was not requeued: {info}\n{log()}"
            time.sleep(POLL)
        requeued_seen = time.time()  # (after the requeue, and so after the time its credential was revoked at)
        if release:
            if before_release is not None:
                before_release()
            _steps_gone(job, time.monotonic() + 60)
            _past_the_second_of(requeued_seen)
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, timeout=30)
        requeued = True
    finally:
        if not (release and requeued):
            subprocess.run(["scancel", job], timeout=30)


def _past_the_second_of(seen: float) -> None:
    """Sleep until the wall-clock second after the one holding `seen`: slurmd refuses a job's credential made in or
    before the second its old one was revoked in (Slurm's cred_revoked: ctime <= revoked, whole seconds), and the
    revocation came before `seen`."""
    time.sleep(max(0.0, math.floor(seen) + 1.05 - time.time()))


def _steps_gone(job: str, deadline: float) -> None:
    """Wait until no slurmstepd of `job` is left on this node: the requeued job's steps take the ids of the stopped
    leg's (JOB.0, JOB.1), and a step started while the stopped leg's namesake was still ending was cancelled."""
    marker = f"slurmstepd: [{job}.".encode()
    while True:
        left = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(marker):
                    left.append(pid)
            except OSError:
                continue
        if not left:
            return
        assert time.monotonic() < deadline, f"the steps of job {job} did not end (slurmstepd pids {left})"
        time.sleep(POLL)


def _mpich_segments(job: str) -> set:
    """The /dev/shm/mpich_shm_* segments mapped by the running job's processes (found by SLURM_JOB_ID)."""
    names = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"SLURM_JOB_ID={job}".encode() not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                continue
            names |= set(re.findall(r"/dev/shm/(mpich_shm\S*)", Path(f"/proc/{pid}/maps").read_text()))
        except OSError:
            continue
    return names


ENDED = r"JobState=(FAILED|COMPLETED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL)"  # the states of an ended job


def _job_info(job: str) -> str:
    return subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, timeout=30).stdout


def _largest_node_cpus() -> int:
    """The most CPUs a node of the default partition has (sinfo)."""
    out = subprocess.run(["sinfo", "-h", "-o", "%P %c"], capture_output=True, text=True, timeout=30).stdout
    return max(int(c.rstrip("+")) for p, c in (line.split() for line in out.splitlines()) if p.endswith("*"))


def _queued(workdir: Path) -> set:
    """The ids of the jobs in the queue submitted from `workdir` (other users of the cluster have their own)."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %Z"], capture_output=True, text=True, timeout=30).stdout
    return {line.split(" ", 1)[0] for line in out.splitlines() if line.split(" ", 1)[-1] == str(workdir)}


def test_submit_refuses_more_cpus_than_a_node_has_and_queues_nothing(slurm):
    """One task more than the largest node's CPUs: sbatch would accept it (EnforcePartLimits=NO) and the job would
    pend for ever (PartitionConfig), `--wait` with it. Refused before queueing, one line, exit 2."""
    tasks = _largest_node_cpus() + 1
    try:
        for check in ([], ["--check"]):
            r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "runs/big",
                                "--executor", "slurm", "--ntasks-per-node", str(tasks), "--time", "5", "--wait",
                                *check], cwd=slurm, capture_output=True, text=True, timeout=60)
            assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
            assert r.stderr.count("\n") == 1 and f"needs {tasks} CPUs per node; partition " in r.stderr, r.stderr
            assert f"have {tasks - 1}: lower --ntasks-per-node" in r.stderr or f"has {tasks - 1}:" in r.stderr
        assert not _queued(slurm)  # nothing queued
        assert not (slurm / "runs").exists()
    finally:
        for job in _queued(slurm):  # (what a regression queued: it would pend for ever)
            subprocess.run(["scancel", job], timeout=30)


def test_submit_refuses_an_mpi_type_this_srun_lacks_and_queues_nothing(slurm):
    """--mpi nosuchtype would be queued and fail as the job starts; refused in one line naming --mpi, the value and
    the types of this srun (as `srun --mpi=list` prints them), exit 2, nothing written or queued. pmi2 (the MPI
    templates' type) is accepted."""
    listing = subprocess.run(["srun", "--mpi=list"], capture_output=True, text=True, timeout=30)
    listing = listing.stdout + listing.stderr
    try:
        for check in ([], ["--check"]):
            r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "runs/mpi",
                                "--executor", "slurm", "--mpi", "nosuchtype", "--time", "5", *check], cwd=slurm,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1, r.stdout + r.stderr
            said = re.fullmatch(r"hpcflow submit: error: --mpi nosuchtype: not an MPI type of this cluster's srun, "
                                r"which offers (.+) \(srun --mpi=list\); pass --mpi with one of them\n", r.stderr)
            assert said, r.stderr
            types = said.group(1).split(", ")
            assert "pmi2" in types and all(re.search(rf"(^|\s|/){t}(,|\s|$)", listing) for t in types), listing
        assert not _queued(slurm) and not (slurm / "runs").exists()
    finally:
        for job in _queued(slurm):
            subprocess.run(["scancel", job], timeout=30)
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "runs/mpi", "--executor",
                        "slurm", "--mpi", "pmi2", "--check"], cwd=slurm, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "is valid (kind flow)" in r.stdout, r.stdout + r.stderr
    assert not (slurm / "runs").exists()


def test_wait_cancels_a_queued_job_that_can_never_start(slurm):
    """A job above the node's CPUs that reached the queue (sbatch accepts it): the wait stops at its pending reason
    (PartitionConfig) with the fix, and cancels it."""
    from hpcflow.submit import executor
    from hpcflow.submit.task import HpcflowTask

    res = executor.Resources(ntasks_per_node=_largest_node_cpus() + 1, time=5)
    ex = executor.make_executor("slurm", str(slurm / "logs"), res, name="hpcflow-held")
    jobs = executor.submit(ex, HpcflowTask(), [["info"]])
    try:
        with pytest.raises(executor.SubmitError) as stop:
            executor.wait(jobs, res=res, log=lambda line: None)
    finally:
        subprocess.run(["scancel", jobs[0].job_id], timeout=30)
    assert re.fullmatch(rf"job {jobs[0].job_id} can never start \(pending, reason PartitionConfig\): --ntasks-per-node "
                        rf"{res.ntasks_per_node} x --cpus-per-task 1 needs .*; the job is cancelled", str(stop.value))
    state = re.search(r"JobState=(\S+)", _job_info(jobs[0].job_id))
    assert state is None or state.group(1) == "CANCELLED"


def _rank_pid(job: str, rank: int, marker: bytes) -> int | None:
    """The pid of the running job's task `rank` whose command line holds `marker` (found by its environment)."""
    want = {f"SLURM_JOB_ID={job}".encode(), f"SLURM_PROCID={rank}".encode()}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes() and \
                    want <= set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")):
                return int(pid)
        except OSError:
            continue
    return None


def _kill_wait() -> int:
    """Slurm's KillWait: seconds between the SIGTERM that ends a step's tasks and the SIGKILL."""
    out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, timeout=30).stdout
    return int(re.search(r"^KillWait\s*=\s*(\d+)", out, re.M).group(1))


def test_a_rank_killed_under_srun_ends_the_job(slurm):
    """kill -9 of rank 1 of a two-rank hpcflow_mpi.sbatch job: srun ends rank 0 (SIGTERM, then SIGKILL after
    KillWait: rank 0 waits inside MPI, where its Python SIGTERM handler cannot run) and the job ends FAILED. Without
    --kill-on-bad-exit (Slurm's default KillOnBadExit=0) rank 0 spun in its next collective until the time limit.
    (hpcflow submit's srun has the option too: test_hpcflow_submit_slurm_wait_returns_the_exit_status.)"""
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", "steps = 100000").split("[tune]")[0]
                                     + "[checkpoint]\nevery = 1\n")
    r = subprocess.run(["sbatch", "--parsable", "--mem=1G", "--time=3", "--ntasks-per-node=2", "--output=k.out",
                        str(ROOT / "slurm" / "hpcflow_mpi.sbatch"), "long.toml", "runs/k", "--quiet"], cwd=slurm,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    job, bound = r.stdout.strip(), _kill_wait() + 10
    try:
        deadline = time.monotonic() + 120
        while not (slurm / "runs" / "k" / "checkpoint.h5").exists() or \
                (pid := _rank_pid(job, 1, b"hpcflow\0run\0")) is None:
            info = _job_info(job)
            assert time.monotonic() < deadline and re.search(r"JobState=(PENDING|RUNNING)", info), info
            time.sleep(POLL)
        os.kill(pid, 9)
        killed = time.monotonic()
        # until the job has ended: RUNNING, SIGNALING (the SIGTERMs of the steps' tasks) and COMPLETING come before
        while not re.search(ENDED, info := _job_info(job)):
            assert time.monotonic() - killed < bound, f"job {job} still running {bound} s after rank 1 was killed"
            time.sleep(POLL)
    finally:
        subprocess.run(["scancel", job], timeout=30)
    assert "JobState=FAILED" in info and "ExitCode=0:0" not in info, info
    assert "task 1: Killed" in (slurm / "k.out").read_text()


def test_submit_wait_on_a_job_whose_rank_was_killed_says_how_to_continue_its_checkpoint(slurm):
    """kill -9 of rank 1 of a two-rank `hpcflow submit --wait` job after its first checkpoint: srun ends rank 0
    (--kill-on-bad-exit) and the job ends FAILED without a result; `--wait` says so, exit 1, with the `hpcflow submit
    ... --resume` that continues the checkpointed run (it named none). Its batch shell marks the step's end, which
    the wait asks Slurm about at once (it saw the end only at its next ask, backed off to up to 100 s later)."""
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", "steps = 100000").split("[tune]")[0]
                                     + "[checkpoint]\nevery = 1\n")
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "submit", "long.toml", "--out", "runs/k2", "--executor",
                             "slurm", "--ntasks-per-node", "2", "--time", "5", "--wait", "--quiet"], cwd=slurm,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    job = None
    try:
        job = re.search(r"slurm job (\d+):", proc.stdout.readline()).group(1)
        deadline = time.monotonic() + 120
        while not (slurm / "runs" / "k2" / "checkpoint.h5").exists() or \
                (pid := _rank_pid(job, 1, b"submitit.core._submit")) is None:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(POLL)
        os.kill(pid, 9)
        said, _ = proc.communicate(timeout=150)
    finally:
        proc.kill()
        if job:
            subprocess.run(["scancel", job], timeout=30)
    again = shlex.join(["hpcflow", "submit", "long.toml", "--out", "runs/k2", "--executor", "slurm"])
    assert proc.returncode == 1, said
    assert re.search(rf"job {job} ended without a result \(state FAILED\); see \S+; continue it with: "
                     rf"{re.escape(again)} .*--resume", said), said
    assert (slurm / "runs" / "k2_logs" / f"{job}_ended").exists()  # (the batch shell's mark)
    _no_sacct_noise(said)


def test_submit_passes_the_account_and_other_sbatch_options_to_slurm(slurm):
    """--account and --sbatch KEY (a flag: hold, so the job stays pending and is cancelled here) reach the job as
    Slurm keeps it (scontrol show job); they were refused as unrecognized arguments."""
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "runs/acct", "--executor",
                        "slurm", "--time", "5", "--account", "hpcflow-acct", "--sbatch", "hold", "--sbatch",
                        "mail-type=NONE", "--sbatch", "exclusive=user"], cwd=slurm, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    job = re.search(r"slurm job (\d+):", r.stdout).group(1)
    try:
        info = _job_info(job)
    finally:
        subprocess.run(["scancel", job], timeout=30)
    assert "Account=hpcflow-acct" in info and "Reason=JobHeldUser" in info and "OverSubscribe=USER" in info, info


def test_submit_wait_follows_a_job_slurm_requeues_to_its_end(slurm):
    """hpcflow submit --wait of a job requeued while it runs (scontrol requeue: SIGTERM writes the checkpoint, the task
    returns 4): the wait follows the requeued job to its end and exits 0 once it has resumed and finished. The stopped
    leg's result file (status 4) was taken as the job's end: 'finished with exit status 4' while it was PENDING."""
    (slurm / "long.toml").write_text(JOB.replace("steps = 3", "steps = 4000").split("[tune]")[0]
                                     + "[checkpoint]\nevery = 100\n")
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "submit", "long.toml", "--out", "runs/q", "--executor",
                             "slurm", "--time", "5", "--wait", "--quiet"], cwd=slurm, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    job, lines = None, []

    def read():
        for line in proc.stdout:
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)

    def waiter_said_it():  # the requeued job held pending until the wait has seen it so
        deadline = time.monotonic() + 60
        while not any("was requeued by Slurm" in line for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(POLL)

    try:
        job = re.search(r"slurm job (\d+):", proc.stdout.readline()).group(1)
        reader.start()
        _signal_and_wait_for_requeue(job, slurm / "runs" / "q" / "checkpoint.h5", None, lambda: "".join(lines),
                                     release=True, before_release=waiter_said_it)
        proc.wait(timeout=120)
        reader.join(timeout=30)
    finally:
        proc.kill()
        if job:
            subprocess.run(["scancel", job], timeout=30)
    said = "".join(lines)
    assert proc.returncode == 0 and "finished with exit status 0" in said, said
    assert f"job {job} was requeued by Slurm (state PENDING)" in said, said
    err = next((slurm / "runs" / "q_logs").glob(f"{job}_0_log.err")).read_text()  # (both legs': --open-mode=append)
    assert "Slurm has requeued the job (scontrol requeue, preemption): it continues from the checkpoint" in err, err
    assert "the job fails with it" not in err, err
    summary = json.loads((slurm / "runs" / "q" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["resumed"] is True and summary["checkpoint_step"] == 4000


#: a two-rank MPI world that ends without MPI_Finalize (os._exit), as ranks killed inside MPI end: it leaves its
#: shared-memory segment, whose name rank 0 prints
DEAD_WORLD = """
import os, re
from mpi4py import MPI
MPI.COMM_WORLD.Barrier()
if MPI.COMM_WORLD.Get_rank() == 0:
    print(re.search(r"/dev/shm/(mpich_shm_\\S+)", open("/proc/self/maps").read()).group(1), flush=True)
MPI.COMM_WORLD.Barrier()
os._exit(0)
"""


def _dead_segment() -> bytes:
    """The bytes of the segment that a killed MPI world leaves in /dev/shm (`DEAD_WORLD`)."""
    from test_parallel import mpiexec

    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-c", DEAD_WORLD], capture_output=True, text=True,
                       timeout=60)
    path = Path("/dev/shm") / r.stdout.strip()
    assert r.returncode == 0 and r.stdout.strip() and path.is_file(), r.stdout + r.stderr
    try:
        return path.read_bytes()
    finally:
        path.unlink()


@pytest.mark.parametrize("how", ["template", "submit"])
def test_a_job_whose_steps_name_holds_a_killed_starts_segment_runs(slurm, how):
    """A Slurm job started again (requeued) numbers its steps from 0 again, so each MPI step's MPICH segment
    (/dev/shm/mpich_shm_HASH_0, HASH from PMI_JOBID=JOB.STEP) has the name of the step of its killed earlier start,
    whose ranks left it: MPI_Init opened it and failed ("Message from rank 1 and tag 7 truncated") or hung, at every
    start. Here the job is queued held, such a segment is put under the names of its steps, and it is released: each
    task removes the dead segment of its step before its MPI_Init, and the job completes."""
    from hpcflow.submit.shm import fnv1a

    if how == "template":
        r = subprocess.run(["sbatch", "--parsable", "--hold", "--mem=1G", "--ntasks-per-node=2", "--output=dead.out",
                            str(ROOT / "slurm" / "hpcflow_mpi.sbatch"), "job.toml", "runs/dead", "--quiet"], cwd=slurm,
                           capture_output=True, text=True, timeout=30)
        job, log = r.stdout.strip(), lambda: (slurm / "dead.out").read_text()
    else:
        r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "runs/dead", "--executor",
                            "slurm", "--ntasks-per-node", "2", "--time", "5", "--quiet", "--sbatch", "hold"],
                           cwd=slurm, capture_output=True, text=True, timeout=60)
        job = re.search(r"slurm job (\d+):", r.stdout).group(1) if r.returncode == 0 else None
        log = lambda: "\n".join(p.read_text() for p in (slurm / "runs" / "dead_logs").glob(f"{job}_*_log.*"))  # noqa
    assert r.returncode == 0 and job, r.stdout + r.stderr
    dead = _dead_segment()
    planted = [Path("/dev/shm") / f"mpich_shm_{fnv1a(f'{job}.{step}'):x}_0" for step in (0, 1)]
    try:
        for path in planted:
            path.write_bytes(dead)
        subprocess.run(["scontrol", "release", job], check=True, timeout=30)
        try:
            _completed(job, how, 120)
        except BaseException:
            print(log())
            raise
    finally:
        subprocess.run(["scancel", job], timeout=30)
        for path in planted:
            path.unlink(missing_ok=True)
    text = log()
    used = planted if how == "template" else planted[:1]  # (the template's steps: hpcflow info, then the run)
    for path in used:
        assert f"removed {path}, MPICH's shared memory that an earlier start of this job step" in text, text
    assert json.loads((slurm / "runs" / "dead" / "summary.json").read_text())["status"] == "finished", text


def test_a_submit_job_requeued_after_its_job_file_was_edited_resumes_the_job_it_was_submitted_with(slurm):
    """`hpcflow submit` queues a copy of the job file it checked: a requeued leg (scontrol requeue) resumes as
    submitted though the job file was edited meanwhile. The job file was read again at every start: the requeued leg
    failed (exit 2, "[flow].dt = 3.0 differs from the checkpoint's 2.0"), or took an edit of steps silently."""
    jid, log = _submit_long(slurm, "e", steps=4000, every=100)
    out, job = slurm / "runs" / "e", slurm / "long.toml"
    edit = lambda: job.write_text(job.read_text().replace("dt = 2.0", "dt = 3.0").replace("4000", "5000"))  # noqa
    _signal_and_wait_for_requeue(jid, out / "checkpoint.h5", None, log, release=True, before_release=edit)
    _completed(jid, "(requeued)", 150)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["resumed"] is True, log()
    assert summary["checkpoint_step"] == 4000, log()


def test_a_preempted_submit_tune_worker_leaves_as_a_run_does_when_it_is_requeued(slurm):
    """`hpcflow submit --command tune` on one task, `scancel --signal=USR2` during its trial: the trial's checkpoint is
    written and the job requeued, and the leg's error log ends with Slurm's lines of the requeue only, as a run's
    does. The worker's SIGTERM was back to its default action as it left, and the requeue's SIGTERM ended it: `srun:
    error: NODE: task 0: Terminated` (an array task: `srun: Force Terminated StepId=J.0`)."""
    (slurm / "long.toml").write_text(JOB.replace("n_train = 90", "n_train = 3000").replace("steps = 3", "steps = 400")
                                     + "[checkpoint]\nevery = 1\n")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "long.toml", "--out", "runs/t", "--executor",
                        "slurm", "--command", "tune", "--trials", "1", "--time", "5", "--quiet"], cwd=slurm,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    job = re.search(r"slurm job (\d+):", r.stdout).group(1)
    err = slurm / "runs" / "t_logs" / f"{job}_0_log.err"
    _signal_and_wait_for_requeue(job, slurm / "runs" / "t" / "trials" / "0000" / "checkpoint.h5", "USR2",
                                 lambda: err.read_text() if err.exists() else "")
    _steps_gone(job, time.monotonic() + 60)  # (srun's lines of the step's end are written)
    text = err.read_text()
    assert "signal received during trial 0" in text and "DUE TO JOB REQUEUE" in text, text
    assert "Terminated" not in text and "Exited with exit code" not in text, text
