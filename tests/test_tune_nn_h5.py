"""A finished network trial whose nn.h5 is missing or damaged (a partial copy back from a cluster, a disk error) is
written again from its checkpoint.pt by the study's next `hpcflow tune`, as `hpcflow nn --resume` writes a run's, and
the report advises that command, which run as it is mends the trial and leaves its recorded value as it was. A trial
whose worker died while it wrote nn.h5 (after its training) is continued from its checkpoint.pt as a new trial."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import h5py
import pytest
import numpy as np
from optuna.trial import TrialState

from analysis_runs import env, md_rows
from hpcflow.cli import main
from test_tune_nn import JOB as NN_JOB
from test_tune_records import _job, _journal, _tune

SETS = ["--set", "training.epochs=2"]  # the study's own --set: the advised command must carry it


def _datasets(path) -> dict:
    """{name: value} of every dataset of an HDF5 file."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, obj: out.__setitem__(n, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def _statuses(paths, report_dir) -> dict:
    from hpcflow.report.build import build_report

    res = build_report([str(p) for p in paths], report_dir)
    with open(res["md"], encoding="utf-8") as fh:
        return {k: r[2] for k, r in md_rows(fh.read().split("## Runs")[1].split("\n## ")[0]).items()}


def test_the_studys_next_tune_writes_a_finished_trials_missing_or_damaged_nn_h5_again(tmp_path, capsys):
    """The report advised a rerun of the trial's job.toml outside the study (with `hpcflow run`), and `hpcflow tune`
    left the trial as it was: its nn.h5 stayed missing or damaged."""
    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, *SETS)
    assert rc == 0, io.err
    recorded = [(t.state, t.value) for t in _journal(out / "study.journal", "nn_tiny").trials]
    assert [s for s, _ in recorded] == [TrialState.COMPLETE] * 2
    dirs = [out / "trials" / "0000", out / "trials" / "0001"]
    written = [_datasets(d / "nn.h5") for d in dirs]
    os.remove(dirs[0] / "nn.h5")  # a partial copy
    os.truncate(dirs[1] / "nn.h5", 700)  # a write cut short

    status = _statuses(dirs, tmp_path / "r1")
    for n, lead in enumerate(("finished; nn.h5 missing: ", "incomplete: nn.h5 unreadable (damaged); ")):
        said = status[f"000{n}"]
        assert said.startswith(f"{lead}trial {n} of the study in {out}, complete: the study's next `"), said
        assert said.endswith("` writes its nn.h5 again from its checkpoint.pt before it adds trials (its value stays "
                             "as recorded)"), said
    argv = shlex.split(status["0000"].split("`")[1])
    assert argv == ["hpcflow", "tune", str(job), "--trials", "N", "--out", str(out), *SETS], argv

    rc, io = _tune(capsys, *["1" if w == "N" else w for w in argv[2:]])  # the advised command, as it is
    assert rc == 0, io.err
    for n, d in enumerate(dirs):
        assert f"trial {n}: wrote its nn.h5 again from checkpoint.pt ({d})" in io.out, io.out
        again = _datasets(d / "nn.h5")
        assert sorted(again) == sorted(written[n]) and len(again) > 1
        for name, value in written[n].items():  # the file the trial wrote, bit for bit (one process, as it ran)
            np.testing.assert_array_equal(again[name], value, err_msg=name)
        with h5py.File(d / "nn.h5", "r") as f:
            assert f.attrs["status"] == "finished" and f.attrs["epoch"] == 2
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [(t.state, t.value) for t in trials[:2]] == recorded  # as the study recorded them
    assert [t.value for t in trials[:2]] == [w["history/sigma_val"][-1] for w in written]  # (objective sigma_val)
    assert len(trials) == 3 and trials[2].state == TrialState.COMPLETE  # and the trial it adds
    assert _statuses(dirs, tmp_path / "r2") == {"0000": "finished", "0001": "finished"}


