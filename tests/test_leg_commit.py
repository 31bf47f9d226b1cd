"""Each checkpoint leg records the git commit of the hpcflow that ran it (`legs[].git_commit`, null outside a git
checkout). A resume by other code than the checkpoint's last leg (another commit or hpcflow_version) says so in one
line naming both and continues as before; where a side is unknown nothing is compared; checkpoints whose legs
predate the record still resume; a leg whose git_commit is not a text is a damaged checkpoint (exit 2, one line)."""

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

import hpcflow
from hpcflow import __version__
from hpcflow import provenance as prov
from hpcflow.cli import main
from jobtexts import DELTA_FLOW, flow_points

FLOW = flow_points(60, 20) + DELTA_FLOW
#: the source tree the hpcflow under test was imported from
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(hpcflow.__file__)))
OTHER = "0123456789abcdef0123456789abcdef01234567"  # a commit of other code than this


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")
    monkeypatch.setenv("HPCFLOW_BACKEND", "numpy")


def _head():
    """The commit the hpcflow under test records, asked of git here: HEAD of the tree it was imported from (the suite
    runs in a git checkout of it), "-dirty" after it where `git status` lists a tracked file of its code that differs from it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    p = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and len(p.stdout.strip()) == 40, p.stderr
    s = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", "hpcflow",
                        "setup.cfg", "pyproject.toml"], capture_output=True, text=True, env=env)
    assert s.returncode == 0, s.stderr
    return p.stdout.strip() + ("-dirty" if s.stdout.strip() else "")


def _legs(out):
    with h5py.File(out / "checkpoint.h5", "r") as f:
        return json.loads(f.attrs["legs"])


def _set_legs(out, legs):
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        f.attrs["legs"] = json.dumps(legs)


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _run(job, out, *args):
    return main(["run", str(job), "--out", str(out), "--quiet", *args])


def test_a_leg_records_the_commit_of_its_hpcflow_and_a_copy_outside_git_records_null(tmp_path, capsys):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert _run(job, out, "--set", "flow.steps=2") == 0
    head = _head()
    assert [g["git_commit"] for g in _legs(out)] == [head] == [g["git_commit"] for g in _summary(out)["legs"]]
    assert _summary(out)["provenance"]["git_commit"] == head

    # the same hpcflow as a copy outside any git checkout (an installed package): its leg's commit is not known
    copy = tmp_path / "copy"
    shutil.copytree(os.path.join(ROOT, "hpcflow"), copy / "hpcflow", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(copy), HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", HPCFLOW_BACKEND="numpy")
    p = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--resume", "--set",
                        "flow.steps=3"], capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "note: hpcflow" not in p.stderr  # (one side unknown: nothing to compare)
    assert [g["git_commit"] for g in _legs(out)] == [head, None]
    assert _summary(out)["provenance"]["git_commit"] is None


def test_a_resume_by_other_code_says_so_once_and_continues_as_before(tmp_path, monkeypatch, capsys):
    here = "fedcba9876543210fedcba9876543210fedcba98"
    monkeypatch.setattr(prov, "git_commit", lambda: here)
    job, out, whole = tmp_path / "job.toml", tmp_path / "out", tmp_path / "whole"
    job.write_text(FLOW)
    assert _run(job, out, "--set", "flow.steps=2") == 0
    _set_legs(out, [{**g, "git_commit": OTHER} for g in _legs(out)])  # as written by other code
    capsys.readouterr()
    assert _run(job, out, "--resume", "--set", "flow.steps=4") == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note: hpcflow" in line]
    assert notes == [f"hpcflow run: note: hpcflow {__version__} (commit fedcba987654), where the checkpoint's last "
                     f"leg ran hpcflow {__version__} (commit 0123456789ab): the steps from 2 on come from other code "
                     "than those before, whose numerics may differ from the uninterrupted run's; summary.json's "
                     "provenance.git_commit is this run's, legs[].git_commit each leg's"], notes
    assert [g["git_commit"] for g in _legs(out)] == [OTHER, here] == [g["git_commit"] for g in _summary(out)["legs"]]
    assert _run(job, whole, "--set", "flow.steps=4") == 0
    with h5py.File(out / "checkpoint.h5", "r") as a, h5py.File(whole / "checkpoint.h5", "r") as b:
        assert a.attrs["step"] == b.attrs["step"] == 4
        for name in ("history/sigma_train", "history/sigma_test", "history/dt", "train/g", "test/g"):
            np.testing.assert_allclose(a[name][()], b[name][()], rtol=1e-12, atol=0, err_msg=name)
    capsys.readouterr()
    assert _run(job, out, "--resume", "--set", "flow.steps=5") == 0
    assert "note: hpcflow" not in capsys.readouterr().err  # the same code as the last leg: nothing to say


def test_a_checkpoint_whose_legs_predate_the_commit_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prov, "git_commit", lambda: OTHER)
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert _run(job, out, "--set", "flow.steps=2") == 0
    _set_legs(out, [{k: v for k, v in g.items() if k != "git_commit"} for g in _legs(out)])
    capsys.readouterr()
    assert _run(job, out, "--resume", "--set", "flow.steps=3") == 0
    assert "note: hpcflow" not in capsys.readouterr().err  # (not known: nothing to compare)
    assert [g.get("git_commit", "absent") for g in _legs(out)] == ["absent", OTHER]


def test_a_leg_whose_commit_is_not_a_text_is_a_damaged_checkpoint(tmp_path, capsys):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert _run(job, out, "--set", "flow.steps=2") == 0
    _set_legs(out, [{**g, "git_commit": 5} for g in _legs(out)])
    before = (out / "checkpoint.h5").read_bytes()
    capsys.readouterr()
    assert _run(job, out, "--resume", "--set", "flow.steps=3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "legs[0].git_commit = 5 is not a string" in err[0] and "Traceback" not in err[0], err
    assert (out / "checkpoint.h5").read_bytes() == before


@pytest.mark.parametrize("leg, commit, version, said", [
    ({"to_step": 3, "git_commit": OTHER, "hpcflow_version": "0.1.0"}, OTHER, "0.1.0", None),
    ({"to_step": 3, "git_commit": None, "hpcflow_version": "0.1.0"}, OTHER, "0.1.0", None),
    ({"to_step": 3, "git_commit": OTHER, "hpcflow_version": "0.1.0"}, None, "0.1.0", None),
    ({"to_step": 3, "hpcflow_version": "0.1.0"}, OTHER, "0.1.0", None),
    ({"to_step": 3, "hpcflow_version": None}, OTHER, "0.2.0", None),  # a version 1 checkpoint's steps
    ({"to_step": 3, "hpcflow_version": "0.1.0"}, OTHER, "0.2.0",
     "p: note: hpcflow 0.2.0 (commit 0123456789ab), where the checkpoint's last leg ran hpcflow 0.1.0 "
     "(commit unknown): the steps from 3 on"),
    ({"to_step": 3, "git_commit": "abc", "hpcflow_version": "0.1.0"}, OTHER, "0.1.0",
     "p: note: hpcflow 0.1.0 (commit 0123456789ab), where the checkpoint's last leg ran hpcflow 0.1.0 (commit abc): "
     "the steps from 3 on"),
])
def test_the_note_compares_only_what_both_sides_know(leg, commit, version, said):
    from hpcflow.checkpoint import code_note

    note = code_note([{"to_step": 0, "git_commit": "abc"}, leg], "p:", commit, version)
    assert (note if note is None else note.split(" come from")[0]) == said
