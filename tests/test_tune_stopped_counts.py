"""A trial that a stop signal ends inside its objective where no checkpoint writer takes the signal (user attribute
`failure` "stopped by SIGTERM", Optuna's FAIL) is queued again to be continued, as a preempted one is: the worker's
closing line, `hpcflow report` and optuna_view.py count it as preempted, not as failed, and "interrupted" stays the
count of RUNNING trials whose worker is gone."""

from __future__ import annotations

import signal

from optuna.trial import TrialState

from hpcflow.stop_signals import Stopped

from test_tune_records import JOB, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)


def test_a_trial_stopped_by_sigterm_in_its_objective_is_counted_preempted(tmp_path, capsys, monkeypatch):
    from hpcflow.analysis.study import overview
    from hpcflow.tune import study as tune_study

    job, out = _job(tmp_path, JOB), tmp_path / "s"
    real = tune_study.execute

    def sigterm_first(*args, **kwargs):  # the stop that a SIGTERM no checkpoint writer takes raises
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(tune_study, "execute", sigterm_first)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 143 and "its parameters are queued again" in io.out, io.out
    trials = _journal(out / "study.journal").trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["failure"] == "stopped by SIGTERM", trials
    assert trials[1].state == TrialState.WAITING and trials[1].user_attrs["continues"] == 0
    monkeypatch.setattr(tune_study, "execute", real)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 0
    assert "hpcflow tune: study 'tiny': 1 complete, 1 preempted\n" in io.out, io.out
    assert overview(out)["states"] == {"complete": 1, "preempted": 1}


def test_a_study_with_a_continued_trial_and_a_killed_worker_counts_them_apart(tmp_path, capsys, monkeypatch):
    """A second Ctrl-C's trial (failure "interrupted", continued by a queued one) is preempted in the report's row;
    "interrupted" counts the trial whose worker was killed, the one the row names."""
    from analysis_runs import md_rows
    from test_report_trial_advice import _dies

    from hpcflow.analysis.study import overview
    from hpcflow.report.build import build_report
    from hpcflow.tune import study as tune_study

    job = _job(tmp_path, JOB.replace("[tune]\n", "[checkpoint]\nevery = 1\n[tune]\n"))
    out = tmp_path / "s"

    def second_ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tune_study, "execute", second_ctrl_c)
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 130
    monkeypatch.undo()
    trials = _journal(out / "study.journal").trials
    assert trials[0].user_attrs["failure"] == "interrupted" and trials[1].user_attrs["continues"] == 0
    _dies(["tune", str(job), "--trials", "1", "--out", str(out)])  # takes trial 1, its worker killed
    assert overview(out)["states"] == {"preempted": 1, "interrupted": 1}
    res = build_report([str(out)], tmp_path / "r")
    md = open(res["md"], encoding="utf-8").read()
    row = md_rows(md.split("## Runs")[1].split("\n## ")[0])["s"]
    assert row[2].startswith("2 trials: 1 preempted, 1 interrupted (trial 1 RUNNING in the storage"), row[2]
