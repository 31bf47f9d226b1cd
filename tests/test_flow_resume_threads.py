"""A flow records each run's threads per rank (`legs[].threads`, checkpoint.h5 and summary.json), and a --resume at
another thread count than the checkpoint's last leg says in one line that it continues to summation order, not bit
for bit (as `hpcflow nn` does); one at the same threads, or of a checkpoint whose legs predate the record, says
nothing."""

import json
import os
import shutil
import signal
from pathlib import Path

import h5py

from hpcflow import checkpoint as ckpt
from hpcflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "quickstart.toml")
SETS = ["--set", "geometry.n_train=600", "--set", "geometry.n_test=100", "--set", "clustering.n_clusters=2",
        "--set", "flow.steps=4", "--set", "checkpoint.every=1"]
NOTE = "hpcflow run: note: {now} threads per rank, where the checkpoint's last leg ran {before}: the run continues"


def _legs(out):
    with h5py.File(out / "checkpoint.h5", "r") as f:
        saved = json.loads(f.attrs["legs"])
    return saved, json.loads((out / "summary.json").read_text())["legs"]


def _resume(out, threads, monkeypatch, capsys):
    monkeypatch.setenv("HPCFLOW_THREADS", str(threads))
    capsys.readouterr()
    assert main(["run", JOB, "--out", str(out), *SETS, "--resume"]) == 0
    return capsys.readouterr().err


def test_each_leg_records_its_threads_and_another_count_is_said(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    call = ckpt.CheckpointWriter.__call__

    def preempt(self, view):
        if view.step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return call(self, view)

    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    with monkeypatch.context() as m:
        m.setattr(ckpt.CheckpointWriter, "__call__", preempt)
        assert main(["run", JOB, "--out", str(out), *SETS]) == 4
    saved, summary = _legs(out)
    assert [g.get("threads") for g in saved] == [1] == [g.get("threads") for g in summary]
    same, unknown = tmp_path / "same", tmp_path / "unknown"
    shutil.copytree(out, same)
    shutil.copytree(out, unknown)
    with h5py.File(unknown / "checkpoint.h5", "r+") as f:  # legs as written before threads were recorded
        f.attrs["legs"] = json.dumps([{k: v for k, v in g.items() if k != "threads"} for g in json.loads(
            f.attrs["legs"])])

    err = _resume(out, 2, monkeypatch, capsys)
    notes = [line for line in err.splitlines() if "threads per rank" in line]
    assert len(notes) == 1 and notes[0].startswith(NOTE.format(now=2, before=1)), err
    assert "not bit for bit" in notes[0] and "HPCFLOW_THREADS=1" in notes[0]
    saved, summary = _legs(out)
    assert [g.get("threads") for g in saved] == [1, 2] == [g.get("threads") for g in summary]

    assert "threads per rank" not in _resume(same, 1, monkeypatch, capsys)
    assert [g.get("threads") for g in _legs(same)[0]] == [1, 1]
    assert "threads per rank" not in _resume(unknown, 2, monkeypatch, capsys)
    assert [g.get("threads") for g in _legs(unknown)[1]] == [None, 2]


def test_a_leg_with_threads_that_are_not_a_count_is_a_damaged_checkpoint(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    assert main(["run", JOB, "--out", str(out), *SETS, "--set", "flow.steps=2"]) == 0
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        f.attrs["legs"] = json.dumps([{**g, "threads": 0} for g in json.loads(f.attrs["legs"])])
    capsys.readouterr()
    assert main(["run", JOB, "--out", str(out), *SETS, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "legs[0].threads = 0" in err and "damaged" in err, err


def test_the_note_names_hpcflow_threads_as_the_fix_with_the_last_legs_rank_count_where_it_differs():
    """At another rank count than the last leg's, the sums' order may change with the ranks themselves (an unclustered
    flow's): the same threads alone would not make it bit for bit, so the fix named is the leg's threads at the leg's
    rank count."""
    legs = [{"from_step": 0, "to_step": 2, "ranks": 2, "threads": 1}]
    same_ranks = ckpt.threads_note(legs, 2, "hpcflow run:", ranks=2)
    assert "not bit for bit" in same_ranks and "HPCFLOW_THREADS=1 resumes it bit for bit" in same_ranks
    other_ranks = ckpt.threads_note(legs, 2, "hpcflow run:", ranks=1)
    assert "not bit for bit" in other_ranks, other_ranks
    assert "(HPCFLOW_THREADS=1 on 2 ranks, as that leg ran, resumes it bit for bit)" in other_ranks, other_ranks
    assert ckpt.threads_note(legs, 1, "hpcflow run:", ranks=1) is None


def test_the_note_says_one_rank_and_one_thread_in_the_singular_and_the_flows_summation_order_size():
    """A flow at another thread count moves the last bit of σ (~1e-16 relative: README), which the note says."""
    legs = [{"from_step": 0, "to_step": 2, "ranks": 1, "threads": 2, "blas_kernel": "A"}]
    note = ckpt.threads_note(legs, 1, "hpcflow run:", ranks=2, kernel="A")
    assert note.startswith("hpcflow run: note: 1 thread per rank, where the checkpoint's last leg ran 2: "), note
    assert "(HPCFLOW_THREADS=2 on 1 rank, as that leg ran, resumes it bit for bit)" in note, note
    assert "summation order (~1e-16 a step, which later steps may amplify), not bit for bit" in note, note
    both = ckpt.threads_note([{**legs[0], "threads": 1}], 2, "p:", ranks=1, kernel="B")
    assert "2 threads per rank and BLAS kernel B, where the checkpoint's last leg ran 1 thread per rank" in both, both


def test_the_note_names_the_setting_given_as_the_fix():
    """`setting` names how the leg's thread count is given back (the network's job key, where the job sets it), in
    the same words otherwise; HPCFLOW_THREADS by default."""
    legs = [{"from_step": 0, "to_step": 2, "ranks": 2, "threads": 1, "blas_kernel": "A"}]
    note = ckpt.threads_note(legs, 2, "p:", ranks=1, kernel="A", setting="--set training.threads")
    assert note.endswith("not bit for bit (--set training.threads=1 on 2 ranks, as that leg ran, resumes it bit for "
                         "bit)"), note
    assert "HPCFLOW_THREADS" not in note, note
    assert ckpt.threads_note(legs, 2, "p:", ranks=1, kernel="A") == note.replace("--set training.threads",
                                                                                "HPCFLOW_THREADS")
