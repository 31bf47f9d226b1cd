"""A trial that retries a failed one afresh ([tune] retries) says so in one line, as a trial that continues a
preempted one does: the failed trial's number, why it failed, which retry it is."""

from __future__ import annotations

from hpcflow.tune import study as study_mod
from hpcflow.tune.study import optimize
from test_tune_records import JOB, _job, _journal  # tests/ is on sys.path


def test_a_retry_of_a_failed_trial_names_it_and_why_it_failed(tmp_path, monkeypatch):
    out = tmp_path / "study"
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 1'))
    real, calls = study_mod.run_trial, []

    def fails_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("lost the node")
        return real(*args, **kwargs)

    monkeypatch.setattr(study_mod, "run_trial", fails_once)
    lines = []
    optimize(str(job), trials=1, out=str(out), study_name="tiny", log=lines.append)
    assert not any(" retries " in line for line in lines), lines  # trial 0 is no retry
    lines.clear()
    r = optimize(str(job), trials=2, out=str(out), study_name="tiny", log=lines.append)
    trials = _journal(out / "study.journal").trials
    assert [t.user_attrs.get("retry_of") for t in trials] == [None, 0, None] and r["counts"]["COMPLETE"] == 2
    said = [line for line in lines if " retries " in line]
    assert said == ["hpcflow tune: trial 1 retries trial 0 (RuntimeError: lost the node; retry 1 of 1) with its "
                    "parameters on new points"], lines
