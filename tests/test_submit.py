"""`hpcflow submit`: validation before queueing, --check, no Slurm on PATH, the local executor, resume argv."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.submit.task import next_leg
from jobtexts import DELTA_FLOW

ROOT = Path(__file__).resolve().parents[1]

JOB = """
[job]
kind = "flow"
[geometry]
n_train = 80
n_test = 40
""" + DELTA_FLOW


@pytest.fixture
def job(tmp_path):
    p = tmp_path / "job.toml"
    p.write_text(JOB)
    return p


def _only(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("option", ["--wait", "--check"])
def test_slurm_executor_without_slurm_is_one_line_exit_2(tmp_path, job, monkeypatch, capsys, option):
    """--check refuses it as the submission does (it said "would queue ... not checked (not on PATH)", exit 0)."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no sbatch, no srun
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", option]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "sbatch and srun not on PATH" in err and "--executor local" in err
    assert captured.out == "" and _only(tmp_path) == ["bin", "job.toml"]  # nothing half-submitted


def test_check_validates_as_run_would_and_writes_nothing(tmp_path, job, capsys, monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")  # the run below sets it (limit_threads): unset again after the test
    monkeypatch.delenv("HPCFLOW_THREADS")
    _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    out = tmp_path / "out"
    assert main(["submit", str(job), "--out", str(out), "--executor", "slurm", "--check", "--ntasks-per-node", "4"]) == 0
    said = capsys.readouterr().out
    assert "is valid (kind flow)" in said and "1 node(s) x 4 task(s) in partition debug" in said
    assert f"--out {out}" in said
    bad = tmp_path / "bad.toml"
    bad.write_text(JOB.replace("dt = 2.0", "dt = -2.0"))
    for argv in (["submit", str(bad), "--out", str(out), "--executor", "local"],
                 ["submit", str(bad), "--out", str(out), "--executor", "local", "--check"],
                 ["run", str(bad), "--out", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "[flow].dt = -2.0: must lie in (0" in err and err.count("\n") == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "summary.json").write_text('{"hpcflow_version": "0.1.0"}')  # (a run's: its mark)
    assert main(["submit", str(job), "--out", str(tmp_path / "full"), "--executor", "local"]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--array", "2"]) == 2
    assert "use it with --command tune" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "nn"]) == 2
    err = capsys.readouterr().err  # the line names the verb the user typed, not the --command it queues
    assert "runs kind = \"nn\" jobs" in err and err.startswith("hpcflow submit: error:")
    for check in ([], ["--check"]):  # --check says what a submission would: refused the same
        assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--ntasks-per-node", "2",
                     *check]) == 2
        assert "one task per job" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "tune", "--trials", "2"]) == 2
    assert "no [tune] table" in capsys.readouterr().err
    tune = tmp_path / "tune.toml"
    tune.write_text(JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n')
    assert main(["submit", str(tune), "--out", str(tmp_path / "full"), "--executor", "local", "--command", "tune",
                 "--trials", "2", "--check"]) == 2
    assert "is not a study directory" in capsys.readouterr().err
    assert _only(tmp_path) == ["bad.toml", "bin", "full", "job.toml", "tune.toml"]


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
        assert args.quiet is True  # each of run, nn and tune takes --quiet
    # submit --help and the README name the commands it passes --quiet on to (they named run and nn alone)
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    taking = ", ".join(c for c in ("run", "nn", "tune") if "--quiet" in sub[c]._option_string_actions)
    said = next(a.help for a in sub["submit"]._actions if "--quiet" in a.option_strings)
    assert f"({taking}: " in said, said
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    assert "`--quiet` is passed on to the command where it has one (" + ", ".join(
        f"`{c}`" for c in taking.split(", ")) + ")" in readme
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
    # the copy of the job file that submit checked, which the job runs (`hpcflow.commands.submit._frozen_job`)
    copy = re.search(rf"hpcflow run ({re.escape(str(out))}_logs/job-[^/ ]+/job\.toml) --out {re.escape(str(out))} "
                     r"--quiet\n", r.stdout)
    assert copy and Path(copy.group(1)).read_text() == JOB, r.stdout
    assert f"logs {tmp_path}/out_logs/" in r.stdout and f"results in {out}" in r.stdout
    # a tune whose every trial diverges exits 3 (no finished trial); --wait hands that status back. The job's
    # checks take the step (so submit queues it); the flow blows up on it
    failing = tmp_path / "failing.toml"
    failing.write_text(JOB + '[tune.space]\n"flow.dt" = {choices = [1e12]}\n')
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(failing), "--out", str(tmp_path / "t"),
                        "--executor", "local", "--command", "tune", "--trials", "1", "--wait"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "finished with exit status 3" in r.stdout, r.stdout + r.stderr


def test_requeued_commands_continue(tmp_path):
    """A run or network run resumes its checkpoint when --out holds one of an interrupted run (--force dropped: it
    would start over), and runs again as submitted when preempted before its first checkpoint (--resume there would
    be refused)."""
    d = tmp_path / "d"
    for cmd, name in (("run", "checkpoint.h5"), ("nn", "checkpoint.pt")):
        for argv in ([cmd, "j.toml", "--out", str(d)], [cmd, "j.toml", "--force", f"--out={d}"]):
            assert next_leg(argv) == argv  # no checkpoint yet
            assert next_leg(argv, job="7") == argv
        d.mkdir(exist_ok=True)
        (d / name).write_bytes(b"")  # no summary.json beside it: an interrupted run
        assert next_leg([cmd, "j.toml", "--out", str(d)]) == [cmd, "j.toml", "--out", str(d), "--resume"]
        assert next_leg([cmd, "j.toml", "--force", f"--out={d}"]) == [cmd, "j.toml", f"--out={d}", "--resume"]
        assert next_leg([cmd, "j.toml", "--out", str(d), "--resume"]).count("--resume") == 1
        (d / name).unlink()
    assert next_leg(["tune", "j.toml", "--out", "d", "--trials", "3"])[0] == "tune"
    assert next_leg(["sample", "--n", "5", "--out", "p.h5"]) is None
    # job 7's ended run without a checkpoint (a kind without): nothing run, with the status the run ended with
    for status, code in (("finished", 0), ("diverged", 3)):
        (d / "summary.json").write_text(json.dumps({"status": status, "provenance": {"slurm_job_id": "7"}}))
        ended = next_leg(["run", "j.toml", "--out", str(d), "--force"], job="7")
        assert ended.status == code and "nothing to do" in ended.said, ended
        assert next_leg(["run", "j.toml", "--out", str(d), "--force"], job="8") == ["run", "j.toml", "--out", str(d),
                                                                                    "--force"]


def test_a_network_job_submitted_with_command_run_is_queued_as_nn_and_resumes_its_checkpoint(tmp_path, capsys):
    """--command run (the default) of a kind "nn" job queues `hpcflow nn`: after preemption its checkpoint.pt is
    resumed, where `hpcflow run ... --out DIR` would be refused on the non-empty DIR and the training lost."""
    out = tmp_path / "out"
    assert main(["submit", str(ROOT / "jobs" / "nn_smoke.toml"), "--out", str(out), "--executor", "local",
                 "--check"]) == 0
    said = capsys.readouterr().out
    argv = said.split(": hpcflow ", 1)[1].split()
    assert argv[0] == "nn" and argv[argv.index("--out") + 1] == str(out), said
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"")  # what the run's SIGUSR1 handler leaves at preemption
    assert next_leg(argv)[0] == "nn" and next_leg(argv)[-1] == "--resume"


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


def test_a_signal_before_the_checkpoints_of_a_job_on_several_ranks_is_said_as_it_is_and_requeues_nothing(monkeypatch,
                                                                                                           capsys):
    """--ntasks-per-node 2 --time 1 --signal-delay 45: Slurm's signal came as the run set up (it sends it up to 60 s
    early), and the log said "preempted ... not requeued: submit it again", then the run finished with exit 0. The
    line says what is so: the run goes on, to be submitted again if the time limit stops it. A stop with 4 after it
    (SIGTERM at the time limit, or scancel, once the run has a checkpoint handler) is not requeued: it was, as if
    that signal had been the run's own."""
    import signal

    import hpcflow.cli
    import hpcflow.submit.task
    from hpcflow.submit.task import HpcflowTask

    events = []
    monkeypatch.setattr(hpcflow.submit.task, "leave_mpi", lambda: events.append("every rank leaves MPI"))
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")  # (srun's count of the step's tasks: several ranks)
    monkeypatch.setenv("SLURM_PROCID", "0")
    old = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # (no checkpoint handler yet: the run is setting up)
        signal.signal(signal.SIGUSR2, lambda *_: events.append("submitit requeue"))  # as submitit installs it
        monkeypatch.setattr(hpcflow.cli, "main", lambda argv: os.kill(os.getpid(), signal.SIGUSR2) or 0)
        assert HpcflowTask()(["run", "j.toml", "--out", "d"]) == 0 and events == []
        err = capsys.readouterr().err
        assert "not requeued: submit it again" not in err and "preempted" not in err, err
        assert "the job is not requeued and the run goes on: if the time limit stops it before it finishes, submit " \
               "it again (its command: hpcflow run j.toml --out d)" in err, err

        def stopped_at_the_limit(argv):
            os.kill(os.getpid(), signal.SIGUSR2)  # before the run's checkpoint handler
            signal.signal(signal.SIGUSR1, lambda *_: events.append("run checkpoints"))  # as the run installs it
            return 4  # SIGTERM at the time limit: the run writes its checkpoint and stops

        monkeypatch.setattr(hpcflow.cli, "main", stopped_at_the_limit)
        assert HpcflowTask()(["run", "j.toml", "--out", "d"]) == 4 and events == []
    finally:
        for s, h in old.items():
            signal.signal(s, h)


