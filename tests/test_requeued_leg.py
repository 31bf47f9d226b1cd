"""What a requeued leg of a job runs, one rule for every path: the sbatch templates (`python -m hpcflow.submit.requeue`
chooses the words, `python -m hpcflow.submit.step` starts the run) and `hpcflow submit`'s jobs (`HpcflowTask`). Each
--out state below is made by real runs in Slurm job 31 (SLURM_JOB_ID, recorded in summary.json), then looked at by
every path of a requeued leg (SLURM_RESTART_COUNT 1) of job 31, or of another job."""

from __future__ import annotations

import json
import os

import pytest

import hpcflow.cli
from hpcflow.atomic import TMP_MARK
from hpcflow.cli import main
from hpcflow.jobs.outlock import LOCK_NAME
from hpcflow.submit import requeue, step
from hpcflow.submit.task import HpcflowTask
from analysis_runs import JOBS
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points

FLOW = flow_points(40, 20) + DELTA_FLOW
NN = NN_POINTS + SMALL_NET + TINY_TRAINING
#: a kind without checkpoints (its --resume is refused), small enough to run in a second
CLUSTERING = JOBS["clustering"][1]


@pytest.fixture
def slurm_job(monkeypatch):
    """Slurm job 31, not (yet) requeued: the runs made here record it."""
    for name in ("SLURM_RESTART_COUNT", "SUBMITIT_FOLDER", "SUBMITIT_EXECUTOR", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "31")
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")
    monkeypatch.setenv("HPCFLOW_BACKEND", "numpy")


