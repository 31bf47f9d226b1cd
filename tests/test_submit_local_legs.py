"""A job of submitit's local executor counts its runs, as Slurm's SLURM_RESTART_COUNT does, so that a restarted
tune worker adds only the trials its earlier runs did not finish."""

import os

import hpcflow.cli
from hpcflow.submit.task import HpcflowTask, local_legs


def test_local_tune_runs_are_counted_as_restarts(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(hpcflow.cli, "main", lambda argv: seen.append(
        (os.environ.get("SLURM_JOB_ID"), os.environ.get("SLURM_RESTART_COUNT"))) or 0)
    for name in ("SLURM_JOB_ID", "SLURM_RESTART_COUNT", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_FOLDER", str(tmp_path))
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4242")
    assert local_legs(tmp_path, "4242") == 0
    for _ in range(3):
        assert HpcflowTask().run(["tune", "job.toml", "--out", str(tmp_path / "o"), "--trials", "5"]) == (0, False)
        monkeypatch.delenv("SLURM_JOB_ID")  # (each run is a new process)
        monkeypatch.delenv("SLURM_RESTART_COUNT")
    assert [r for _, r in seen] == ["0", "1", "2"]
    assert len({j for j, _ in seen}) == 1 and "4242" in seen[0][0]
    assert local_legs(tmp_path, "4242") == 3
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "4343")  # another job: counted apart
    HpcflowTask().run(["tune", "job.toml", "--out", str(tmp_path / "o"), "--trials", "5"])
    assert seen[-1][1] == "0" and seen[-1][0] != seen[0][0]