EARLY_SIGNAL = """
import json, os, signal, sys, time
import hpcflow.cli
from hpcflow.submit.task import HpcflowTask

events = []
signal.signal(signal.SIGUSR2, lambda *_: events.append("submitit requeue"))  # as submitit installs it

def setting_up(argv):  # the run as it starts: no checkpoint handler yet, MPI not initialised
    child = os.fork()  # as ends_if_blocked forks its watcher around MPI_Init, in the task's process group
    if child == 0:
        try:
            for _ in range(150):  # (Python code running, where a handler runs), 1.5 s
                time.sleep(0.01)
        finally:
            os._exit(0)
    time.sleep(0.3)
    os.killpg(0, signal.SIGUSR2)  # `scancel --signal=USR2` as the step starts: the task's process group
    os.waitpid(child, 0)
    events.append("the run goes on")
    return 0

hpcflow.cli.main = setting_up
status = HpcflowTask()(["run", "j.toml", "--out", "d"])
print(json.dumps({"status": status, "events": events, "mpi": sorted(m for m in sys.modules if m.startswith("mpi4py"))}))
"""


@pytest.mark.parametrize("procid", ["0", "1"])
def test_a_signal_as_the_ranks_of_a_job_start_leaves_mpi_alone_and_is_said_by_task_0_once(tmp_path, procid):
    """srun's task of a 2-task step (its launcher's variables; no MPI launch here) gets submitit's USR2 as it starts,
    before the run has a checkpoint handler: the handler decides "several ranks" from the launcher's task count,
    without MPI (it asked MPI's world, which initialised MPI inside the handler: under srun, while the task's own
    MPI_Init ran, the ranks hung, srun's PMI server saying "invalid pmi1 command received: 'init'"). The run goes on,
    the job is not requeued, and only task 0 says so, once: every rank said it, and so did a process forked from the
    task that the step's signal reached too (the watcher of MPI_Init, `stop_signals.ends_if_blocked`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_", "PMI_", "PMIX_", "OMPI_"))}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parents[1]), SLURM_JOB_ID="999999991", SLURM_STEP_ID="0",
               SLURM_STEP_NUM_TASKS="2", SLURM_NTASKS="2", SLURM_PROCID=procid, SLURM_LOCALID=procid)
    r = subprocess.run([sys.executable, "-c", EARLY_SIGNAL], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=60, start_new_session=True)
    assert r.returncode == 0, r.stdout + r.stderr
    said = json.loads(r.stdout.splitlines()[-1])
    assert said == {"status": 0, "events": ["the run goes on"], "mpi": []}, r.stdout + r.stderr
    line = "hpcflow submit: the signal before the time limit came while the job's command had no checkpoint to stop at"
    assert r.stderr.count(line) == (1 if procid == "0" else 0), r.stderr
    if procid == "0":
        assert "so the job is not requeued and the run goes on" in r.stderr, r.stderr


@pytest.mark.parametrize("checkpoint", [True, False], ids=["checkpointed", "no-checkpoint-handler"])
def test_task_0_marks_the_legs_end_as_it_has_submitit_requeue_the_job(tmp_path, monkeypatch, checkpoint):
    """Slurm's time-limit signal: the run writes its checkpoint and stops with 4 (or, without a checkpoint handler,
    submitit requeues at once), and submitit requeues the job, which kills its batch shell before it marks the step's
    end. Task 0 marks it first (the job's `ended_file`, a new time at each leg), so that `--wait` asks Slurm through
    the requeue's hold instead of at its own pace (up to 10 minutes); another task does not."""
    import signal

    import hpcflow.cli
    import hpcflow.submit.task
    from hpcflow.submit.task import HpcflowTask

    logs = tmp_path / "logs"
    logs.mkdir()
    for name in ("SLURM_RESTART_COUNT", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in dict(SUBMITIT_FOLDER=str(logs), SUBMITIT_EXECUTOR="slurm", SLURM_JOB_ID="77",
                            SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NTASKS="1").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(hpcflow.submit.task, "leave_mpi", lambda: None)
    mark, marked = logs / "77_ended", []

    def submitits_requeue(signum, frame):  # (as submitit's handler: requeue the job, then end the process)
        marked.append(mark.exists() and time.time() - mark.stat().st_mtime < 60)
        if not checkpoint:
            raise SystemExit(-1)

    def stopped_at_the_limit(argv):
        if checkpoint:  # (the run's checkpoint writer: it writes its checkpoint and stops with 4)
            signal.signal(signal.SIGUSR1, lambda *_: None)
        os.kill(os.getpid(), signal.SIGUSR2)
        return 4

    old = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        for procid, said in (("1", False), ("0", True)):
            monkeypatch.setenv("SLURM_PROCID", procid)
            mark.unlink(missing_ok=True)
            marked.clear()
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            signal.signal(signal.SIGUSR2, submitits_requeue)
            monkeypatch.setattr(hpcflow.cli, "main", stopped_at_the_limit)
            with contextlib.suppress(SystemExit):
                HpcflowTask().run(["run", "j.toml", "--out", str(tmp_path / "out")])
            assert marked == [said], (procid, marked)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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


def test_a_task_that_exits_by_systemexit_returns_its_status(monkeypatch):
    """Ranks above 0 of a refusal decided together leave by SystemExit(2) (and argparse by SystemExit on every rank):
    the task returns that status as its result (a task without one made `--wait` say the job ended without a result,
    exit 1, where rank 0 said 2). SystemExit's codes as Python maps them: None 0, an integer itself, a message 1."""
    import hpcflow.cli
    from hpcflow.submit.task import HpcflowTask

    def exits(code):
        def main(argv):
            raise SystemExit(code)
        return main

    for code, status in ((2, 2), (None, 0), (0, 0), (3, 3), ("a message", 1)):
        monkeypatch.setattr(hpcflow.cli, "main", exits(code))
        assert HpcflowTask()(["run", "j.toml", "--out", "d"]) == status, code
    import signal

    def requeue_exits(signum, frame):  # submitit's handler: requeue, then end the process
        raise SystemExit(-1)

    old = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    try:  # preempted without a checkpoint handler: submitit's exit is not taken for the command's status
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.signal(signal.SIGUSR2, requeue_exits)
        monkeypatch.setattr(hpcflow.cli, "main", lambda argv: os.kill(os.getpid(), signal.SIGUSR2) or 0)
        with pytest.raises(SystemExit) as stop:
            HpcflowTask()(["sample", "--n", "5", "--out", "p.h5"])
        assert stop.value.code == -1
    finally:
        for s, h in old.items():
            signal.signal(s, h)


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
    otherwise; --resume only in a requeued job (SLURM_RESTART_COUNT > 0) and for a directory whose checkpoint belongs
    to an interrupted run, or to the run this Slurm job finished (SLURM_JOB_ID, as its summary.json records it), not
    to a run of another job that this one was stopped before it replaced."""
    from hpcflow.submit.requeue import command

    flow, nn = tmp_path / "flow.toml", tmp_path / "nn.toml"
    flow.write_text(JOB)
    nn.write_text('[job]\nkind = "nn"\n')
    d = tmp_path / "d"
    assert command(str(flow), str(d)) == ["run"] and command(str(nn), str(d)) == ["nn"]
    d.mkdir()
    (d / "checkpoint.h5").write_bytes(b"")
    assert command(str(flow), str(d)) == ["run", "--resume"]  # killed before any summary.json: interrupted
    assert command(str(nn), str(d)) == ["nn"]  # not its checkpoint
    (d / "checkpoint.pt").write_bytes(b"")
    for status, made_by, resume in (("preempted", "77", True), ("finished", "77", True), ("diverged", "77", True),
                                    ("preempted", "12", False), ("finished", "12", False), ("finished", None, False),
                                    ("preempted", ..., True), ("finished", ..., False)):
        made = {} if made_by is ... else {"provenance": {"slurm_job_id": made_by}}  # (...: a summary without it)
        (d / "summary.json").write_text(json.dumps({"status": status, **made}))
        assert command(str(nn), str(d), slurm_job="77") == (["nn", "--resume"] if resume else ["nn"])
        assert command(str(flow), str(d), slurm_job="77") == (["run", "--resume"] if resume else ["run"])
        assert command(str(nn), str(d), requeued=False, slurm_job="77") == ["nn"]
    (d / "summary.json").write_text("{not json")
    assert command(str(nn), str(d)) == ["nn", "--resume"]  # no readable summary: interrupted (a plain rerun is
    # refused there with a pointer to --resume)
    assert command(str(nn), str(d), requeued=False) == ["nn"]  # a first submission: the options as given
    for restarts, said in ((None, "nn\n"), ("0", "nn\n"), ("1", "nn --resume\n"), ("x", "")):
        env = {k: v for k, v in os.environ.items() if k != "SLURM_RESTART_COUNT"}
        env.update(PYTHONPATH=str(ROOT), **({} if restarts is None else {"SLURM_RESTART_COUNT": restarts}))
        r = subprocess.run([sys.executable, "-m", "hpcflow.submit.requeue", str(nn), str(d)], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode == (2 if restarts == "x" else 0) and r.stdout == said, (restarts, r.stdout + r.stderr)
    assert "SLURM_RESTART_COUNT='x' must be a whole number" in r.stderr and r.stderr.count("\n") == 1


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
    """`exec python -m hpcflow.submit.step srun ...` ends the run, MPI and GPU templates: a SIGUSR1 sent to the batch step
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


def _stand_in_slurm(bin_dir: Path, monkeypatch, sinfo: str, rc: int = 0) -> Path:
    """sinfo printing `sinfo` (its lines: one per partition and kind of node), sbatch/srun/scancel that only record
    that they were called (in bin_dir/called), squeue listing no job; put first on PATH."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sinfo.out").write_text(sinfo + "\n")
    _script(bin_dir / "sinfo", f'cat {bin_dir}/sinfo.out; exit {rc}')
    for name in ("sbatch", "srun", "scancel"):
        _script(bin_dir / name, f'echo "{name} $*" >> {bin_dir}/called')
    _script(bin_dir / "squeue", "exit 0")  # (no job queued: submit asks it for jobs into the same --out)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir / "called"


def test_slurm_times_gres_and_partition_lines_are_read():
    """Slurm's time forms (sbatch --time's, as sinfo prints MaxTime), GPUs of a node's gres, and sinfo's lines of a
    partition with two kinds of node; values sinfo gives only as a lower bound ("4+") or not at all limit nothing."""
    from hpcflow.submit.capacity import Nodes, gpus, minutes, read_sinfo

    for text, mins in (("45", 45), ("0:30", 0.5), ("30:00", 30), ("1:30:00", 90), ("2-12", 2 * 1440 + 12 * 60),
                       ("2-12:30", 2 * 1440 + 12 * 60 + 30), ("1-02:00:00", 1440 + 120),
                       ("7-00:00:01", 7 * 1440 + 1 / 60)):
        assert minutes(text) == pytest.approx(mins, rel=1e-15), text
    assert minutes("infinite") is None and minutes("UNLIMITED") is None and minutes("n/a") is None
    for gres, n in (("(null)", 0), ("gpu:4", 4), ("gpu:a100:4(S:0-1)", 4), ("gpu:tesla:2(S:0,1)", 2),
                    ("gpu:a:2,gpu:b:2,mps:200", 4), ("mps:400,gpu:1", 1), ("gpu", 1), ("gpu:a100", 1)):
        assert gpus(gres) == n, gres
    parts = read_sinfo("gpu|32|2|gpu:a100:4(S:0-1)|2-00:00:00|2-4|24\n"
                       "batch*|64|10|(null)|infinite|1-infinite|UNLIMITED\n"
                       "batch*|128|2|(null)|infinite|1-infinite|UNLIMITED\n"
                       "odd|4+|3|(null)|n/a|infinite|UNLIMITED\nnot a line\n")
    assert sorted(parts) == ["batch", "gpu", "odd"] and [p.name for p in parts.values() if p.default] == ["batch"]
    g = parts["gpu"]
    assert (g.max_time_min, g.min_nodes, g.max_nodes, g.max_cpus_per_node) == (2880, 2, 4, 24)
    assert g.nodes == [Nodes(2, 32, 4)]
    assert parts["batch"].nodes == [Nodes(10, 64, 0), Nodes(2, 128, 0)] and parts["batch"].max_nodes is None
    o = parts["odd"]
    assert o.nodes == [Nodes(3, None, 0)] and o.max_time_min is None and (o.min_nodes, o.max_nodes) == (None, None)


SINFO = """batch*|2|1|(null)|infinite|1-infinite|UNLIMITED
mixed|8|4|(null)|1-00:00:00|1-infinite|UNLIMITED
mixed|4|2|gpu:a100:2(S:0-1)|1-00:00:00|1-infinite|UNLIMITED
capped|16|8|(null)|30:00|2-4|12"""


@pytest.mark.parametrize("options, line", [
    # the README's example on a 2-CPU node (the audit's job pended for ever, reason PartitionConfig)
    (["--ntasks-per-node", "4"], "--ntasks-per-node 4 x --cpus-per-task 1 needs 4 CPUs per node; partition batch's "
     "nodes have 2: lower --ntasks-per-node or pick another --partition"),
    (["--ntasks-per-node", "2", "--cpus-per-task", "2"], "needs 4 CPUs per node; partition batch's nodes have 2: "
     "lower --ntasks-per-node or --cpus-per-task or pick another --partition"),
    (["--nodes", "2"], "--nodes 2 needs 2 node(s); partition batch has 1: lower --nodes or pick another --partition"),
    (["--partition", "mixed", "--ntasks-per-node", "9"], "needs 9 CPUs per node; partition mixed's largest node has 8"),
    (["--partition", "mixed", "--gpus-per-node", "3"], "--gpus-per-node 3 needs 3 GPUs per node; partition mixed's "
     "largest node has 2: lower --gpus-per-node or pick another --partition"),
    (["--gpus-per-node", "1"], "--gpus-per-node 1 needs 1 GPU per node; partition batch's nodes have none"),
    # every kind of node holds part of the request, none all of it
    (["--partition", "mixed", "--ntasks-per-node", "8", "--gpus-per-node", "1"], "--nodes 1 needs 1 node(s) of 8 CPUs "
     "and 1 GPU each; partition mixed has 0 such node(s) (of 6)"),
    (["--partition", "mixed", "--nodes", "3", "--gpus-per-node", "2"], "--nodes 3 needs 3 node(s) of 2 CPUs and 2 GPUs "
     "each; partition mixed has 2 such node(s) (of 6)"),
    (["--partition", "mixed", "--nodes", "7"], "--nodes 7 needs 7 node(s); partition mixed has 6"),
    (["--partition", "mixed", "--time", "1441"], "--time 1441 (minutes) exceeds partition mixed's time limit "
     "1-00:00:00 (MaxTime): lower --time or pick another --partition"),
    (["--partition", "capped", "--nodes", "2", "--ntasks-per-node", "13", "--time", "30"],
     "needs 13 CPUs per node; partition capped gives a job 12 per node (MaxCPUsPerNode)"),
    (["--partition", "capped", "--nodes", "5", "--time", "30"], "--nodes 5 exceeds partition capped's 4 node(s) per "
     "job (MaxNodes)"),
    (["--partition", "capped", "--time", "30"], "--nodes 1 is below partition capped's 2 nodes per job (MinNodes)"),
    (["--partition", "capped,batch", "--nodes", "2", "--time", "30", "--ntasks-per-node", "13"],
     "partition capped gives a job 12 per node"),  # fits neither: the first one's reason
    (["--partition", "gpu"], "--partition gpu: this Slurm has no partition gpu; pick one of batch, mixed, capped"),
])
def test_a_request_no_node_of_its_partition_holds_is_refused_before_queueing(tmp_path, job, monkeypatch, capsys,
                                                                              options, line):
    called = _stand_in_slurm(tmp_path / "bin", monkeypatch, SINFO)
    out = tmp_path / "out"
    for check in ([], ["--check"]):
        assert main(["submit", str(job), "--out", str(out), "--executor", "slurm", "--wait", *options, *check]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("hpcflow submit: error: ") and line in err, err
    assert "sbatch" not in (called.read_text() if called.exists() else "")  # sbatch never ran (srun --mpi=list may)
    assert _only(tmp_path) == ["bin", "job.toml"]  # no --out, no logs


@pytest.mark.parametrize("options, where", [
    ([], "batch"),  # the default partition
    (["--partition", "mixed", "--nodes", "6", "--ntasks-per-node", "4", "--time", "1440"], "mixed"),
    (["--partition", "mixed", "--nodes", "2", "--ntasks-per-node", "4", "--gpus-per-node", "2"], "mixed"),
    (["--partition", "mixed", "--nodes", "4", "--ntasks-per-node", "8"], "mixed"),
    (["--partition", "capped,batch"], "capped,batch"),  # fits batch
    (["--partition", "capped", "--nodes", "4", "--ntasks-per-node", "12", "--time", "30"], "capped"),
])
def test_a_request_that_fits_is_checked_and_passes(tmp_path, job, monkeypatch, capsys, options, where):
    _stand_in_slurm(tmp_path / "bin", monkeypatch, SINFO)
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--check", *options]) == 0
    assert f" in partition {where}: hpcflow run" in capsys.readouterr().out


def test_no_check_where_sinfo_does_not_answer_or_for_the_local_executor(tmp_path, job, monkeypatch, capsys):
    """No Slurm answering (sinfo fails, prints nothing, or speaks of no partition) and the local executor: nothing to
    compare the request with, so nothing is refused for its size (the line says it went unchecked, and why)."""
    big = ["--ntasks-per-node", "64", "--time", "100000"]
    for sinfo, rc, why in (("", 1, "exit status 1"), ("", 0, "no partition listed"),
                           ("slurm_load_partitions: Unable to contact slurm controller", 0,
                            "no partition listed: slurm_load_partitions: Unable to contact slurm controller")):
        _stand_in_slurm(tmp_path / "bin", monkeypatch, sinfo, rc)
        assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--check", *big]) == 0
        said = capsys.readouterr().out
        assert f"x 64 task(s), not checked against the cluster's partitions because sinfo did not answer ({why}): " \
            "hpcflow run" in said and "in partition" not in said, said
    _stand_in_slurm(tmp_path / "bin", monkeypatch, "batch*|2|1|(null)|10|1-infinite|UNLIMITED")
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--check"]) == 0
    _stand_in_slurm(tmp_path / "bin", monkeypatch, "other|2|1|(null)|10|1-infinite|UNLIMITED")  # no default one
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--check"]) == 2
    assert "no --partition given and this Slurm has no default partition: pass --partition (one of other)" in \
        capsys.readouterr().err


@pytest.mark.parametrize("reason, stops", [
    ("PartitionConfig", True), ("PartitionTimeLimit", True), ("BadConstraints", True),
    ("DependencyNeverSatisfied", True), ("InvalidAccount", True), ("QOSNotAllowed", True),
    ("ReservationDeleted", True), ("QOSMaxCpuPerJobLimit", True), ("AssocMaxWallDurationPerJobLimit", True),
    ("QOSMaxGRESPerNode", True), ("QOSMinCpuNotSatisfied", True), ("MaxMemPerLimit", True),
    # waiting (for others' jobs, a begin time, a person) may start these
    ("Resources", False), ("Priority", False), ("Dependency", False), ("BeginTime", False), ("None", False),
    ("ReqNodeNotAvail, UnavailableNodes:n[1-4]", False), ("PartitionDown", False), ("JobHeldUser", False),
    ("QOSMaxJobsPerUserLimit", False), ("QOSMaxCpuPerUserLimit", False), ("AssocGrpCpuLimit", False),
    ("PartitionNodeLimit", False),  # the request fits the partition's nodes: some are down or drained
])
def test_which_pending_reasons_stop_the_wait(tmp_path, monkeypatch, reason, stops):
    from hpcflow.submit.executor import Resources
    from hpcflow.submit.pending import Verdicts

    _stand_in_slurm(tmp_path / "bin", monkeypatch, SINFO)
    assert bool(Verdicts(Resources()).never(reason)) is stops


def _waited_job(tmp_path, monkeypatch, *, sinfo, squeue, sacct=None):
    """A submitit Slurm job 333 (nothing queued), with stand-in sinfo, squeue (printing bin/squeue.out, rewritable
    by the test), sacct (failing without `sacct`: no accounting) and scancel (recorded in bin/called)."""
    from submitit.slurm.slurm import SlurmJob

    import hpcflow.submit.executor as executor

    bin_dir = tmp_path / "bin"
    called = _stand_in_slurm(bin_dir, monkeypatch, sinfo)
    (bin_dir / "squeue.out").write_text(squeue)
    _script(bin_dir / "squeue", f'cat {bin_dir}/squeue.out')
    if sacct is None:
        _script(bin_dir / "sacct", 'echo "Slurm accounting storage is disabled" >&2; exit 1')
    else:
        (bin_dir / "sacct.out").write_text(sacct)
        _script(bin_dir / "sacct", f'cat {bin_dir}/sacct.out')
    monkeypatch.setattr(executor, "POLL_S", 0.01)
    (tmp_path / "logs").mkdir()
    job = SlurmJob(folder=tmp_path / "logs", job_id="333")
    job._results_timeout_s = 0  # (submitit waits this long for a result file that a cancelled job never writes)
    return job, bin_dir, called


def test_wait_cancels_a_job_that_can_never_start_and_names_the_fix(tmp_path, monkeypatch):
    """The audit's case: 4 tasks on 2-CPU nodes pend for ever (PartitionConfig) and --wait waited for ever. The wait
    stops with one line naming the job, the reason and the option to change (from sinfo), and cancels the job."""
    from hpcflow.submit.executor import Resources, SubmitError, wait

    job, _, called = _waited_job(tmp_path, monkeypatch, sinfo=SINFO, squeue="333|PENDING||PartitionConfig\n")
    said = []
    with pytest.raises(SubmitError) as stop:
        wait([job], res=Resources(ntasks_per_node=4), log=said.append)
    assert str(stop.value) == ("job 333 can never start (pending, reason PartitionConfig): --ntasks-per-node 4 x "
                               "--cpus-per-task 1 needs 4 CPUs per node; partition batch's nodes have 2: lower "
                               "--ntasks-per-node or pick another --partition; the job is cancelled")
    assert called.read_text() == "scancel 333\n"
    assert len(said) == 1 and "sacct cannot report job states" in said[0]


def test_wait_with_accounting_asks_squeue_for_the_reason_and_says_how_to_cancel_if_scancel_fails(tmp_path, monkeypatch):
    """sacct answers (states, no reasons): the pending job's reason comes from squeue. Where sinfo does not answer
    the line gives the reason's own fix; where scancel fails it says how to cancel."""
    from hpcflow.submit.executor import Resources, SubmitError, wait

    job, bin_dir, _ = _waited_job(tmp_path, monkeypatch, sinfo="", squeue="333|PartitionTimeLimit\n",
                                  sacct="JobID|State|NodeList\n333|PENDING|None assigned\n")
    _script(bin_dir / "sinfo", "exit 1")
    _script(bin_dir / "scancel", 'echo "scancel: error: Access/permission denied" >&2; exit 1')
    with pytest.raises(SubmitError) as stop:
        wait([job], res=Resources(time=100000), log=lambda line: None)
    assert str(stop.value) == ("job 333 can never start (pending, reason PartitionTimeLimit): --time exceeds its "
                               "partition's time limit (MaxTime): lower --time or pick another --partition; cancel it "
                               "with: scancel 333")


def test_wait_goes_on_through_a_reason_that_a_person_resolves(tmp_path, monkeypatch):
    """PartitionNodeLimit for a request the partition's nodes hold: some are down or drained (an administrator
    brings them back). Said once; the wait goes on (here until the job ends without a result, cancelled by hand)."""
    from hpcflow.submit.executor import Resources, wait

    job, bin_dir, called = _waited_job(tmp_path, monkeypatch, sinfo=SINFO, squeue="333|PENDING||PartitionNodeLimit\n")
    said = []

    def log(line):
        said.append(line)
        if "still waiting" in line:
            (bin_dir / "squeue.out").write_text("333|CANCELLED|n1|None\n")

    assert wait([job], res=Resources(), log=log) == 1
    assert said[1:] == ["hpcflow submit: job 333 is pending (PartitionNodeLimit: the nodes that would run it are down "
                        "or drained); still waiting (scancel 333 stops it)",
                        f"hpcflow submit: job 333 ended without a result (state CANCELLED); the job never started, "
                        f"and wrote no log ({job.paths.stderr} does not exist)"]  # (cancelled while pending)
    assert not called.exists()  # not cancelled


@pytest.mark.parametrize("squeue, reason", [("333|FAILED|vm|JobLaunchFailure\n", " (reason JobLaunchFailure)"),
                                            ("333|FAILED|vm|None\n", "")], ids=["launch-failure", "failed"])
def test_wait_on_a_job_that_failed_at_launch_says_so_not_that_it_never_started(tmp_path, monkeypatch, squeue, reason):
    """A job whose batch script Slurm could not start (--logs 'pl%x': sbatch's --output in a folder that does not
    exist; squeue then shows it FAILED, reason JobLaunchFailure) writes no log; `--wait` said it never started."""
    from hpcflow.submit.executor import Resources, wait

    job, _, called = _waited_job(tmp_path, monkeypatch, sinfo=SINFO, squeue=squeue)
    said = []
    assert wait([job], res=Resources(), log=said.append) == 1
    assert said[1:] == [f"hpcflow submit: job 333 ended without a result (state FAILED); the job failed as Slurm "
                        f"launched it{reason}, before it wrote a log ({job.paths.stderr} does not exist); scontrol show "
                        "job 333 (while Slurm keeps it) or the node's slurmd log says why"], said
    assert not called.exists()


def test_the_sbatch_script_keeps_a_python_and_a_log_folder_with_spaces_one_word_each(tmp_path, monkeypatch):
    """The generated sbatch script's command line is shell text: the interpreter (a venv under "My Projects") and
    the log folder must each stay one word, and a shell character in them must not run anything."""
    import shlex

    from hpcflow.submit import executor

    _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    py = tmp_path / "My Projects" / "venv $(touch pwned); x" / "bin" / "python"
    logs = tmp_path / "runs & logs" / "out_logs"
    monkeypatch.setattr(sys, "executable", str(py))
    ex = executor.make_executor("slurm", str(logs), executor.Resources(nodes=2), name="hpcflow-run-my job")
    text = ex._make_submission_file_text(ex._submitit_command_str, "uid")
    line = next(ln for ln in text.splitlines() if ln.startswith("srun "))
    words = shlex.split(line)
    assert words[words.index("-u") - 1] == str(py), line
    assert words[-5:] == [str(py), "-u", "-m", "submitit.core._submit", str(logs)], line
    assert "#SBATCH --job-name='hpcflow-run-my job'" in text
    # the task starts with the checkpoint signals ignored, until Python sets its handlers: one in its first moments
    # ended it (test_slurm.py: a submit job signalled as its step starts)
    assert words[-9:-4] == ["bash", "-c", 'trap "" USR1 USR2; exec "$@"', "hpcflow-task", str(py)], line


def test_a_checkpoint_signal_at_or_before_the_start_is_refused_before_anything_is_written(tmp_path, job, capsys):
    """sbatch --signal sends the signal once the job is within --signal-delay of its time limit: --time 2 with the
    default 120 s is as it starts (checkpoint or requeue at every start); submitit's local executor instead never
    signals (its signal step, timeout - delay, is never reached). Slurm's signal time is a 16-bit number."""
    out = str(tmp_path / "out")
    for extra, said in ((["--time", "2"], "--signal-delay 120 (seconds) is not below --time 2 (minutes, 120 s)"),
                        (["--time", "1", "--signal-delay", "90"], "raise --time above 1 or lower --signal-delay below 60"),
                        (["--time", "2000", "--signal-delay", "65536"], "--signal-delay 65536 exceeds Slurm's largest")):
        for check in (["--check"], []):
            assert main(["submit", str(job), "--out", out, "--executor", "local", *extra, *check]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and said in err, err
    assert _only(tmp_path) == ["job.toml"]  # neither the logs folder nor the output directory
    for extra in (["--time", "2", "--signal-delay", "119"], ["--time", "2000", "--signal-delay", "65535"]):
        assert main(["submit", str(job), "--out", out, "--executor", "local", "--check", *extra]) == 0


def test_a_slurm_signal_that_can_come_as_the_job_starts_is_said(tmp_path, job, monkeypatch, capsys):
    """sbatch --signal "may be sent up to 60 seconds earlier than specified" (sbatch(1)): --time 1 --signal-delay 45
    signalled the job at once, before the run had a checkpoint to stop at. --check's line and the submission say so
    (accepted: the run may finish in time); not where the signal comes after the start at the earliest, nor for the
    local executor, which signals at --signal-delay itself."""
    called = _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    _script(tmp_path / "bin" / "sbatch", f'echo "sbatch $*" >> {called}; echo "Submitted batch job 42"')
    out = str(tmp_path / "out")
    said = ("--signal-delay {d} is within 60 s of --time {t} ({s} s), and Slurm may send its signal up to 60 s early: "
            "as the job starts, before the run has a checkpoint to stop at; raise --time")
    for t, d, fix in (("1", "45", ""), ("2", "60", " or lower --signal-delay below 60"),
                      ("3", "120", " or lower --signal-delay below 120")):
        argv = ["submit", str(job), "--out", out, "--executor", "slurm", "--time", t, "--signal-delay", d]
        assert main([*argv, "--check"]) == 0
        line = said.format(d=d, t=t, s=60 * int(t)) + fix
        assert capsys.readouterr().out.splitlines()[0].endswith(f"; {line}")  # (the #SBATCH lines follow)
        assert main(argv) == 0
        assert f"hpcflow submit: {line}\n" in capsys.readouterr().out
    assert called.read_text().count("sbatch") == 3
    for executor, t, d in (("slurm", "2", "59"), ("slurm", "3", "119"), ("slurm", "60", "120"), ("local", "1", "45")):
        assert main(["submit", str(job), "--out", out, "--executor", executor, "--time", t, "--signal-delay", d,
                     "--check"]) == 0
        assert "60 s early" not in capsys.readouterr().out


def test_a_negative_gpu_count_is_refused_before_sbatch_or_the_logs_folder(tmp_path, job, monkeypatch, capsys):
    """--gpus-per-node -1 reached sbatch as `#SBATCH --gpus-per-node=-1` (nothing to hold it: it fits every node),
    after the logs folder and its pickle were written; it is a usage error naming the option."""
    called = _stand_in_slurm(tmp_path / "bin", monkeypatch, "gpu*|8|2|gpu:4|infinite|1-infinite|UNLIMITED")
    for executor in ("slurm", "local"):
        with pytest.raises(SystemExit) as stop:
            main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", executor, "--gpus-per-node", "-1"])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1
        assert "argument --gpus-per-node: '-1' is not a whole number in [0, " in err, err
    assert not called.exists() and _only(tmp_path) == ["bin", "job.toml"]
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--check",
                 "--gpus-per-node", "0"]) == 0


