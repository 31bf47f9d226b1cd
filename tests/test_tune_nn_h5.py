"""A finished network trial whose nn.h5 is missing or damaged (a partial copy back from a cluster, a disk error) is
written again from its checkpoint.pt by the study's next `hpcflow tune`, as `hpcflow nn --resume` writes a run's, and
the report advises that command, which run as it is mends the trial and leaves its recorded value as it was."""

from __future__ import annotations

import os
import shlex

import h5py
import numpy as np
from optuna.trial import TrialState

from analysis_runs import md_rows
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
