"""How many trials a tune worker adds: a requeued Slurm job continues its own --trials count, and --max-trials
caps the whole study however many workers share it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpcflow.tune.budget import OVER_CAP, counted, finished, room, within_cap
from hpcflow.tune.study import optimize
from test_tune_records import JOB, _job, _journal  # tests/ is on sys.path (pytest's default import mode)

ROOT = Path(__file__).resolve().parents[1]
DIST = {"flow.dt": optuna.distributions.FloatDistribution(0.01, 3.0, log=True)}


def _env(**slurm):
    """This environment without any SLURM_* variable, plus `slurm`; unbuffered so that trial lines arrive live."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return dict(env, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", HPCFLOW_THREADS="1",
                PYTHONUNBUFFERED="1", **slurm)


def _tune_cmd(job, out, *args):
    return [sys.executable, "-m", "hpcflow", "tune", str(job), "--out", str(out), *map(str, args)]


def _finished_by(trials, job):
    return [t for t in trials if t.user_attrs.get("slurm_job") == job and finished(t)]


def test_a_requeued_slurm_worker_adds_only_the_trials_it_has_not_finished(tmp_path, monkeypatch):
    """A worker of array task 4240_2 is stopped by SIGTERM after its second trial (a Slurm preemption); its requeue
    (same job, SLURM_RESTART_COUNT=1, same command) ends the count at --trials 4, its preempted trial's parameters
    run again; a requeue that finds the count reached adds nothing; a run at SLURM_RESTART_COUNT 0 (by hand in the
    same allocation) or without Slurm adds --trials."""
    job, out = _job(tmp_path, JOB.replace("steps = 3", "steps = 8")), tmp_path / "s"
    array = {"SLURM_JOB_ID": "4242", "SLURM_ARRAY_JOB_ID": "4240", "SLURM_ARRAY_TASK_ID": "2"}
    first = subprocess.Popen(_tune_cmd(job, out, "--trials", 4), env=_env(**array), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    lines = []
    for line in first.stdout:
        lines.append(line)
        if line.startswith("hpcflow tune: trial 1 "):
            first.send_signal(signal.SIGTERM)
            break
    rest, err = first.communicate(timeout=120)
    assert first.returncode == 4, "".join(lines) + rest + err  # stopped mid-study, as Slurm's notice does
    before = _journal(out / "study.journal").trials
    done = sum(finished(t) for t in before)
    assert 2 <= done < 4

    again = subprocess.run(_tune_cmd(job, out, "--trials", 4), env=_env(**array, SLURM_RESTART_COUNT="1"),
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    trials = _journal(out / "study.journal").trials
    assert sum(finished(t) for t in trials) == 4  # the study holds the 4 trials asked for, not 4 + done
    assert f"finished {done} of its --trials 4 before it was requeued; adding {4 - done}" in again.stdout
    mine = _finished_by(trials, "4240_2")
    assert len(mine) == 4 and len(_finished_by(before, "4240_2")) == done
    assert [t.user_attrs["slurm_restart"] for t in mine].count(1) == 4 - done
    assert not [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]  # a preempted retry ran

    lines = []
    for k, v in {**array, "SLURM_RESTART_COUNT": "2"}.items():
        monkeypatch.setenv(k, v)
    assert optimize(str(job), trials=4, out=str(out), log=lines.append)["ran"] == 0  # requeued once more: none
    assert "finished 4 of its --trials 4 before it was requeued; nothing to add" in lines[0]
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")  # run by hand inside the same allocation: --trials
    assert optimize(str(job), trials=1, out=str(out), log=lambda *_: None)["ran"] == 1
    for k in [*array, "SLURM_RESTART_COUNT"]:
        monkeypatch.delenv(k)
    assert optimize(str(job), trials=2, out=str(out), log=lambda *_: None)["ran"] == 2  # no Slurm: --trials
    assert len(_journal(out / "study.journal").trials) == len(trials) + 3


def test_a_requeued_worker_fails_its_earlier_runs_trial_at_once_and_does_not_count_it(tmp_path, monkeypatch):
    """Trial 1 left RUNNING by run 0 of job 77 on another node (killed without notice), its heartbeat still fresh:
    only run 1 of job 77 knows it is gone; it fails it and queues it again, and does not count it as finished."""
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 1'))
    out = tmp_path / "s"
    for k in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    import time

    t = _journal(out / "study.journal").ask(DIST)
    for key, value in (("host", "another-node"), ("pid", 1), ("slurm_job", "77"), ("slurm_restart", 0),
                       ("heartbeat", time.time())):
        t.set_user_attr(key, value)
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)  # another worker (job 77, run 0): alive
    assert _journal(out / "study.journal").trials[1].state == TrialState.RUNNING
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    r = optimize(str(job), trials=3, out=str(out), log=lambda *_: None)  # run 0 finished trials 0 and 2
    trials = _journal(out / "study.journal").trials
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["failure"] == \
        "worker gone (Slurm job 77 was requeued)"
    assert r["ran"] == 1 and len(trials) == 4  # the third: trial 1's parameters again
    assert trials[3].state == TrialState.COMPLETE and trials[3].user_attrs["retry_of"] == 1
    assert trials[3].params == trials[1].params and trials[3].user_attrs["slurm_restart"] == 1
    monkeypatch.setenv("SLURM_RESTART_COUNT", "x")
    with pytest.raises(Exception, match="SLURM_RESTART_COUNT='x' must be a whole number"):
        optimize(str(job), trials=1, out=str(out), log=lambda *_: None)


@pytest.mark.parametrize("text", ["x", "-1", "1.0", "\u00b2", "\u0663"])
def test_a_restart_count_that_is_not_ascii_digits_is_refused_in_one_line(text):
    """SLURM_RESTART_COUNT: digits only (a superscript two passed str.isdigit and int() raised a traceback)."""
    from hpcflow.errors import ConfigError
    from hpcflow.tune.storage import slurm_worker

    assert slurm_worker({"SLURM_JOB_ID": "5", "SLURM_RESTART_COUNT": "3"}) == ("5", 3)
    with pytest.raises(ConfigError, match="^SLURM_RESTART_COUNT=.* must be a whole number"):
        slurm_worker({"SLURM_JOB_ID": "5", "SLURM_RESTART_COUNT": text})


def _study_of(states_and_attrs):
    """An in-memory study with trials of the given (state, user_attrs) in number order."""
    study = optuna.create_study()
    for state, attrs in states_and_attrs:
        kw = {"value": 1.0} if state == TrialState.COMPLETE else {}
        study.add_trial(optuna.trial.create_trial(state=state, params={"flow.dt": 1.0}, distributions=DIST,
                                                  user_attrs=attrs, **kw))
    return study.get_trials(deepcopy=False)


def test_what_counts_toward_max_trials():
    C, P, F, R, W = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING)
    trials = _study_of([
        (C, {}),                                        # 0 counts
        (F, {}),                                        # 1 failed by its own error, no retry: counts
        (F, {"failure": "preempted"}),                  # 2 retried by 5: does not count
        (P, {}),                                        # 3 counts
        (F, {"failure": f"{OVER_CAP} 6 (...)"}),        # 4 drawn over the cap: never counts
        (R, {"retry_of": 2}),                           # 5 counts (in 2's place)
        (F, {"attempt": 1}),                            # 6 retried by 7: does not count
        (W, {"retry_of": 6}),                           # 7 queued: counts
    ])
    assert counted(trials) == [0, 1, 3, 5, 7]
    assert within_cap(trials, 7, 5) and not within_cap(trials, 8, 5) and within_cap(trials, 8, 6)
    assert room(trials, 5)  # trial 7, queued, is the next one drawn and is within a cap of 5 ...
    assert not room(trials, 4)  # ... but not of 4 (0, 1, 3 and 5 come before it)
    assert not room(trials[:7], 5) and room(trials[:7], 6)  # nothing queued: 0, 1, 3, 5, 6 (no retry yet) count
    ran = _study_of([(C, {}), (P, {}), (F, {"error": "RuntimeError: x"}), (F, {}), (F, {"failure": "preempted"}),
                     (F, {"error": "RuntimeError: x", "failure": "worker gone (...)"}), (R, {}), (W, {})])
    assert [finished(t) for t in ran] == [True, True, True] + [False] * 5  # 3: failed by Optuna's RDB heartbeat