@pytest.mark.parametrize("text, minutes", [("90", 90), ("1:30:00", 90), ("0-1", 60), ("0-12:30", 750),
                                           ("0-0:2:00", 2), ("5:00", 5), ("2-0", 2880), ("1-12:30", 2190)])
def test_time_limit_takes_sbatch_forms(job, tmp_path, capsys, text, minutes):
    """--time as sbatch writes it (D-H:M:S and its parts), in minutes: the signal-delay check sees the same limit."""
    out, delay = str(tmp_path / "out"), min(60 * minutes, 65536)  # (above 65535 s: Slurm's largest signal time)
    ok = main(["submit", str(job), "--out", out, "--executor", "local", "--time", text, "--signal-delay",
               str(delay - 1), "--check"])
    assert ok == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["submit", str(job), "--out", out, "--executor", "local", "--time", text, "--signal-delay",
                 str(delay), "--check"]) == 2
    err = capsys.readouterr().err
    assert (f"is not below --time {minutes} (minutes" if delay < 65536 else "exceeds Slurm's largest") in err


@pytest.mark.parametrize("text", ["0", "0:00:00", "1:30", "abc", "1:2:3:4", "-5", "infinite", ""])
def test_time_limit_not_whole_minutes_is_one_line_exit_2(job, tmp_path, capsys, text):
    with pytest.raises(SystemExit) as e:
        main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--time", text, "--check"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--time" in err and "whole minutes" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("opt, value", [("--partition", "debug\nrm -rf x"), ("--partition", "a;b"),
                                        ("--partition", "a,"), ("--mpi", "pmi2 --x"), ("--mpi", "pmix$(id)")])
