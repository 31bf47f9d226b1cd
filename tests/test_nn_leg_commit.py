"""Each network checkpoint leg records the git commit of the hpcflow that ran it (`legs[].git_commit`, rank 0's, null
outside a git checkout), as the flow's legs do (tests/test_leg_commit.py). An `hpcflow nn --resume` by other code than
the checkpoint's last leg (another commit or hpcflow_version) says so in one line naming both and trains on as before,
bit for bit; checkpoints whose legs predate the record still resume, without a note; a leg whose git_commit is not a
text is a damaged checkpoint (exit 2, one line, the file unchanged)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow import __version__  # noqa: E402
from hpcflow import provenance as prov  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from jobtexts import NN_POINTS  # noqa: E402
# (tests/ is on sys.path) the tree hpcflow was imported from, its HEAD asked of git, and a commit of other code
import test_leg_commit  # noqa: E402
from test_leg_commit import OTHER, ROOT, _head  # noqa: E402

_quiet = test_leg_commit._quiet  # (autouse) every test here runs one thread, quietly, on the numpy backend

HERE = "fedcba9876543210fedcba9876543210fedcba98"
JOB = NN_POINTS + """[model]
depth = 2
width = 8
activation = "gelu"
[training]
epochs = 1
batch_size = 70
lr = 3e-3
threads = 1
[checkpoint]
every = 1
"""


def _ckpt(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def _set_legs(out, edit):
    state = _ckpt(out)
    state["legs"] = [edit(dict(g)) for g in state["legs"]]
    torch.save(state, out / "checkpoint.pt")


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _nn(tmp_path, out, epochs, *args):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    return main(["nn", str(job), "--out", str(out), "--quiet", "--set", f"training.epochs={epochs}", *args])


def _notes(err):
    return [line for line in err.splitlines() if "note: hpcflow" in line]


def test_a_leg_records_the_commit_of_its_hpcflow(tmp_path, capsys):
    out = tmp_path / "out"
    assert _nn(tmp_path, out, 1) == 0
    head = _head()
    assert head is not None and len(head.removesuffix("-dirty")) == 40  # the tests run from a git checkout
    assert [g["git_commit"] for g in _ckpt(out)["legs"]] == [head] == [g["git_commit"] for g in _summary(out)["legs"]]
    assert _summary(out)["provenance"]["git_commit"] == head
    capsys.readouterr()
    assert _nn(tmp_path, out, 2, "--resume") == 0
    assert _notes(capsys.readouterr().err) == []  # the same code as the last leg: nothing to say
    assert [g["git_commit"] for g in _ckpt(out)["legs"]] == [head, head]


def test_a_resume_by_other_code_says_so_once_and_trains_on_bit_for_bit(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prov, "git_commit", lambda: HERE)
    out, whole = tmp_path / "out", tmp_path / "whole"
    assert _nn(tmp_path, out, 1) == 0
    _set_legs(out, lambda g: {**g, "git_commit": OTHER})  # as written by other code
    capsys.readouterr()
    assert _nn(tmp_path, out, 3, "--resume") == 0
    notes = _notes(capsys.readouterr().err)
    assert notes == [f"hpcflow nn: note: hpcflow {__version__} (commit fedcba987654), where the checkpoint's last "
                     f"leg ran hpcflow {__version__} (commit 0123456789ab): the epochs from 1 on come from other code "
                     "than those before, whose numerics may differ from the uninterrupted run's; summary.json's "
                     "provenance.git_commit is this run's, legs[].git_commit each leg's"], notes
    assert [g["git_commit"] for g in _ckpt(out)["legs"]] == [OTHER, HERE] == \
        [g["git_commit"] for g in _summary(out)["legs"]]

    assert _nn(tmp_path, whole, 3) == 0  # uninterrupted: the resumed run's files bit for bit
    got, ref = datasets(out / "nn.h5"), datasets(whole / "nn.h5")
    assert got.keys() == ref.keys() and len(ref["history/sigma_val"]) == 4
    for key in sorted(set(got) - NN_TIMINGS):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    a, b = _ckpt(out)["train"], _ckpt(whole)["train"]
    assert a["model"].keys() == b["model"].keys() and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for pid, st in b["optimizer"]["state"].items():
        assert all(torch.equal(t, a["optimizer"]["state"][pid][n]) for n, t in st.items())


def test_another_version_with_the_commit_unknown_is_said_too(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prov, "git_commit", lambda: HERE)
    out = tmp_path / "out"
    assert _nn(tmp_path, out, 1) == 0
    _set_legs(out, lambda g: {**g, "git_commit": None, "hpcflow_version": "0.0.1"})  # outside a git checkout
    capsys.readouterr()
    assert _nn(tmp_path, out, 2, "--resume") == 0
    notes = _notes(capsys.readouterr().err)
    assert len(notes) == 1 and notes[0].startswith(
        f"hpcflow nn: note: hpcflow {__version__} (commit fedcba987654), where the checkpoint's last leg ran hpcflow "
        "0.0.1 (commit unknown): the epochs from 1 on"), notes


def test_a_checkpoint_whose_legs_predate_the_commit_resumes_without_a_note(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(prov, "git_commit", lambda: OTHER)
    out = tmp_path / "out"
    assert _nn(tmp_path, out, 1) == 0
    _set_legs(out, lambda g: {k: v for k, v in g.items() if k != "git_commit"})
    capsys.readouterr()
    assert _nn(tmp_path, out, 2, "--resume") == 0
    assert _notes(capsys.readouterr().err) == []  # (not known: nothing to compare)
    assert [g.get("git_commit", "absent") for g in _ckpt(out)["legs"]] == ["absent", OTHER]


@pytest.mark.parametrize("bad", [5, ["abc"]])
def test_a_leg_whose_commit_is_not_a_text_is_a_damaged_checkpoint(tmp_path, capsys, bad):
    out = tmp_path / "out"
    assert _nn(tmp_path, out, 1) == 0
    _set_legs(out, lambda g: {**g, "git_commit": bad})
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert _nn(tmp_path, out, 2, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"legs[0].git_commit = {bad!r}" in err[0] and "damaged" in err[0], err
    assert str(out / "checkpoint.pt") in err[0] and "Traceback" not in err[0]
    assert (out / "checkpoint.pt").read_bytes() == before


def test_on_two_ranks_the_note_is_said_once_and_rank_0s_commit_recorded(tmp_path):
    from test_parallel import mpiexec

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    env = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", HPCFLOW_BACKEND="numpy")

    def nn(epochs, *args):
        p = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "nn", str(job), "--out", str(out),
                            "--quiet", "--set", f"training.epochs={epochs}", *args], capture_output=True, text=True,
                           env=env, timeout=300, cwd=str(tmp_path))
        assert p.returncode == 0, p.stderr[-2000:]
        return _notes(p.stderr)

    assert nn(1) == []
    _set_legs(out, lambda g: {**g, "git_commit": OTHER})
    notes = nn(2, "--resume")
    head = _head()
    said = head[:12] + ("-dirty" if head.endswith("-dirty") else "")  # (the note shows 12 digits and the suffix)
    assert len(notes) == 1 and notes[0].startswith(f"hpcflow nn: note: hpcflow {__version__} (commit "
                                                   f"{said}), where the checkpoint's last leg ran"), notes
    assert [(g["ranks"], g["git_commit"]) for g in _ckpt(out)["legs"]] == [(2, OTHER), (2, _head())]