def test_max_trials_fills_a_study_shared_by_two_workers_to_exactly_m(tmp_path):
    job, out = _job(tmp_path), tmp_path / "s"
    procs = [subprocess.Popen(_tune_cmd(job, out, "--trials", 3, "--max-trials", 5), env=_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    trials = _journal(out / "study.journal").trials
    assert [t.number for t in trials if t.state == TrialState.COMPLETE] == counted(trials) and len(counted(trials)) == 5
    lost = [t for t in trials if t.state != TrialState.COMPLETE]  # races lost at the 5th place: nothing computed
    assert all(t.user_attrs["failure"].startswith(OVER_CAP) for t in lost)
    assert sorted(os.listdir(out / "trials")) == [f"{t.number:04d}" for t in trials if t.state == TrialState.COMPLETE]
    assert any("this worker stops" in log for log in logs)  # 6 trials asked for: one worker at least met the cap
    r = optimize(str(job), trials=3, out=str(out), max_trials=5, log=lambda *_: None)  # a later worker: nothing
    assert r["ran"] == 0 and len(_journal(out / "study.journal").trials) == len(trials)
    r = optimize(str(job), trials=3, out=str(out), max_trials=6, log=lambda *_: None)
    assert r["ran"] == 1 and len(counted(_journal(out / "study.journal").trials)) == 6


def test_a_trial_drawn_after_another_worker_took_the_last_place_is_failed_unrun(tmp_path, monkeypatch, capsys):
    """The race: a worker saw room, another worker's trial took the last place before this one drew its trial.
    The drawn trial is failed before any work (no trial directory) and a queued trial it took is queued again."""
    from hpcflow.cli import main
    from hpcflow.tune import budget

    job, out = _job(tmp_path), tmp_path / "s"
    optimize(str(job), trials=2, out=str(out), log=lambda *_: None)
    real, seen = budget.room, []

    def stale_room(trials, max_trials):  # the first check passes on a view without the other worker's trial
        seen.append(max_trials)
        return len(seen) == 1 or real(trials, max_trials)

    monkeypatch.setattr(budget, "room", stale_room)
    s = _journal(out / "study.journal")
    s.enqueue_trial({"flow.dt": 0.5})
    s.ask()  # the other worker popped the queued trial 2 first ...
    s.enqueue_trial({"flow.dt": 0.25})  # ... and queued trial 3 is the one this worker draws
    capsys.readouterr()
    assert main(["tune", str(job), "--trials", "3", "--out", str(out), "--max-trials", "3"]) == 0
    io = capsys.readouterr()
    trials = _journal(out / "study.journal").trials
    assert trials[3].state == TrialState.FAIL and trials[3].user_attrs["failure"].startswith(OVER_CAP)
    assert trials[4].state == TrialState.WAITING and trials[4].system_attrs["fixed_params"] == {"flow.dt": 0.25}
    assert len(trials) == 5 and not (out / "trials" / "0003").exists() and len(seen) == 2
    assert "(1 of the failed drawn over --max-trials, not run)" in io.out and "this worker stops" in io.out


def test_a_requeued_worker_whose_earlier_runs_finished_no_trial_says_so_too(tmp_path, monkeypatch):
    """SLURM_RESTART_COUNT=1 of job 123, and no trial of that job in the study (its first run was preempted before
    a trial finished): the line says it finished 0 of its --trials and adds them all (it was said only for K > 0)."""
    job, out = _job(tmp_path), tmp_path / "s"
    for k in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    lines = []
    assert optimize(str(job), trials=2, out=str(out), log=lines.append)["ran"] == 2
    assert "hpcflow tune: Slurm job 123 (restart 1) finished 0 of its --trials 2 before it was requeued; adding 2" \
        in lines


def test_a_worker_of_the_local_executor_run_again_calls_its_job_a_local_job(tmp_path, monkeypatch):
    """`hpcflow submit --executor local` runs a tune worker again under the job's key and run count (as SLURM_JOB_ID
    and SLURM_RESTART_COUNT, `submit.task.local_leg`): its line named a Slurm job where no Slurm runs."""
    job, out = _job(tmp_path), tmp_path / "s"
    for k in [k for k in os.environ if k.startswith(("SLURM_", "SUBMITIT_"))]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SLURM_JOB_ID", "local-vm-1234-1")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    lines = []
    assert optimize(str(job), trials=1, out=str(out), log=lines.append)["ran"] == 1
    said = [line for line in lines if "(restart 1)" in line]
    assert said and said[0].startswith("hpcflow tune: local job local-vm-1234-1 (restart 1)"), lines