def test_names_written_into_the_sbatch_script_are_slurm_names(job, tmp_path, monkeypatch, capsys, opt, value):
    """A partition or --mpi value is a Slurm name: shell text (a newline leaves submitit's quoted #SBATCH line) is
    refused in one line, exit 2, before anything is written."""
    out = tmp_path / "out"
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", opt, value, "--check"]) == 2
    err = capsys.readouterr().err
    assert f"{opt} " in err and "not a Slurm name" in err and err.count("\n") == 1
    assert not out.exists()
    _stand_in_slurm(tmp_path / "bin", monkeypatch, "", 1)  # Slurm names accepted, whether or not a Slurm answers here
    assert main(["submit", str(job), "--out", str(out), "--executor", "slurm", "--partition", "gpu-a100,batch_2",
                 "--mpi", "cray_shasta", "--check"]) == 0  # (not a PMIx type: refused with the mpich wheel)


#: `srun --mpi=list` in Slurm's two forms (hpcflow.submit.mpi_types): printf on stdout, as Slurm 22.05 prints it (its
#: plugrack_print_mpi_plugins: the pmix versions comma-joined on the last line), and srun's log on stderr
#: (plugrack_print_all_plugin: info() lines, types named after their mpi_*.so files or, older, as full types mpi/X).
#: The types are the mpi_*.so files in Slurm's PluginDir: a site without mpi_pmi2.so lists no pmi2.
SLURM_22_05 = ("MPI plugin types are...\n\tpmix\n\tnone\n\tcray_shasta\n\tpmi2\n"
               "specific pmix plugin versions available: pmix_v4\n")