def _job(tmp_path, text=FLOW, name="job.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _legs(monkeypatch, capsys, job: str, out: str, cmd: str, options=(), *, slurm_job="31"):
    """What a requeued leg of Slurm job `slurm_job` runs for `hpcflow CMD JOB --out OUT OPTIONS`, by each path:
    (the template's words and options after them, as the template's bash passes them on; step's command line after
    `-m hpcflow`, or its "nothing to do" line; the argv HpcflowTask runs, or its result where it runs none)."""
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    monkeypatch.setenv("SLURM_JOB_ID", slurm_job)
    capsys.readouterr()
    assert requeue.main([job, out]) == 0
    words = capsys.readouterr().out.split()
    template = words + [a for a in options if not (a == "--force" and "--resume" in words)]  # (the templates' line)
    argv = [cmd, job, "--out", out, *options]
    stepped = step.continued(["python", "-m", "hpcflow", *argv])
    stepped = stepped[3:] if isinstance(stepped, list) else stepped.said
    ran = []
    monkeypatch.setattr(hpcflow.cli, "main", lambda a: ran.append(list(a)) or 0)
    status = HpcflowTask()(argv)
    monkeypatch.setattr(hpcflow.cli, "main", main)
    monkeypatch.delenv("SLURM_RESTART_COUNT")
    monkeypatch.setenv("SLURM_JOB_ID", "31")
    return template, stepped, (ran[0] if ran else status)


def test_a_requeued_leg_continues_the_finished_run_of_its_own_job(tmp_path, slurm_job, monkeypatch, capsys):
    """Job 31's run finished (the job was then requeued: node failure, preemption after summary.json): every path
    continues it with --resume, --force dropped, and the command says "nothing to do", status 0. The template's
    `python -m hpcflow.submit.requeue` printed plain `run` (its rule: --resume only for an interrupted run), which the
    command refuses on the results (status 2), or with the --force it was submitted with starts over, while
    `hpcflow submit`'s jobs and the template's step continued it with --resume."""
    job, out = _job(tmp_path), str(tmp_path / "out")
    assert main(["run", job, "--out", out]) == 0
    finished = (tmp_path / "out" / "summary.json").read_text()
    for options in ((), ("--force",)):
        template, stepped, task = _legs(monkeypatch, capsys, job, out, "run", options)
        resumed = ["run", job, "--out", out, "--resume"]
        assert template == ["run", "--resume"] and stepped == resumed and task == resumed, (template, stepped, task)
    capsys.readouterr()
    assert main(["run", job, "--out", out, "--resume"]) == 0  # what each path runs
    assert "already finished at step 3 ([flow].steps = 3): nothing to do" in capsys.readouterr().out
    assert main(["run", job, "--out", out]) == 2  # what the template's words alone ran
    assert (tmp_path / "out" / "summary.json").read_text() == finished


def test_a_requeued_network_leg_continues_the_finished_run_of_its_own_job(tmp_path, slurm_job, monkeypatch, capsys):
    """As for a flow, with `hpcflow nn` and its checkpoint.pt: the template's words were plain `nn`."""
    pytest.importorskip("torch")
    job, out = _job(tmp_path, NN), str(tmp_path / "out")
    assert main(["nn", job, "--out", out]) == 0
    template, stepped, task = _legs(monkeypatch, capsys, job, out, "nn", ("--force",))
    assert template == ["nn", "--resume"] and stepped == task == ["nn", job, "--out", out, "--resume"]
    capsys.readouterr()
    assert main(["nn", job, "--out", out, "--resume"]) == 0
    assert "already finished at epoch 4" in capsys.readouterr().out


def test_a_leg_stopped_before_it_replaced_another_jobs_run_runs_as_given(tmp_path, slurm_job, monkeypatch, capsys):
    """Job 31's finished run, and its run marked preempted, in OUT; job 32, submitted with --force to start over,
    was requeued before its run set them aside (preempted during its start-up; node failure): its requeued leg runs
    as its first leg did, --force starting over. It was continued with --resume, the --force dropped: "nothing to
    do" (status 0) where the run had finished, so the run asked for never ran, or job 31's run continued."""
    job, out = _job(tmp_path), str(tmp_path / "out")
    assert main(["run", job, "--out", out]) == 0
    given = ["run", job, "--out", out, "--force"]
    assert _legs(monkeypatch, capsys, job, out, "run", ("--force",), slurm_job="32") == (["run", "--force"], given,
                                                                                         given)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    (tmp_path / "out" / "summary.json").write_text(json.dumps({**summary, "status": "preempted"}))
    assert _legs(monkeypatch, capsys, job, out, "run", ("--force",), slurm_job="32") == (["run", "--force"], given,
                                                                                         given)
    resumed = ["run", job, "--out", out, "--resume"]  # job 31's own requeued leg continues it
    assert _legs(monkeypatch, capsys, job, out, "run", ("--force",)) == (["run", "--resume"], resumed, resumed)


def test_a_leg_stopped_before_its_first_checkpoint_runs_as_given(tmp_path, slurm_job, monkeypatch, capsys):
    """Killed before its first checkpoint, the run left OUT holding its lock file and the debris of a write
    (SIGKILL, node failure): the requeued leg runs as given, and the command takes that OUT as empty."""
    job, out = _job(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"command": "hpcflow run", "pid": 1, "host": "gone", "slurm_job": "31",
                                             "since": "2026-01-01T00:00:00+00:00"}) + "\n")
    (out / f".checkpoint.h5{TMP_MARK}x1y2").write_bytes(b"half")
    given = ["run", job, "--out", str(out)]
    assert _legs(monkeypatch, capsys, job, str(out), "run") == (["run"], given, given)
    assert main(["run", job, "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["checkpoint_step"] == 3


def test_a_requeued_leg_of_a_finished_run_without_checkpoints_runs_nothing(tmp_path, slurm_job, monkeypatch, capsys):
    """Job 31's clustering run (a kind without checkpoints, whose --resume is refused) finished, then the job was
    requeued: the template's step and the submitted task run nothing and say so, status 0, the results untouched.
    Both ran it again as given, refused on its results (status 2; with --force it ran all over again)."""
    job, out = _job(tmp_path, CLUSTERING), str(tmp_path / "out")
    assert main(["run", job, "--out", out]) == 0
    before = sorted(os.listdir(out)), (tmp_path / "out" / "summary.json").read_text()
    template, stepped, task = _legs(monkeypatch, capsys, job, out, "run")
    assert template == ["run"] and task == 0 and "nothing to do" in stepped, (template, stepped, task)
    assert f"hpcflow submit: {out} holds the run this job (Slurm job 31) ended" in capsys.readouterr().out
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert step.main(["false", "-m", "hpcflow", "run", job, "--out", out]) == 0  # (`false` would end it with 1)
    said = capsys.readouterr().out
    assert said.startswith(f"hpcflow.submit.step: {out} holds the run this job") and "nothing to do" in said, said
    assert (sorted(os.listdir(out)), (tmp_path / "out" / "summary.json").read_text()) == before
    monkeypatch.setenv("SLURM_JOB_ID", "32")  # another job's finished run: as given (refused without --force)
    assert step.main(["false", "-m", "hpcflow", "run", job, "--out", out]) == 1