#: `hpcflow tune` whose worker dies (SIGKILL-like, no handler runs) while it writes a trial's nn.h5: after the
#: training, its checkpoint.pt written at the end of it, a few bytes of nn.h5 on disk
DIES_WRITING_NN_H5 = """
import os, sys
import hpcflow.jobs.output as output
real = output.write_hdf5
def dies(path, *args, **kwargs):
    if str(path).endswith("nn.h5"):
        open(path, "wb").write(b"\\x89HDF\\r\\n\\x1a\\n")
        os._exit(9)
    return real(path, *args, **kwargs)
output.write_hdf5 = dies
from hpcflow.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_trial_whose_worker_died_writing_nn_h5_is_continued_from_its_checkpoint(tmp_path, capsys):
    """Its worker gone, the trial was failed and, with the default retries = 0, never run again (the report said the
    next hpcflow tune retries it): the whole training its checkpoint.pt holds was lost to the study."""
    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    p = subprocess.run([sys.executable, "-c", DIES_WRITING_NN_H5, "tune", str(job), "--trials", "1", "--out", str(out),
                        *SETS, "--quiet"], env=env(), capture_output=True, text=True, timeout=300)
    first = out / "trials" / "0000"
    assert p.returncode == 9 and not (first / "summary.json").exists(), p.stdout + p.stderr
    said = _statuses([first], tmp_path / "r")["0000"]
    assert said.endswith(f"trial 0 of the study in {out}, RUNNING in its storage: the study's next `hpcflow tune {job} "
                         f"--trials N --out {out} --set training.epochs=2` marks it failed and continues it as a new "
                         "trial from its checkpoint.pt, which holds its whole training"), said

    argv = shlex.split(said.split("`")[1])
    rc, io = _tune(capsys, *["1" if w == "N" else w for w in argv[2:]])  # the advised command, as it is
    assert rc == 0, io.err
    assert f"trial 1 continues trial 0 (worker gone (its process ended)) from {first / 'checkpoint.pt'}" in io.out
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["seeds"] == trials[0].user_attrs["seeds"]
    ref = tmp_path / "ref"  # the trial run whole by hpcflow nn on its job.toml (its parameters and point seeds)
    assert main(["nn", str(first / "job.toml"), "--out", str(ref), "--quiet"]) == 0
    want, got = _datasets(ref / "nn.h5"), _datasets(out / "trials" / "0001" / "nn.h5")
    assert sorted(got) == sorted(want)
    for name, value in want.items():  # bit for bit, but the wall times
        if not name.endswith("_seconds"):
            np.testing.assert_array_equal(got[name], value, err_msg=name)
    sigma_val = want["history/sigma_val"]
    assert trials[1].value == sigma_val[-1] and trials[1].intermediate_values == {1: sigma_val[1], 2: sigma_val[2]}
    capsys.readouterr()
    rc, io = _tune(capsys, *["1" if w == "N" else w for w in argv[2:]])  # nothing more to continue
    assert rc == 0 and "continues" not in io.out, io.out


def test_a_continuation_whose_worker_died_writing_nn_h5_is_said_failed_not_continued_again(tmp_path, capsys):
    """The trial continuing a gone worker's trial from its checkpoint.pt is continued once: its own worker gone in
    turn, the study retries it as [tune] retries allow (0 here: not at all). Its row said the study's next hpcflow
    tune "continues it as a new trial from its checkpoint.pt", which it does not."""
    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    argv = [sys.executable, "-c", DIES_WRITING_NN_H5, "tune", str(job), "--trials", "1", "--out", str(out), *SETS,
            "--quiet"]
    for _ in range(2):  # trial 0, then its continuation, trial 1: each worker dies writing nn.h5
        p = subprocess.run(argv, env=env(), capture_output=True, text=True, timeout=300)
        assert p.returncode == 9, p.stdout + p.stderr
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING] and trials[1].user_attrs["continues"] == 0
    second = out / "trials" / "0001"
    said = _statuses([second], tmp_path / "r")["0001"]
    assert said.endswith(f"trial 1 of the study in {out}, RUNNING in its storage: the study's next `hpcflow tune {job} "
                         f"--trials N --out {out} --set training.epochs=2` marks it failed and does not run it again: "
                         "[tune] retries = 0 (retries = 1 in its job file would have it retried afresh)"), said
    rc, io = _tune(capsys, *["1" if w == "N" else w for w in shlex.split(said.split("`")[1])[2:]])
    assert rc == 0 and "continues" not in io.out, io.out
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert "retry_of" not in trials[2].user_attrs and "continues" not in trials[2].user_attrs


def test_a_trial_whose_nn_h5_write_the_disk_refused_is_continued_from_its_checkpoint(tmp_path, capsys, monkeypatch):
    """A full disk while nn.h5 was written (after the training): the trial's parameters were queued to start afresh
    on new points, and the training its checkpoint.pt holds whole was lost."""
    import errno

    import hpcflow.jobs.output as output

    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    real = output.write_hdf5

    def full(path, *args, **kwargs):
        if str(path).endswith("nn.h5"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(output, "write_hdf5", full)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    monkeypatch.setattr(output, "write_hdf5", real)
    first = out / "trials" / "0000"
    assert rc == 5 and "No space left on device" in io.err, io.err
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    assert rc == 0, io.err
    assert (f"trial 1 continues trial 0 (write refused: {first / 'nn.h5'} (No space left on device)) from "
            f"{first / 'checkpoint.pt'}") in io.out, io.out
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["seeds"] == trials[0].user_attrs["seeds"]
    ref = tmp_path / "ref"  # the trial run whole by hpcflow nn on its job.toml (its parameters and point seeds)
    assert main(["nn", str(first / "job.toml"), "--out", str(ref), "--quiet"]) == 0
    sigma_val = _datasets(ref / "nn.h5")["history/sigma_val"]
    np.testing.assert_array_equal(_datasets(out / "trials" / "0001" / "nn.h5")["history/sigma_val"], sigma_val)
    assert trials[1].value == sigma_val[-1]


def _finished_trial(tmp_path, capsys):
    """A study of one complete nn trial whose nn.h5 is then removed: (job, out, trial dir, its nn.h5's datasets,
    the trial's recorded (state, value))."""
    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    assert rc == 0, io.err
    first = out / "trials" / "0000"
    written = _datasets(first / "nn.h5")
    os.remove(first / "nn.h5")
    t = _journal(out / "study.journal", "nn_tiny").trials[0]
    return job, out, first, written, (t.state, t.value)


def _mended_by_next_tune(capsys, job, out, first, written, recorded):
    """The next plain hpcflow tune writes trial 0's nn.h5 again, bit for bit, its state and value as recorded."""
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    assert rc == 0, io.err
    assert f"trial 0: wrote its nn.h5 again from checkpoint.pt ({first})" in io.out, io.out
    again = _datasets(first / "nn.h5")
    assert sorted(again) == sorted(written)
    for name, value in written.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert (trials[0].state, trials[0].value) == recorded
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE]