PRINTF_NO_PMI2 = ("MPI plugin types are...\n\tnone\n\tcray_shasta\n\tpmix\n"
                  "specific pmix plugin versions available: pmix_v3,pmix_v4\n")
LOG_NO_PMI2 = "srun: MPI types are...\nsrun: none\nsrun: pmix\nsrun: pmix_v3\n"
LOG_FULL_TYPES = "srun: MPI types are...\nsrun: mpi/none\nsrun: mpi/openmpi\nsrun: mpi/pmi2\n"


@pytest.mark.parametrize("text, types", [
    (SLURM_22_05, ["pmix", "none", "cray_shasta", "pmi2", "pmix_v4"]),
    (PRINTF_NO_PMI2, ["none", "cray_shasta", "pmix", "pmix_v3", "pmix_v4"]),
    (LOG_NO_PMI2, ["none", "pmix", "pmix_v3"]),
    (LOG_FULL_TYPES, ["none", "openmpi", "pmi2"]),
    ("srun: debug: a note first\n" + SLURM_22_05 + "srun: error: a warning after\n",
     ["pmix", "none", "cray_shasta", "pmi2", "pmix_v4"]),
    ("", None), ("srun: error: Unable to contact slurm controller\n", None),  # no list: the name is all that is checked
    ("Usage: srun [OPTIONS(0)... [executable(0) [args(0)...]]]\n", None), ("MPI plugin types are...\n", None),
], ids=["slurm-22.05", "printf", "log", "log-full-types", "log-lines-around", "empty", "error", "usage", "no-types"])
def test_sruns_mpi_list_is_read_in_both_of_slurms_forms(text, types):
    from hpcflow.submit.mpi_types import read_types

    assert read_types(text) == types


@pytest.mark.parametrize("listing, stream, types", [(PRINTF_NO_PMI2, 1, "none, cray_shasta, pmix, pmix_v3, pmix_v4"),
                                                    (LOG_NO_PMI2, 2, "none, pmix, pmix_v3")],
                         ids=["printf-stdout", "log-stderr"])
