"""A worker that a write refused by the file system ends (exit status 5) still writes best.toml from the trials
finished before, as one stopped by a signal does, unless best.toml's own write is refused too."""

from __future__ import annotations

import errno
import os

import pytest
from optuna.trial import TrialState

from test_tune_records import _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)


@pytest.mark.parametrize("best_refused", [False, True])
def test_a_write_refused_in_trial_1_leaves_best_toml_of_trial_0(tmp_path, capsys, monkeypatch, best_refused):
    """Trial 0 complete, a write of trial 1 refused (ENOSPC): the worker ended with exit 5 and no best.toml, where
    docs/outputs.md has each worker write it when it ends once some trial is COMPLETE."""
    import hpcflow.jobs.output as output
    import hpcflow.tune.study as study_mod

    job, out = _job(tmp_path), tmp_path / "s"
    real_run, real_write = study_mod.run_trial, output.write_text

    def run_trial(cfg, run_dir, *args, **kwargs):
        if run_dir.endswith(os.path.join("trials", "0001")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(run_dir, "checkpoint.h5"))
        return real_run(cfg, run_dir, *args, **kwargs)

    def write_text(path, *args, **kwargs):
        if best_refused and os.path.basename(path) == "best.toml":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(study_mod, "run_trial", run_trial)
    monkeypatch.setattr(output, "write_text", write_text)
    rc, io = _tune(capsys, job, "--trials", "3", "--out", out)
    assert rc == 5 and io.err.count("\n") == 1, io.err
    assert f"{out}/trials/0001/checkpoint.h5" in io.err and "No space left on device" in io.err, io.err
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]  # queued again
    if best_refused:
        assert not (out / "best.toml").exists()
        return
    text = (out / "best.toml").read_text()
    assert "trial 0," in text and f"dt = {trials[0].params['flow.dt']!r}" in text, text


@pytest.mark.parametrize("err, said", [(errno.EROFS, "Read-only file system"),
                                       (errno.EPERM, "Operation not permitted")])
def test_a_refused_lock_of_best_toml_ends_the_worker_with_one_line(tmp_path, capsys, monkeypatch, err, said):
    """DIR made read-only (remounted, chattr +i) after the trials: best.toml's lock cannot be made, which ended the
    worker with a traceback; it is a refused write of best.toml, as that file's own write is: one line naming it,
    exit status 5, the trials recorded."""
    job, out = _job(tmp_path), tmp_path / "s"
    lock = str(out / "best.toml.lock")
    real = os.symlink

    def symlink(src, dst, *args, **kwargs):
        if os.path.abspath(dst) == lock:
            raise OSError(err, os.strerror(err), dst)
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "symlink", symlink)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out)
    assert rc == 5 and io.err.count("\n") == 1, io.err
    assert f"cannot write {lock} ({said})" in io.err and "Traceback" not in io.err, io.err
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.COMPLETE] * 2
    assert not (out / "best.toml").exists() and not os.path.lexists(lock)