def test_a_signal_after_a_mend_s_training_lets_it_write_nn_h5_and_stops_the_worker_before_its_next_trial(
        tmp_path, capsys, monkeypatch):
    """SIGTERM after the training of the resume that writes nn.h5 again, where only the outputs are left to write
    (nothing for the request to stop): the mend writes trial 0's nn.h5 bit for bit, its state and value as recorded,
    and the request, passed on to the worker, stops it before a next trial (exit 4, no trial added). It used to stop
    the mend with checkpoint.pt "trained" and summary.json "preempted", for the next hpcflow tune to mend again."""
    import signal

    import hpcflow.nn.job as nn_job
    from hpcflow.analysis.rundir import network_checkpoint
    from hpcflow.jobs.output import read_summary

    job, out, first, written, recorded = _finished_trial(tmp_path, capsys)
    real = nn_job._warn_not_positive_definite

    def term(*args, **kwargs):  # after the training, before the outputs
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(nn_job, "_warn_not_positive_definite", term)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    monkeypatch.setattr(nn_job, "_warn_not_positive_definite", real)
    assert rc == 4 and "signal received between trials" in io.err, io.err
    assert "stop request after the last training step" not in io.err, io.err  # the worker says what it does with it
    assert f"trial 0: wrote its nn.h5 again from checkpoint.pt ({first})" in io.out, io.out
    assert network_checkpoint(first)[("status",)] == "finished" and read_summary(first)["status"] == "finished"
    again = _datasets(first / "nn.h5")
    assert sorted(again) == sorted(written)
    for name, value in written.items():
        np.testing.assert_array_equal(again[name], value, err_msg=name)
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [(t.state, t.value) for t in trials] == [recorded]


