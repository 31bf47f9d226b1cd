"""A tune worker holds each trial directory's run lock while the trial runs: no run writes into a live trial."""

from __future__ import annotations

import json
import os

from hpcflow.cli import main
from hpcflow.jobs import outlock
from hpcflow.tune import study as studies
from test_tune_records import _job, _journal  # tests/ is on sys.path (pytest's default import mode)


def _during_first_step(monkeypatch, act):
    """Make act(run_dir) run once, inside the first trial's flow, at its first step."""
    real, done = studies.run_trial, []

    def spy(cfg, run_dir, *, on_step=None, **kw):
        def hooked(*a):
            if not done:
                done.append(act(run_dir))
            return on_step(*a)

        return real(cfg, run_dir, on_step=hooked, **kw)

    monkeypatch.setattr(studies, "run_trial", spy)
    return done


def test_a_run_into_a_live_trial_directory_is_refused_and_the_trial_reruns_later(tmp_path, capsys, monkeypatch):
    job, out = _job(tmp_path), tmp_path / "s"

    def attempts(run_dir):
        capsys.readouterr()
        held = outlock.live_holder(run_dir)
        rcs = [main(["run", os.path.join(run_dir, "job.toml"), "--out", run_dir, *flag])
               for flag in (["--force"], ["--resume"])]
        return held, rcs, capsys.readouterr().err

    done = _during_first_step(monkeypatch, attempts)
    assert main(["tune", str(job), "--trials", "1", "--out", str(out)]) == 0
    held, rcs, err = done[0]
    assert rcs == [2, 2], err
    assert held.startswith(f"hpcflow tune (trial 0), pid {os.getpid()}@")
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(f"(pid {os.getpid()} on " in line and "in use by hpcflow tune (trial 0)" in line
                                   for line in lines), err
    trial_dir = out / "trials" / "0000"
    assert not (trial_dir / outlock.LOCK_NAME).exists() and outlock.live_holder(trial_dir) == ""  # released
    summary = json.loads((trial_dir / "summary.json").read_text())
    assert summary["kind"] == "flow" and summary["status"] == "finished"
    # the trial's job.toml reruns it elsewhere; its own directory stays the study's once the trial ended
    monkeypatch.undo()
    assert main(["run", str(trial_dir / "job.toml"), "--out", str(tmp_path / "rerun")]) == 0
    rerun = json.loads((tmp_path / "rerun" / "summary.json").read_text())
    assert rerun["sigma_test_final"] == summary["sigma_test_final"]
    assert rerun["sigma_test_final"] == _journal(out / "study.journal").trials[0].user_attrs["sigma_test_final"]
    capsys.readouterr()
    assert main(["run", str(trial_dir / "job.toml"), "--out", str(trial_dir), "--resume"]) == 2
    assert f"lies inside {out}, the study directory" in capsys.readouterr().err


def test_a_trial_lock_is_released_when_the_trial_fails(tmp_path, capsys, monkeypatch):
    job, out = _job(tmp_path), tmp_path / "s"

    def fail(run_dir):
        assert outlock.live_holder(run_dir).startswith("hpcflow tune (trial 0)")
        raise RuntimeError("trial breaks")

    _during_first_step(monkeypatch, fail)
    main(["tune", str(job), "--trials", "1", "--out", str(out)])
    assert "trial 0 failed: RuntimeError: trial breaks" in capsys.readouterr().out
    trial_dir = out / "trials" / "0000"
    assert outlock.live_holder(trial_dir) == "" and not (trial_dir / outlock.LOCK_NAME).exists()
    lock = outlock.acquire(trial_dir, command="hpcflow run")  # a run may take it now
    lock.release()