def test_an_mpi_type_this_srun_lacks_is_refused_before_anything_is_written(tmp_path, job, monkeypatch, capsys,
                                                                          listing, stream, types):
    """--mpi pmi2 where srun lists no pmi2: refused in one line naming --mpi, the value and srun's types, with and
    without --check, before sbatch or any folder; the default pmi2 only where srun gets it (several tasks)."""
    from standin_srun import stand_in_srun

    from hpcflow.submit import mpi_types

    called = _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    stand_in_srun(tmp_path / "bin", tmp_path / "bin" / "srun_options", listing, stream)
    out = str(tmp_path / "out")
    for options in (["--mpi", "pmi2"], ["--mpi", "pmi2", "--check"], ["--ntasks-per-node", "2", "--check"],
                    ["--mpi", "pmi", "--nodes", "2", "--wait"]):
        assert main(["submit", str(job), "--out", out, "--executor", "slurm", *options]) == 2
        err = capsys.readouterr().err
        mpi = options[options.index("--mpi") + 1] if "--mpi" in options else "pmi2"
        assert err == (f"hpcflow submit: error: --mpi {mpi}: not an MPI type of this cluster's srun, which offers "
                       f"{types} (srun --mpi=list); pass --mpi with one of them\n")
    assert not called.exists() and _only(tmp_path) == ["bin", "job.toml"]  # no sbatch, no --out, no logs
    monkeypatch.setattr(mpi_types, "wheel_library", lambda: None)  # (an MPI with PMIx, not the mpich wheel's)
    for options in ([], ["--mpi", "pmix_v3", "--ntasks-per-node", "2"], ["--mpi", "none"]):
        assert main(["submit", str(job), "--out", out, "--executor", "slurm", "--check", *options]) == 0
    assert main(["submit", str(job), "--out", out, "--executor", "local", "--check"]) == 0
    capsys.readouterr()
    assert main(["submit", str(job), "--out", out, "--executor", "local", "--mpi", "pmi2", "--check"]) == 2
    assert "--mpi: Slurm's request, which --executor local does not make" in capsys.readouterr().err  # (not srun's)
    assert set((tmp_path / "bin" / "srun_options").read_text().splitlines()) == {"--mpi=list"}  # it ran nothing


