"""`hpcflow submit`: validation before queueing, --check, no Slurm on PATH, the local executor, resume argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.submit.task import resume_argv

ROOT = Path(__file__).resolve().parents[1]

JOB = """
[job]
kind = "flow"
[geometry]
n_train = 80
n_test = 40
[kernel]
name = "delta"
[flow]
dt = 2.0
steps = 3
loss = "ultralocal"
"""


@pytest.fixture
def job(tmp_path):
    p = tmp_path / "job.toml"
    p.write_text(JOB)
    return p


def _only(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_slurm_executor_without_slurm_is_one_line_exit_2(tmp_path, job, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no sbatch, no srun
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--wait"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sbatch and srun not on PATH" in err and "--executor local" in err
    assert _only(tmp_path) == ["bin", "job.toml"]  # nothing half-submitted


def test_check_validates_as_run_would_and_writes_nothing(tmp_path, job, capsys):
    out = tmp_path / "out"
    assert main(["submit", str(job), "--out", str(out), "--executor", "slurm", "--check", "--ntasks-per-node", "4"]) == 0
    said = capsys.readouterr().out
    assert "is valid (kind flow)" in said and "1 node(s) x 4 task(s)" in said and f"--out {out}" in said
    bad = tmp_path / "bad.toml"
    bad.write_text(JOB.replace("dt = 2.0", "dt = -2.0"))
    for argv in (["submit", str(bad), "--out", str(out), "--executor", "local"],
                 ["submit", str(bad), "--out", str(out), "--executor", "local", "--check"],
                 ["run", str(bad), "--out", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "[flow].dt = -2.0: must lie in (0" in err and err.count("\n") == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "summary.json").write_text("{}")
    assert main(["submit", str(job), "--out", str(tmp_path / "full"), "--executor", "local"]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--array", "2"]) == 2
    assert "use it with --command tune" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "nn"]) == 2
    err = capsys.readouterr().err  # the line names the verb the user typed, not the --command it queues
    assert "runs kind = \"nn\" jobs" in err and err.startswith("hpcflow submit: error:")
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--ntasks-per-node", "2"]) == 2
    assert "one task per job" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "tune", "--trials", "2"]) == 2
    assert "no [tune] table" in capsys.readouterr().err
    tune = tmp_path / "tune.toml"
    tune.write_text(JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n')
    assert main(["submit", str(tune), "--out", str(tmp_path / "full"), "--executor", "local", "--command", "tune",
                 "--trials", "2", "--check"]) == 2
    assert "is not a study directory" in capsys.readouterr().err
    assert _only(tmp_path) == ["bad.toml", "full", "job.toml", "tune.toml"]


def test_quiet_goes_to_commands_that_have_it_and_unknown_options_are_refused_by_submit(tmp_path, job, capsys):
    """submit --quiet reaches the submitted command where its parser has --quiet: the queued command line is one
    that hpcflow's own parser accepts. An unknown option is refused by submit itself (argparse's message named the
    top-level parser, 'hpcflow: error'), exit 2, nothing written."""
    from hpcflow.cli import build_parser

    tune = tmp_path / "tune.toml"
    tune.write_text(JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n')
    for command, path, extra in (("run", job, []), ("nn", ROOT / "jobs" / "nn_smoke.toml", []),
                                 ("tune", tune, ["--trials", "2"])):
        assert main(["submit", str(path), "--out", str(tmp_path / "out"), "--executor", "local", "--check",
                     "--command", command, "--quiet", *extra]) == 0
        queued = capsys.readouterr().out.split("): hpcflow ", 1)[1].split()
        args = build_parser().parse_args(queued)  # exits 2 on an option the command does not have
        assert args.verb == command and args.out == str(tmp_path / "out")
        if command in ("run", "nn"):
            assert args.quiet is True
    with pytest.raises(SystemExit) as stop:
        main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--quiet", "--bogus", "x"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1
    assert err.startswith("hpcflow submit: error: unrecognized arguments: --bogus x"), err
    assert _only(tmp_path) == ["job.toml", "tune.toml"]


def test_local_executor_runs_the_job_and_wait_returns_its_status(tmp_path, job):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(job), "--out", str(out), "--executor", "local",
                        "--wait", "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    assert f"hpcflow run {job} --out {out} --quiet" in r.stdout
    assert f"logs {tmp_path}/out_logs/" in r.stdout and f"results in {out}" in r.stdout
    # a tune whose every trial fails exits 3 (no finished trial); --wait hands that status back. Each choice
    # passes the job's checks alone (so submit queues it), the two together do not (40 clusters > 20 points)
    failing = tmp_path / "failing.toml"
    failing.write_text(JOB + '[clustering]\nmethod = "full"\n[tune.space]\n"geometry.n_train" = {choices = [20]}\n'
                       '"clustering.n_clusters" = {choices = [40]}\n')
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(failing), "--out", str(tmp_path / "t"),
                        "--executor", "local", "--command", "tune", "--trials", "1", "--wait"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "finished with exit status 3" in r.stdout, r.stdout + r.stderr


def test_requeued_commands_continue(tmp_path):
    """A run or network run resumes its checkpoint when --out holds one (--force dropped: it would start over),
    and runs again as submitted when preempted before its first checkpoint (--resume there would be refused)."""
    d = tmp_path / "d"
    for cmd, name in (("run", "checkpoint.h5"), ("nn", "checkpoint.pt")):
        for argv in ([cmd, "j.toml", "--out", str(d)], [cmd, "j.toml", "--force", f"--out={d}"]):
            assert resume_argv(argv) == argv  # no checkpoint yet
        d.mkdir(exist_ok=True)
        (d / name).write_bytes(b"")
        assert resume_argv([cmd, "j.toml", "--out", str(d)]) == [cmd, "j.toml", "--out", str(d), "--resume"]
        assert resume_argv([cmd, "j.toml", "--force", f"--out={d}"]) == [cmd, "j.toml", f"--out={d}", "--resume"]
        assert resume_argv([cmd, "j.toml", "--out", str(d), "--resume"]).count("--resume") == 1
        (d / name).unlink()
    assert resume_argv(["tune", "j.toml", "--out", "d", "--trials", "3"])[0] == "tune"
    assert resume_argv(["sample", "--n", "5", "--out", "p.h5"]) is None


def test_preemption_signal_reaches_the_run_then_submitit_requeues(monkeypatch):
    """Slurm's USR2 goes to the run's SIGUSR1 checkpoint handler; exit status 4 then hands over to submitit."""
    import signal

    import hpcflow.cli
    import hpcflow.submit.task
    from hpcflow.submit.task import HpcflowTask

    events = []
    # (MPI_Finalize here would end MPI for the rest of this process: MPICH aborts it at its next MPI call)
    monkeypatch.setattr(hpcflow.submit.task, "leave_mpi", lambda: events.append("every rank leaves MPI"))
    old = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        signal.signal(signal.SIGUSR2, lambda *_: events.append("submitit requeue"))  # as submitit installs it

        def run_with_checkpoint_handler(argv):
            signal.signal(signal.SIGUSR1, lambda *_: events.append("run checkpoints"))  # as the run installs it
            os.kill(os.getpid(), signal.SIGUSR2)  # Slurm's --signal before the time limit
            return 4  # Preempted after the checkpoint

        monkeypatch.setattr(hpcflow.cli, "main", run_with_checkpoint_handler)
        assert HpcflowTask()(["run", "j.toml", "--out", "d"]) == 4
        assert events == ["run checkpoints", "every rank leaves MPI", "submitit requeue"]

        events.clear()
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.signal(signal.SIGUSR2, lambda *_: events.append("submitit requeue"))
        monkeypatch.setattr(hpcflow.cli, "main", lambda argv: os.kill(os.getpid(), signal.SIGUSR2) or 0)
        assert HpcflowTask()(["nn", "j.toml", "--out", "d"]) == 0  # no checkpoint handler: requeued at once
        assert events == ["submitit requeue"]

        events.clear()  # SIGTERM (scancel) stops the run with 4 too: a cancelled job is not requeued
        monkeypatch.setattr(hpcflow.cli, "main", lambda argv: 4)
        assert HpcflowTask()(["run", "j.toml", "--out", "d"]) == 4 and events == []
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    nxt = HpcflowTask().checkpoint(["run", "j.toml", "--out", os.path.dirname(__file__)])  # holds no checkpoint
    assert nxt.args == (["run", "j.toml", "--out", os.path.dirname(__file__)],)
    assert HpcflowTask().checkpoint(["sample", "--n", "5", "--out", "p.h5"]) is None


def test_a_job_slurm_requeued_itself_resumes_its_checkpoint(tmp_path, monkeypatch):
    """A run stopped by SIGTERM is not requeued by the task (scancel must cancel); where Slurm requeues the job itself
    (PreemptMode=REQUEUE: SIGTERM, then requeue), the job starts again with SLURM_RESTART_COUNT set and resumes."""
    import hpcflow.cli
    from hpcflow.submit.task import HpcflowTask

    ran = []
    monkeypatch.setattr(hpcflow.cli, "main", lambda argv: ran.append(argv) or 0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint.h5").write_bytes(b"")
    argv = ["run", "j.toml", "--out", str(out)]
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    HpcflowTask()(argv)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    HpcflowTask()(argv)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    HpcflowTask()(argv)
    HpcflowTask()(["sample", "--n", "5", "--out", "p.h5"])  # no checkpoints: as given
    assert ran == [argv, argv, argv + ["--resume"], ["sample", "--n", "5", "--out", "p.h5"]]


def test_a_job_preempted_before_any_checkpoint_is_requeued_as_submitted_and_finishes(tmp_path):
    """USR2 (Slurm's pre-timeout signal) to the local worker of a noise scan (a kind without checkpoints): submitit
    requeues it, the requeued command runs as submitted (with --resume it was refused, exit 2) and finishes."""
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", HPCFLOW_THREADS="1")
    out, logs = tmp_path / "out", tmp_path / "out_logs"
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "submit", str(ROOT / "jobs" / "noise_scan.toml"),
                             "--out", str(out), "--executor", "local", "--wait"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not out.is_dir() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the run has started (its --out exists): submitit's handler is installed
        workers = [int(p) for p in os.listdir("/proc") if p.isdigit() and str(logs).encode() in
                   _cmdline(p) and b"submitit.core._submit" in _cmdline(p)]
        assert len(workers) == 1 and not (out / "summary.json").exists(), workers
        os.kill(workers[0], signal.SIGUSR2)
        text, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "finished with exit status 0" in text, text
    log = "".join(p.read_text() for p in logs.glob("*_log.out"))
    assert "this job is preempted" in log and log.count("Starting with") == 2, log
    assert json.loads((out / "summary.json").read_text())["kind"] == "noise_scan"


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def test_the_sbatch_templates_command_follows_the_job_kind_and_the_directory(tmp_path):
    """`python -m hpcflow.submit.requeue JOB DIR` (what the MPI/GPU templates run): `nn` for network jobs, `run`
    otherwise; --resume only for a directory whose checkpoint belongs to an interrupted run."""
    from hpcflow.submit.requeue import command

    flow, nn = tmp_path / "flow.toml", tmp_path / "nn.toml"
    flow.write_text(JOB)
    nn.write_text('[job]\nkind = "nn"\n')
    d = tmp_path / "d"
    assert command(str(flow), str(d)) == ["run"] and command(str(nn), str(d)) == ["nn"]
    d.mkdir()
    (d / "checkpoint.h5").write_bytes(b"")
    assert command(str(flow), str(d)) == ["run", "--resume"]  # preempted flows write no summary.json
    assert command(str(nn), str(d)) == ["nn"]  # not its checkpoint
    (d / "checkpoint.pt").write_bytes(b"")
    for status, resume in (("preempted", True), ("finished", False), ("diverged", False)):
        (d / "summary.json").write_text(json.dumps({"status": status}))
        assert command(str(nn), str(d)) == (["nn", "--resume"] if resume else ["nn"])
        assert command(str(flow), str(d)) == (["run", "--resume"] if resume else ["run"])
    (d / "summary.json").write_text("{not json")
    assert command(str(nn), str(d)) == ["nn", "--resume"]  # no readable summary: interrupted (a plain rerun is
    # refused there with a pointer to --resume)
    r = subprocess.run([sys.executable, "-m", "hpcflow.submit.requeue", str(nn), str(tmp_path / "none")],
                       capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert r.returncode == 0 and r.stdout == "nn\n"


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def test_job_states_come_from_squeue_said_once_where_sacct_fails(tmp_path, monkeypatch):
    """A Slurm without accounting: sacct fails at every poll. submitit printed sacct's error and its own warning at
    every poll, and never learned that a job had ended without a result (`--wait` hung). The watcher says it once and
    asks squeue; a job squeue no longer knows has ended; a failing squeue is said each time (states unknown)."""
    from hpcflow.submit.executor import QueueWatcher

    bin_dir, d = tmp_path / "bin", tmp_path / "q"
    bin_dir.mkdir()
    d.mkdir()
    _script(bin_dir / "sacct", f'echo x >> {d}/sacct.calls; echo "Slurm accounting storage is disabled" >&2; exit 1')
    _script(bin_dir / "squeue", f'echo "$@" > {d}/args; cat {d}/out; cat {d}/err >&2; exit "$(cat {d}/rc)"')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def squeue(out="", err="", rc=0):
        for name, text in (("out", out), ("err", err), ("rc", str(rc))):
            (d / name).write_text(text)

    said = []
    w = QueueWatcher(log=said.append)
    for j in ("12", "15_0", "15_1"):
        w.register_job(j)
    squeue("12|RUNNING|vm\n15_0|RUNNING|vm\n15_1|PENDING|\n")
    w.update()
    assert [w.get_state(j, mode="cache") for j in ("12", "15_0", "15_1")] == ["RUNNING", "RUNNING", "PENDING"]
    assert (d / "args").read_text().split()[-2:] == ["-j", "12,15"]
    assert len(said) == 1 and "sacct cannot report job states here (Slurm accounting storage is disabled)" in said[0]
    squeue("12|CANCELLED|vm\n15_0|COMPLETED|vm\n")  # 15_1 forgotten by Slurm (MinJobAge): it has ended
    w.update()
    assert [w.get_state(j, mode="cache") for j in ("12", "15_0", "15_1")] == ["CANCELLED", "COMPLETED", "ENDED"]
    assert all(w.is_done(j, mode="cache") for j in ("12", "15_0", "15_1"))
    assert len(said) == 1 and (d / "sacct.calls").read_text() == "x\n"  # sacct asked once

    w.register_job("20")
    squeue(err="slurm_load_jobs error: Invalid job id specified\n", rc=1)  # squeue's answer when it knows none
    w.update()
    assert w.get_state("20", mode="cache") == "ENDED" and len(said) == 1
    w.register_job("21")
    squeue(err="slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n", rc=1)
    w.update()
    assert not w.is_done("21", mode="cache")  # unknown: still waited for
    assert len(said) == 2 and "squeue failed (slurm_load_jobs error: Unable to contact slurm controller" in said[1]


def test_the_templates_batch_step_passes_sigusr1_on_and_requeues_on_status_4(tmp_path):
    """`exec python -m hpcflow.submit.step srun ...` ends the MPI and GPU templates: a SIGUSR1 sent to the batch step
    (sbatch --signal=B:USR1@..., scancel --full) reaches the command (bash, the batch step before, ended on it and the
    job was never requeued), and exit status 4 (checkpoint written) requeues the job."""
    import signal
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "scontrol", f'echo "$@" >> {tmp_path}/scontrol.log')
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT), SLURM_JOB_ID="77")
    ready = tmp_path / "ready"
    child = ("import signal, sys, time\nsignal.signal(signal.SIGUSR1, lambda *_: sys.exit(4))\n"
             f"open({str(ready)!r}, 'w').close()\ntime.sleep(60)\n")
    step = [sys.executable, "-m", "hpcflow.submit.step"]
    proc = subprocess.Popen([*step, sys.executable, "-c", child], env=env)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGUSR1)
        assert proc.wait(timeout=30) == 4
    finally:
        proc.kill()
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77\n"
    for code, status in (("raise SystemExit(3)", 3), ("import os; os.kill(os.getpid(), 15)", 128 + 15)):
        r = subprocess.run([*step, sys.executable, "-c", code], env=env, timeout=60)
        assert r.returncode == status
    r = subprocess.run([*step, str(tmp_path / "missing")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 127 and "cannot run" in r.stderr
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77\n"  # requeued on status 4 only