def test_a_mend_whose_worker_died_writing_nn_h5_is_mended_by_the_next_tune(tmp_path, capsys):
    """The worker killed while it wrote nn.h5 again left checkpoint.pt with status "trained": the next hpcflow tune
    added a trial and never wrote trial 0's nn.h5 again."""
    from hpcflow.analysis.rundir import network_checkpoint

    job, out, first, written, recorded = _finished_trial(tmp_path, capsys)
    p = subprocess.run([sys.executable, "-c", DIES_WRITING_NN_H5, "tune", str(job), "--trials", "1", "--out", str(out),
                        *SETS, "--quiet"], env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 9, p.stdout + p.stderr
    assert network_checkpoint(first)[("status",)] == "trained"
    assert len(_journal(out / "study.journal", "nn_tiny").trials) == 1
    _mended_by_next_tune(capsys, job, out, first, written, recorded)


def _rdb_trial(trial):
    import optuna

    return optuna.load_study(study_name="nn_tiny", storage=trial).trials


def _died_after_training_in_sqlite(tmp_path, *, elsewhere: bool):
    """An SQLite study (heartbeat_seconds = 1) whose worker died writing trial 0's nn.h5, its Optuna heartbeat then
    stale (grace 2 s: waited for until Optuna's own check holds it so); `elsewhere`: the trial is recorded as run on
    another host, so that only Optuna's heartbeat tells its worker is gone. (job, out, url, trial dir)."""
    import time

    import optuna

    from hpcflow.tune.storage import open_storage

    text = NN_JOB.replace('pruner = "none"', 'pruner = "none"\nheartbeat_seconds = 1\nstale_seconds = 2')
    job, out = _job(tmp_path, text, name="nn_tiny.toml"), tmp_path / "s"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    p = subprocess.run([sys.executable, "-c", DIES_WRITING_NN_H5, "tune", str(job), "--trials", "1", "--out", str(out),
                        "--storage", url, *SETS, "--quiet"], env=env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 9, p.stdout + p.stderr
    study = optuna.load_study(study_name="nn_tiny", storage=url)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    if elsewhere:
        study._storage.set_trial_user_attr(study.trials[0]._trial_id, "host", "another-host.example")
    storage = open_storage(url, str(out), heartbeat=1)  # as `hpcflow tune` opens it: heartbeat 1 s, grace 2 s
    deadline = time.monotonic() + 30
    while study.trials[0]._trial_id not in storage._get_stale_trial_ids(study._study_id):  # (it fails none)
        assert time.monotonic() < deadline, "the dead worker's heartbeat never went stale"
        time.sleep(0.1)
    return job, out, url, out / "trials" / "0000"


def _continued_in_sqlite(capsys, job, out, url, first, why):
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", url, *SETS)
    assert rc == 0, io.err
    assert f"trial 1 continues trial 0 ({why}) from {first / 'checkpoint.pt'}" in io.out, io.out
    trials = _rdb_trial(url)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["seeds"] == trials[0].user_attrs["seeds"]
    ref = first.parent.parent.parent / "ref"  # the trial run whole by hpcflow nn on its job.toml
    assert main(["nn", str(first / "job.toml"), "--out", str(ref), "--quiet"]) == 0
    sigma_val = _datasets(ref / "nn.h5")["history/sigma_val"]
    np.testing.assert_array_equal(_datasets(out / "trials" / "0001" / "nn.h5")["history/sigma_val"], sigma_val)
    assert trials[1].value == sigma_val[-1]


def test_an_sqlite_trial_whose_worker_died_after_training_is_continued_once_its_heartbeat_is_stale(tmp_path, capsys):
    """Optuna's stale-trial handling failed the trial before hpcflow's own recovery looked at its checkpoint: the next
    trial started afresh and the training was lost, though the journal storage continues it."""
    job, out, url, first = _died_after_training_in_sqlite(tmp_path, elsewhere=False)
    _continued_in_sqlite(capsys, job, out, url, first, "worker gone (its process ended)")


def test_an_sqlite_trial_of_another_host_whose_worker_died_after_training_is_continued(tmp_path, capsys):
    """Only Optuna's heartbeat judges a worker on another host: its stale-trial callback retried the trial afresh (or,
    with retries = 0, not at all) instead of continuing it from its checkpoint.pt."""
    job, out, url, first = _died_after_training_in_sqlite(tmp_path, elsewhere=True)
    _continued_in_sqlite(capsys, job, out, url, first, "worker gone (no heartbeat for over 2 s)")


#: `hpcflow tune` of two workers started together, in turns that make the race certain: the worker of ROLE "late"
#: lists the trials to mend, then waits until the "early" one has mended them (SYNC/done) before it goes on; the early
#: one mends only once the late one has listed them (SYNC/listed)
MENDS_TOGETHER = """
import os, sys, time
import hpcflow.tune.nn_h5 as nn_h5
from hpcflow.tune.study import Worker
role, sync = os.environ["ROLE"], os.environ["SYNC"]
real, rewrite = nn_h5.candidates, Worker.rewrite_nn_h5
def wait(name):
    end = time.monotonic() + 120
    while not os.path.exists(os.path.join(sync, name)):
        assert time.monotonic() < end, name
        time.sleep(0.05)
def candidates(study, out):
    if role == "early":
        wait("listed")
        return real(study, out)
    found = real(study, out)
    open(os.path.join(sync, "listed"), "w").close()
    wait("done")
    return found
def rewrite_then_done(self):
    rewrite(self)
    if role == "early":
        open(os.path.join(sync, "done"), "w").close()
nn_h5.candidates, Worker.rewrite_nn_h5 = candidates, rewrite_then_done
from hpcflow.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_two_workers_started_together_mend_a_trial_once(tmp_path, capsys):
    """Each worker listed the trials to mend before it took a trial's lock and did not look again under it: the
    second wrote the nn.h5 the first had just written again (summary.json legs (0, 2), (2, 2), (2, 2))."""
    import json

    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, *SETS)
    assert rc == 0, io.err
    dirs = [out / "trials" / "0000", out / "trials" / "0001"]
    for d in dirs:
        os.remove(d / "nn.h5")
    sync = tmp_path / "sync"
    sync.mkdir()
    argv = [sys.executable, "-c", MENDS_TOGETHER, "tune", str(job), "--trials", "1", "--out", str(out), *SETS, "--quiet"]
    procs = [subprocess.Popen(argv, env={**env(), "ROLE": role, "SYNC": str(sync)}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for role in ("early", "late")]
    said = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], said
    for n, d in enumerate(dirs):
        assert sum(s.count(f"trial {n}: wrote its nn.h5 again") for s in said) == 1, said
        legs = json.loads((d / "summary.json").read_text())["legs"]
        assert [(leg["from_step"], leg["to_step"]) for leg in legs] == [(0, 2), (2, 2)], legs
        with h5py.File(d / "nn.h5", "r") as f:
            assert f.attrs["status"] == "finished"
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4


def test_a_write_the_disk_refused_while_a_trials_nn_h5_was_written_again_ends_the_worker_in_one_line(
        tmp_path, capsys, monkeypatch):
    """The error (ENOSPC) ended the worker with a Python traceback and exit status 1, where a trial's own write
    error is one line and exit status 5; the next hpcflow tune writes the nn.h5 again."""
    import errno

    import hpcflow.jobs.output as output

    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, *SETS)
    assert rc == 0, io.err
    dirs = [out / "trials" / "0000", out / "trials" / "0001"]
    written = [_datasets(d / "nn.h5") for d in dirs]
    for d in dirs:
        os.remove(d / "nn.h5")
    recorded = [(t.state, t.value) for t in _journal(out / "study.journal", "nn_tiny").trials]
    real = output.write_hdf5

    def full(path, *args, **kwargs):
        if str(path) == str(dirs[0] / "nn.h5"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(output, "write_hdf5", full)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    monkeypatch.setattr(output, "write_hdf5", real)
    lines = io.err.strip().splitlines()
    assert rc == 5 and len(lines) == 1 and "Traceback" not in io.err + io.out, io.err + io.out
    assert lines[0].startswith(f"hpcflow tune: error: cannot write {dirs[0] / 'nn.h5'} (No space left on device); "
                               "trial 0's nn.h5 is not written again (its state and value stay as recorded); "), lines
    assert lines[0].endswith("then run the same hpcflow tune command (it writes it again)"), lines
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [(t.state, t.value) for t in trials] == recorded  # as recorded, and no trial added
    assert not (dirs[0] / "nn.h5").exists()

    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    assert rc == 0, io.err
    for n, d in enumerate(dirs):
        assert f"trial {n}: wrote its nn.h5 again from checkpoint.pt ({d})" in io.out, io.out
        np.testing.assert_array_equal(_datasets(d / "nn.h5")["history/sigma_val"], written[n]["history/sigma_val"])
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [(t.state, t.value) for t in trials[:2]] == recorded and len(trials) == 3


def _flip_low_bit(path) -> str:
    """Flip the lowest bit of the first byte of the largest tensor entry of zip archive `path` (a float's lowest
    mantissa bit: its value stays finite) in place, leaving its recorded CRC-32 as it was; the entry's name."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        assert info.compress_type == zipfile.ZIP_STORED
    with open(path, "r+b") as fh:
        fh.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", fh.read(4))
        at = info.header_offset + 30 + name_len + extra_len
        fh.seek(at)
        byte = fh.read(1)[0]
        fh.seek(at)
        fh.write(bytes([byte ^ 1]))
    with zipfile.ZipFile(path) as z:
        assert z.testzip() == info.filename  # the damage a CRC check sees
    return info.filename


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "bit flip"])
def test_a_trial_whose_checkpoint_is_damaged_is_said_in_one_line_not_mended(tmp_path, capsys, damage):
    """A checkpoint.pt cut short, of garbage or empty beside a missing nn.h5 was skipped without a word; one whose
    tensor had a flipped bit (its CRC-32 fails, its values finite) was taken, and the mend wrote model.pt and nn.h5
    from the altered weights."""
    job, out = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s"
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    assert rc == 0, io.err
    first = out / "trials" / "0000"
    ckpt, model = first / "checkpoint.pt", (first / "model.pt").read_bytes()
    os.remove(first / "nn.h5")
    if damage == "truncated":
        os.truncate(ckpt, 500)
    elif damage == "garbage":
        ckpt.write_bytes(b"not a checkpoint\n" * 40)
    elif damage == "empty":
        ckpt.write_bytes(b"")
    else:
        _flip_low_bit(ckpt)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *SETS)
    assert rc == 0, io.err
    said = [line for line in io.out.splitlines() if line.startswith("hpcflow tune: trial 0: ")]
    assert len(said) == 1, io.out
    assert said[0].startswith(f"hpcflow tune: trial 0: its nn.h5 is not written again: {ckpt}"), said
    if damage == "bit flip":
        assert "fails its CRC-32 check" in said[0], said
    assert said[0].endswith(f"rerun its job.toml into an --out outside it: `hpcflow nn {first / 'job.toml'} --out "
                            f"{out}_0000`"), said  # what the report advises for the trial
    assert not (first / "nn.h5").exists() and (first / "model.pt").read_bytes() == model
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2


def test_hpcflow_nn_resume_refuses_a_checkpoint_whose_crc_fails(tmp_path, capsys):
    """A flipped bit in a tensor of checkpoint.pt (values finite) was resumed from: --resume wrote nn.h5 and model.pt
    from the altered weights."""
    job = _job(tmp_path, NN_JOB.split("[tune]")[0].replace("epochs = 3", "epochs = 2"), name="nn_tiny.toml")
    run = tmp_path / "run"
    assert main(["nn", str(job), "--out", str(run), "--quiet"]) == 0
    model = (run / "model.pt").read_bytes()
    os.remove(run / "nn.h5")
    entry = _flip_low_bit(run / "checkpoint.pt")
    capsys.readouterr()
    rc = main(["nn", str(job), "--out", str(run), "--resume", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert f"{run / 'checkpoint.pt'}: its entry {entry} fails its CRC-32 check" in err[0], err
    assert not (run / "nn.h5").exists() and (run / "model.pt").read_bytes() == model