def _mapped_libmpi() -> str:
    """The MPI library file that `from mpi4py import MPI` maps into a python (without MPI_Init), links resolved."""
    code = ("from mpi4py import MPI\nimport os\n"
            "print(next(os.path.realpath(l.split(maxsplit=5)[-1].strip()) for l in open('/proc/self/maps') if '/libmpi' in l))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, MPI4PY_RC_INITIALIZE="false"))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_pmix_is_refused_where_mpi4py_loads_the_mpich_wheel(tmp_path, job, monkeypatch, capsys):
    """--mpi pmix passed every check (srun offers it), and the job's tasks failed at launch: the mpich wheel speaks
    PMI-1/PMI-2 only. Refused in one line naming --mpi pmi2 where the library mpi4py maps is one of the wheel's files
    (make venv's); not for another MPI library."""
    from importlib import metadata

    from standin_srun import stand_in_srun

    from hpcflow.submit import mpi_types

    called = _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    stand_in_srun(tmp_path / "bin", tmp_path / "bin" / "srun_options", SLURM_22_05, 1)  # pmix offered
    try:
        wheel = {os.path.realpath(metadata.distribution("mpich").locate_file(f))
                 for f in metadata.distribution("mpich").files or ()}
    except metadata.PackageNotFoundError:
        wheel = set()
    mapped = _mapped_libmpi()
    argv = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--ntasks-per-node", "2"]
    for mpi, check in (("pmix", ["--check"]), ("pmix_v4", [])):
        capsys.readouterr()
        if mapped not in wheel:  # (mpi4py installed against another MPI: not refused for it)
            assert main([*argv, "--mpi", mpi, "--check"]) == 0, capsys.readouterr().err
            continue
        assert main([*argv, "--mpi", mpi, *check]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--mpi {mpi}: mpi4py loads the MPI library of the mpich wheel" in err, err
        assert "pass --mpi pmi2" in err and os.path.basename(mapped) in err, err
    assert not called.exists() and _only(tmp_path) == ["bin", "job.toml"]
    assert main([*argv, "--mpi", "pmi2", "--check"]) == 0, capsys.readouterr().err
    monkeypatch.setattr(mpi_types, "loaded_library", lambda: "/opt/openmpi/lib/libmpi.so.40")  # another MPI's
    assert main([*argv, "--mpi", "pmix", "--check"]) == 0, capsys.readouterr().err


def test_pmix_is_not_refused_for_a_job_of_one_task_whose_srun_gets_no_mpi_type(tmp_path, job, monkeypatch, capsys):
    """A job of one task is started by srun without --mpi: the mpich wheel's lack of PMIx does not matter to it (it
    was refused all the same); a job of two tasks still is."""
    from standin_srun import stand_in_srun

    from hpcflow.submit import mpi_types

    _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    stand_in_srun(tmp_path / "bin", tmp_path / "bin" / "srun_options", SLURM_22_05, 1)  # pmix offered
    monkeypatch.setattr(mpi_types, "wheel_library", lambda: "/venv/lib/libmpi.so.12")  # (as if the wheel's)
    argv = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--mpi", "pmix", "--check"]
    assert main(argv) == 0, capsys.readouterr().err
    assert main([*argv, "--ntasks-per-node", "1", "--nodes", "1"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main([*argv, "--nodes", "2"]) == 2
    assert "--mpi pmix: mpi4py loads the MPI library of the mpich wheel" in capsys.readouterr().err


def test_pmix_is_not_refused_where_mpi4py_libmpi_names_a_library_outside_the_wheel(tmp_path, job, monkeypatch,
                                                                                   capsys):
    """MPI4PY_LIBMPI (mpi4py's way to name the cluster's MPI) pointing at a library outside the mpich wheel: mpi4py
    loads that one, and --mpi pmix is not refused (it was: the check found the wheel's library regardless)."""
    from standin_srun import stand_in_srun

    from hpcflow.submit import mpi_types

    _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    stand_in_srun(tmp_path / "bin", tmp_path / "bin" / "srun_options", SLURM_22_05, 1)  # pmix offered
    wheel = _mapped_libmpi()
    copy = tmp_path / "cluster mpi" / os.path.basename(wheel)
    copy.parent.mkdir()
    shutil.copy2(wheel, copy)
    for entry in os.listdir(os.path.dirname(wheel)):  # (what it links to, found through its $ORIGIN runpath)
        if not entry.startswith("libmpi"):
            os.symlink(os.path.join(os.path.dirname(wheel), entry), copy.parent / entry)
    monkeypatch.setenv("MPI4PY_LIBMPI", str(copy))
    assert _mapped_libmpi() == str(copy)  # (mpi4py maps the copy)
    assert mpi_types.loaded_library() == str(copy) and mpi_types.wheel_library() is None
    argv = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--ntasks-per-node", "2"]
    assert main([*argv, "--mpi", "pmix", "--check"]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("options, tasks", [(["--ntasks-per-node", "2"], "2 tasks (--nodes 1 x --ntasks-per-node 2)"),
                                           (["--nodes", "2"], "2 tasks (--nodes 2 x --ntasks-per-node 1)"),
                                           (["--gpus-per-node", "2"], "2 tasks (--nodes 1 x --ntasks-per-node 2)")])
@pytest.mark.parametrize("check", [[], ["--check"]])
def test_mpi_none_for_several_tasks_is_refused_before_anything_is_queued(tmp_path, job, monkeypatch, capsys, options,
                                                                         tasks, check):
    """srun without a PMI starts each task as an MPI world of one rank: both refused to run inside Slurm ("the
    launcher started 2 tasks but each sees an MPI world of size 1"), after --check and sbatch had accepted the job."""
    called = _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|gpu:2|infinite|1-infinite|UNLIMITED")
    argv = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--mpi", "none", *options,
            *check]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--mpi none starts each of the job's {tasks} as an MPI world of one rank" in err
    assert "drop --mpi (default pmi2)" in err and "--ntasks-per-node 1" in err, err
    assert not called.exists() and _only(tmp_path) == ["bin", "job.toml"]  # no sbatch, no --out, no logs


def test_the_mpi_name_alone_is_checked_where_sruns_list_cannot_be_had(tmp_path, job, monkeypatch, capsys):
    """srun printing no list, or not answering in time: --mpi is checked as a name only, without delay."""
    import time

    from hpcflow.submit import mpi_types

    bin_dir = tmp_path / "bin"
    _stand_in_slurm(bin_dir, monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    monkeypatch.setattr(mpi_types, "TIMEOUT_S", 1)
    argv = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--mpi", "nosuchtype",
            "--ntasks-per-node", "2", "--check"]
    for srun in ("echo 'srun: error: Unable to contact slurm controller' >&2; exit 1", "exec sleep 30"):
        _script(bin_dir / "srun", srun)  # (srun missing: refused with sbatch's, test_slurm_executor_without_slurm...)
        t0 = time.monotonic()
        assert main(argv) == 0, capsys.readouterr().err
        assert time.monotonic() - t0 < 10
    assert main([*argv, "--mpi", "pmi2 x"]) == 2  # the name is still checked
    assert "not a Slurm name" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["run", "tune"])
@pytest.mark.parametrize("where", ["/proc/hpcflow-out", "file", "file/sub", ""])
def test_an_out_that_cannot_be_a_directory_is_refused_before_anything_is_queued(tmp_path, job, capsys, command,
                                                                               where):
    """--out under /proc, a file, below a file or empty: refused as the command itself refuses it (one line naming
    --out, exit 2), by --check too, before the logs folder is made. --check said such a job was valid; an empty
    --out became the working directory."""
    (tmp_path / "file").write_text("")
    tune = tmp_path / "tune.toml"
    tune.write_text(JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n')
    out = where if where.startswith("/") or not where else str(tmp_path / where)
    extra = ["--command", "tune", "--trials", "2"] if command == "tune" else []
    for check in (["--check"], []):
        assert main(["submit", str(tune), "--out", out, "--executor", "local", *extra, *check]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1 and "--out" in captured.err, captured
    assert _only(tmp_path) == ["file", "job.toml", "tune.toml"]


@pytest.mark.parametrize("executor", ["local", "slurm"])
@pytest.mark.parametrize("logs, said", [("/proc/hpcflow-logs", "--logs /proc/hpcflow-logs lies under /proc"),
                                        ("file", "--logs {tmp}/file exists and is not a directory"),
                                        ("file/sub", "cannot create --logs {tmp}/file/sub: {tmp}/file is not a dir"),
                                        ("", "--logs is empty"),
                                        (None, "--logs {tmp}/out_logs exists and is not a directory; choose another "
                                               "--logs (not given: --logs defaults to --out followed by _logs)"),
                                        ("out", "--logs {tmp}/out is --out {tmp}/out: the job's logs, written as it "
                                                "starts, would make --out not empty; choose a --logs folder outside"),
                                        ("out/logs", "--logs {tmp}/out/logs lies inside --out {tmp}/out: the job's "),
                                        ("bin/../out", "--logs {tmp}/bin/../out is --out {tmp}/out"),
                                        ("pl%x", "--logs {tmp}/pl%x holds '%', which submitit and Slurm replace")],
                         ids=["proc", "file", "below-a-file", "empty", "default-a-file", "out", "inside-out",
                              "out-by-another-name", "percent"])
def test_a_logs_folder_that_cannot_be_one_is_refused_before_anything_is_queued(tmp_path, job, monkeypatch, capsys,
                                                                              executor, logs, said):
    """--logs (or, not given, DIR_logs beside --out) under /proc, a file, below a file or empty: refused as --out is,
    one line naming --logs, exit 2, by --check too, nothing written or queued. submitit made the folder after the
    checks: its traceback (exit 1), and --check called the submission valid. --logs that is --out or inside it is
    refused too: the logs made --out not empty and the command refused it as the job started."""
    called = _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    (tmp_path / "file").write_text("")
    if logs is None:
        (tmp_path / "out_logs").write_text("")
    given = [] if logs is None else ["--logs", logs if logs.startswith("/") or not logs else str(tmp_path / logs)]
    for check in (["--check"], []):
        assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", executor, *given,
                     *check]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured
        assert said.format(tmp=tmp_path) in captured.err, captured.err
    assert not called.exists()
    assert _only(tmp_path) == ["bin", "file", "job.toml", *(["out_logs"] if logs is None else [])]
    assert (tmp_path / "file").read_text() == ""


def test_logs_inside_an_existing_out_through_a_link_is_refused(tmp_path, job, capsys):
    """--logs inside an existing --out by way of a symbolic link: refused, with --force too, nothing written there."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "link").symlink_to(out)
    for extra in ([], ["--force"]):
        assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--logs", str(tmp_path / "link" / "l"),
                     "--check", *extra]) == 2
        err = capsys.readouterr().err
        assert f"--logs {tmp_path}/link/l lies inside --out {out}" in err and err.count("\n") == 1, err
    assert not any(out.iterdir())


@pytest.mark.parametrize("command", ["run", "nn"])
@pytest.mark.parametrize("option", [["--trials", "3"], ["--sampler", "tpe"], ["--study", "s"], ["--storage", "s.db"],
                                    ["--storage", ""]])
def test_tune_options_without_command_tune_are_refused_as_array_is(tmp_path, capsys, command, option):
    """--trials, --sampler, --study and --storage only reach `hpcflow tune`: with run or nn they were accepted and
    dropped from the queued command line (as --array is refused: one line naming the option, exit 2), --check too."""
    job = ROOT / "jobs" / ("nn_smoke.toml" if command == "nn" else "quickstart.toml")
    for check in (["--check"], []):
        assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--command", command,
                     *option, *check]) == 2
        err = capsys.readouterr().err
        said = f"{' '.join(filter(None, option))} is an option of --command tune, not of --command {command}; drop it or " \
            "use it with --command tune"
        assert err.count("\n") == 1 and said in err, err
    assert _only(tmp_path) == []


def test_force_with_command_tune_is_refused(tmp_path, capsys):
    """`hpcflow tune` has no --force (it adds trials to the study in --out): submit dropped it from the command line."""
    tune = tmp_path / "tune.toml"
    tune.write_text(JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n')
    for check in (["--check"], []):
        assert main(["submit", str(tune), "--out", str(tmp_path / "out"), "--executor", "local", "--command", "tune",
                     "--trials", "2", "--force", *check]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--force is an option of --command run and nn" in err, err
    assert _only(tmp_path) == ["tune.toml"]


def test_check_of_tune_workers_says_how_they_share_the_trials(tmp_path, capsys):
    """--check shows the first worker's command line: with --array 3 it says how the 7 trials are shared."""
    tune = tmp_path / "tune.toml"
    tune.write_text(JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n')
    argv = ["submit", str(tune), "--out", str(tmp_path / "s"), "--executor", "local", "--command", "tune",
            "--trials", "7", "--check"]
    assert main([*argv, "--array", "3"]) == 0
    said = capsys.readouterr().out
    assert "--trials 3" in said and said.rstrip().endswith("the 3 workers share --trials 7 as --trials 3, 2, 2")
    assert main(argv) == 0
    assert "share" not in capsys.readouterr().out  # one worker: its line says it all
    assert _only(tmp_path) == ["tune.toml"]


@pytest.mark.parametrize("kind", ["slurm", "local"])
def test_time_limit_requeues_are_not_capped(tmp_path, monkeypatch, kind):
    """Each time-limit signal requeues the job with --resume, however many legs it takes: submitit counts them down
    from the executor's max_num_timeout (its default 3 ended the 4th leg's signal in 'timed-out too many times',
    exit 1, no result). The countdown submitit gives a submitted job stays above 0 after 1000 legs."""
    import submitit
    from submitit.core.utils import DelayedSubmission

    from hpcflow.submit import executor
    from hpcflow.submit.task import HpcflowTask

    monkeypatch.setattr(executor, "require_slurm", lambda: None)  # (no Slurm needed to build the executor)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    ex = executor.make_executor(kind, str(tmp_path), executor.Resources(time=5), name="hpcflow-run-x")
    delayed = DelayedSubmission(HpcflowTask(), ["run", "job.toml", "--out", "o"])
    delayed.set_timeout(5, ex.max_num_timeout)  # what submitit does as it submits
    assert delayed._timeout_countdown - 1000 >= 0


@pytest.mark.parametrize("queue, going", [("333|RUNNING|vm|None\n", True), ("", False)])
def test_a_stop_while_waiting_for_a_slurm_job_says_one_line_and_no_sacct_noise(tmp_path, monkeypatch, capfd, queue,
                                                                              going):
    """Ctrl-C during `submit --executor slurm --wait` on a Slurm without accounting: one line says that the running job
    goes on and how to stop it. submitit's sacct watcher, asked there, printed sacct's error ('Slurm accounting storage
    is disabled') and twice its 'Bypassing sacct error' warning; a job squeue no longer knows has ended: no line."""
    from hpcflow.commands.submit import _stop_waiting

    job, _, _ = _waited_job(tmp_path, monkeypatch, sinfo=SINFO, squeue=queue)
    _stop_waiting([job], KeyboardInterrupt(), {})
    out, err = capfd.readouterr()
    said = ("hpcflow submit: interrupted: the wait ends; slurm job 333 goes on (scancel 333 stops it)\n"
            if going else "")
    assert out == "" and err == said, out + err


@pytest.mark.parametrize("states, said", [
    (["RUNNING|vm|None", "PENDING||BeginTime", "PENDING||BeginTime", "RUNNING|vm|None", "PENDING||BeginTime",
      "RUNNING|vm|None"], 2),  # two requeues (time-limit legs): said once each
    (["PENDING||BeginTime", "PENDING||BeginTime", "RUNNING|vm|None"], 0),  # sbatch --begin: held before it first ran
    (["RUNNING|vm|None", "PENDING||Priority", "RUNNING|vm|None"], 0),  # requeued, not held: nothing to say
])
def test_wait_says_once_a_leg_that_a_requeued_job_is_held_until_its_begin_time(tmp_path, monkeypatch, states, said):
    """Slurm holds every requeued job ~2 minutes (BeginTime): a job of many time-limit legs spends minutes pending
    per leg, and --wait said nothing meanwhile. It says so once per requeue seen, and nothing of a job that is held
    before it first ran."""
    from hpcflow.submit.executor import QueueWatcher, wait

    job, bin_dir, _ = _waited_job(tmp_path, monkeypatch, sinfo=SINFO, squeue="")
    (bin_dir / "states").write_text("".join(f"333|{s}\n" for s in states))
    _script(bin_dir / "squeue", f'n=$(($(cat {bin_dir}/n 2>/dev/null || echo 0) + 1)); echo $n > {bin_dir}/n; '
                                f'sed -n "${{n}}p" {bin_dir}/states')  # one state an ask; then none: ended
    monkeypatch.setattr(QueueWatcher, "update_if_long_enough", lambda self, mode: mode == "cache" or self.update())
    lines = []
    assert wait([job], log=lines.append) == 1  # (no result file: 'ended without a result')
    held = [line for line in lines if "pending until its begin time" in line]
    assert held == said * ["hpcflow submit: job 333 was requeued and is pending until its begin time (reason "
                           "BeginTime: Slurm holds a requeued job about 2 minutes before it starts again); still "
                           "waiting"], lines
    assert int((bin_dir / "n").read_text()) > len(states)  # every state was asked


class _Clock:
    """A clock for the wait (time.time, time.sleep, time.monotonic in `hpcflow.submit.executor` and submitit's
    watcher) whose sleep moves it on at once and plays a Slurm job's legs: `legs` legs of `run_s` seconds running,
    each but the last requeued by its task 0 (which touches the job's mark of a leg's end, `task._mark_requeue`, as
    it has submitit requeue the job) and held `held_s` seconds pending (reason BeginTime), the next leg's task 0
    removing the mark as it starts; after the last, the job is gone from squeue. The state is what the stand-in
    squeue prints (bin/state)."""

    def __init__(self, job, bin_dir: Path, *, legs: int, run_s: float, held_s: float) -> None:
        from hpcflow.submit.executor import ended_file

        self.now, self.mark, self.state = 1.0e9, Path(ended_file(job)), bin_dir / "state"
        self.start, self.legs, self.run_s, self.held_s = self.now, legs, run_s, held_s
        self.seen = None
        self._play()

    def time(self) -> float:
        return self.now

    monotonic = time

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self._play()

    def _play(self) -> None:
        t = self.now - self.start
        leg, into = divmod(t, self.run_s + self.held_s)
        if leg >= self.legs - 1 and into >= self.run_s:  # the last leg has ended
            seen = ("ended", leg)
        else:
            seen = ("running" if into < self.run_s else "held", leg)
        if seen == self.seen:
            return
        self.seen = seen
        if seen[0] == "running":
            self.mark.unlink(missing_ok=True)  # (the leg's task 0, as it starts: `task._forget_ended_mark`)
            self.state.write_text("333|RUNNING|vm|None\n")
        else:
            self.mark.touch()  # (task 0 as it requeues the job; the batch shell as the last leg ends)
            os.utime(self.mark, (self.now, self.now))
            self.state.write_text("333|PENDING||BeginTime\n" if seen[0] == "held" else "")


def test_wait_says_the_hold_of_every_leg_of_a_long_wait(tmp_path, monkeypatch):
    """A job of five time-limit legs (4 minutes each, Slurm's hold of ~2 minutes after each requeue): --wait said
    'pending until its begin time' for one of the four holds: it asked Slurm at its own pace, backing off to every 10
    minutes, and a hold between two asks, or a leg it never saw running, was not said. The mark that task 0 touches
    as it requeues the job has it ask every few seconds through the hold, and counts as the leg having run."""
    import submitit.core.core

    import hpcflow.submit.executor as executor

    job, bin_dir, _ = _waited_job(tmp_path, monkeypatch, sinfo=SINFO, squeue="")
    _script(bin_dir / "squeue", f'echo x >> {bin_dir}/asked; cat {bin_dir}/state')
    clock = _Clock(job, bin_dir, legs=5, run_s=240, held_s=120)
    monkeypatch.setattr(executor, "time", clock)
    monkeypatch.setattr(submitit.core.core, "_time", clock)
    monkeypatch.setattr(executor, "POLL_S", 1.0)
    lines = []
    assert executor.wait([job], log=lines.append) == 1  # (no result file: 'ended without a result')
    held = [line for line in lines if "pending until its begin time" in line]
    assert held == 4 * ["hpcflow submit: job 333 was requeued and is pending until its begin time (reason "
                        "BeginTime: Slurm holds a requeued job about 2 minutes before it starts again); still "
                        "waiting"], lines
    asked = len((bin_dir / "asked").read_text().split())
    assert asked < 100, asked  # (not every second: ~15 asks a hold, a few at the watcher's pace between)


def test_a_stop_while_waiting_for_many_slurm_jobs_asks_slurm_once(tmp_path, monkeypatch, capfd):
    """Ctrl-C during the wait of a tune array of 6 workers: one ask of sacct and one of squeue cover every job (each
    job's first look registered it alone with a fresh watcher, which asked Slurm again: 6 squeue calls, each with its
    60 s timeout, before the one line)."""
    from submitit.slurm.slurm import SlurmJob

    from hpcflow.commands.submit import _stop_waiting

    job, bin_dir, _ = _waited_job(tmp_path, monkeypatch, sinfo=SINFO, squeue="")
    _script(bin_dir / "squeue", f'echo x >> {bin_dir}/squeue.calls; '
                                + "".join(f"echo '333_{i}|RUNNING|vm|None'; " for i in range(6)))
    jobs = [SlurmJob(folder=tmp_path / "logs", job_id=f"333_{i}") for i in range(6)]
    _stop_waiting(jobs, KeyboardInterrupt(), {})
    out, err = capfd.readouterr()
    assert err.count("goes on") == 1 and "333_5" in err, err
    assert (bin_dir / "squeue.calls").read_text() == "x\n"


def _check_and_script(argv, bin_dir, capsys) -> tuple:
    """`hpcflow submit ARGV --check`, then the submission itself (a stand-in sbatch keeps its script): (the #SBATCH
    options --check said, the srun options it said, the #SBATCH options of the script, its srun line's words)."""
    import shlex

    _script(bin_dir / "sbatch", f'cp "$1" {bin_dir}/script; echo "Submitted batch job 4242"')
    assert main([*argv, "--check"]) == 0
    line = capsys.readouterr().out
    assert line.count("\n") == 2, line
    asked = line.splitlines()[1]
    assert asked.startswith("hpcflow submit:   #SBATCH "), line
    flags, _, srun = asked.split("#SBATCH ", 1)[1].partition("; srun ")
    assert main(argv) == 0
    script = (bin_dir / "script").read_text().splitlines()
    held = [shlex.split(x)[1] for x in script if x.startswith("#SBATCH ")]
    ran = shlex.split(next(x for x in script if x.startswith("srun ")))
    return shlex.split(flags), srun.split(), held, ran


def test_check_says_the_sbatch_lines_and_srun_options_that_the_submission_writes(tmp_path, job, monkeypatch, capsys):
    """--check said only nodes x tasks and the partition; it says every #SBATCH option of the sbatch script that the
    submission queues (the time limit, CPUs per task, memory, GPUs and signal the job asks for, its nodes and tasks,
    name, logs, comment), as the script holds them, and srun's MPI type."""
    bin_dir = tmp_path / "bin"
    _stand_in_slurm(bin_dir, monkeypatch, "debug*|8|1|gpu:2|infinite|1-infinite|UNLIMITED|8000")
    argv = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--ntasks-per-node", "2",
            "--gpus-per-node", "2", "--cpus-per-task", "3", "--time", "1:30:00", "--mem", "3G", "--signal-delay", "90",
            "--logs", str(tmp_path / "my logs")]
    flags, srun, held, ran = _check_and_script(argv, bin_dir, capsys)
    assert {"--cpus-per-task=3", "--gpus-per-node=2", "--mem=3072M", "--signal=USR2@90", "--time=90", "--nodes=1",
            "--ntasks-per-node=2", "--job-name=hpcflow-run-job"} <= set(flags), flags
    assert f"--output={tmp_path}/my logs/%j_0_log.out" in flags, flags  # (one option: a path with a space)
    assert flags == held, (flags, held)  # every option of the script, and in its order
    assert "--mpi=pmi2" in srun and all(option in ran for option in srun), (srun, ran)


def test_check_says_the_array_of_a_tune_and_the_rest_of_its_sbatch_lines(tmp_path, monkeypatch, capsys):
    """`--command tune --array 2 --check` said `#SBATCH --cpus-per-task=1 --signal=USR2@120 --time=10`, and the
    script queued holds --array (the workers), --nodes, --ntasks-per-node, --open-mode, the job's name and logs,
    --wckey too: --check says each of them."""
    job = tmp_path / "tiny.toml"
    job.write_text(JOB + '[tune]\nsampler = "random"\n[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n')
    bin_dir = tmp_path / "bin"
    _stand_in_slurm(bin_dir, monkeypatch, SINFO)
    argv = ["submit", str(job), "--out", str(tmp_path / "study"), "--executor", "slurm", "--command", "tune",
            "--trials", "6", "--array", "2", "--time", "10"]
    flags, srun, held, _ = _check_and_script(argv, bin_dir, capsys)
    assert "--array=0-1%2" in flags and "--job-name=hpcflow-tune-tiny" in flags, flags
    assert flags == held and srun == [], (flags, held, srun)
