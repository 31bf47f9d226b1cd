"""A checkpoint leg's texts are what a run writes there, else the checkpoint is damaged (exit 2, one line, the file
unchanged): hpcflow_version a string (null in a version 1 checkpoint's leg), backend "numpy" or "cupy", git_commit a
commit hash (hex, "-dirty" after it where the tree had uncommitted edits); `legs` is missing only from a
version 1 file. The flow's checkpoint and the network's alike.

The commit a leg records is hpcflow's own: $GIT_DIR and the other GIT_* variables of the caller do not change it, and
uncommitted edits to tracked files of the checkout read "-dirty" after HEAD."""

import os
import shutil
import subprocess
import sys

import h5py
import pytest

from hpcflow.cli import main
from jobtexts import DELTA_FLOW, flow_points
from test_leg_commit import OTHER, ROOT, _legs, _set_legs

FLOW = flow_points(60, 20) + DELTA_FLOW
HERE = "fedcba9876543210fedcba9876543210fedcba98"
ENV = {"HPCFLOW_THREADS": "1", "HPCFLOW_QUIET": "1", "HPCFLOW_BACKEND": "numpy"}
NO_GIT = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)


def _first_run(base, text, command, *args):
    """The job `text` in BASE/job.toml and BASE/out of its run by hpcflow `command` (copy it before editing)."""
    job, out = base / "job.toml", base / "out"
    job.write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in ENV.items():
            mp.setenv(k, v)
        assert main([command, str(job), "--out", str(out), "--quiet", *args]) == 0
    return job, out


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    """A job and the --out of its 2-step run."""
    return _first_run(tmp_path_factory.mktemp("flow"), FLOW, "run", "--set", "flow.steps=2")


def _copy(flow_run, tmp_path):
    job, out = flow_run
    shutil.copytree(out, tmp_path / "out")
    return job, tmp_path / "out"


def _refused(job, out, capsys):
    """The one line a --resume of `out` says (exit 2), the checkpoint's bytes unchanged."""
    before = (out / "checkpoint.h5").read_bytes()
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert (out / "checkpoint.h5").read_bytes() == before
    return err[0]


@pytest.mark.parametrize("key, value, said", [
    ("hpcflow_version", 5, "legs[0].hpcflow_version = 5 is not a string"),
    ("hpcflow_version", ["0.1.0"], 'legs[0].hpcflow_version = ["0.1.0"] is not a string'),
    ("git_commit", "abc\ndef", 'legs[0].git_commit = "abc\\ndef" is not a commit hash'),
    ("git_commit", "", 'legs[0].git_commit = "" is not a commit hash'),
    ("git_commit", "abc12", 'legs[0].git_commit = "abc12" is not a commit hash'),
    ("git_commit", OTHER + "-edited", f'legs[0].git_commit = "{OTHER}-edited" is not a commit hash'),
    ("git_commit", "zz" + OTHER[2:], "is not a commit hash"),
    ("backend", "torch", 'legs[0].backend = "torch" is not "numpy" or "cupy"'),
    ("backend", "", 'legs[0].backend = "" is not "numpy" or "cupy"'),
    ("backend", 1, "legs[0].backend = 1 is not a string"),
])
def test_a_leg_text_no_run_writes_is_a_damaged_checkpoint(flow_run, tmp_path, capsys, key, value, said):
    job, out = _copy(flow_run, tmp_path)
    _set_legs(out, [{**g, key: value} for g in _legs(out)])
    line = _refused(job, out, capsys)
    assert said in line and "the checkpoint is damaged" in line and str(out / "checkpoint.h5") in line, line


@pytest.mark.parametrize("edit", [
    {"hpcflow_version": None},  # (a version 1 checkpoint's steps, resumed)
    {"git_commit": None}, {"git_commit": OTHER + "-dirty"}, {"git_commit": OTHER[:7]}, {"git_commit": "ab" * 32},
    {"backend": None}, {"backend": "cupy"},
])
def test_a_leg_text_a_run_writes_resumes(flow_run, tmp_path, capsys, edit):
    job, out = _copy(flow_run, tmp_path)
    _set_legs(out, [{**g, **edit} for g in _legs(out)])
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=3"]) == 0
    assert [g["to_step"] for g in _legs(out)] == [2, 3]
    assert all(_legs(out)[0][k] == v for k, v in edit.items())


def test_a_version_2_checkpoint_without_legs_is_refused(flow_run, tmp_path, capsys):
    job, out = _copy(flow_run, tmp_path)
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        assert int(f.attrs["schema_version"]) == 2
        del f.attrs["legs"]
    line = _refused(job, out, capsys)
    assert "attribute legs is missing" in line and "schema_version 2" in line, line


def test_the_note_shows_a_dirty_commit_and_two_dirty_trees_read_alike():
    from hpcflow.checkpoint import code_note

    legs = [{"to_step": 2, "git_commit": OTHER, "hpcflow_version": "0.1.0"}]
    note = code_note(legs, "p:", OTHER + "-dirty", "0.1.0")
    assert note.startswith("p: note: hpcflow 0.1.0 (commit 0123456789ab-dirty), where the checkpoint's last leg ran "
                           "hpcflow 0.1.0 (commit 0123456789ab): the steps from 2 on"), note
    assert code_note([{**legs[0], "git_commit": OTHER + "-dirty"}], "p:", OTHER + "-dirty", "0.1.0") is None
    short = code_note([{**legs[0], "git_commit": "abc1234-dirty"}], "p:", "abc1234", "0.1.0")
    assert "(commit abc1234), where" in short and "ran hpcflow 0.1.0 (commit abc1234-dirty):" in short, short


# -- the network's checkpoint ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nn_run(tmp_path_factory):
    from test_nn_leg_commit import JOB

    return _first_run(tmp_path_factory.mktemp("nn"), JOB, "nn", "--set", "training.epochs=1")


@pytest.mark.parametrize("edit, said", [
    (lambda s: s["legs"][0].update(hpcflow_version=5), "legs[0].hpcflow_version = 5 (not a string"),
    (lambda s: s["legs"][0].update(git_commit="abc\ndef"), "legs[0].git_commit = 'abc\\ndef' (not a commit hash"),
    (lambda s: s["legs"][0].update(git_commit=""), "legs[0].git_commit = '' (not a commit hash"),
    (lambda s: s["legs"][0].update(backend="torch"), "legs[0].backend = 'torch' (not \"numpy\" or \"cupy\""),
    (lambda s: s.pop("legs"), "entry legs is missing"),
])
def test_a_network_leg_text_no_run_writes_is_a_damaged_checkpoint(nn_run, tmp_path, capsys, edit, said):
    import torch

    job, base = nn_run
    out = tmp_path / "out"
    shutil.copytree(base, out)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["version"] >= 2 and "legs" in state
    edit(state)
    torch.save(state, out / "checkpoint.pt")
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(out), "--quiet", "--set", "training.epochs=2", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0] and "damaged" in err[0] and "Traceback" not in err[0], err
    assert (out / "checkpoint.pt").read_bytes() == before


# -- the commit recorded -----------------------------------------------------------------------------------------


def _git(repo, *args):
    p = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       capture_output=True, text=True, env=NO_GIT, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def _recorded(pythonpath, **env):
    """hpcflow.provenance.git_commit() of the hpcflow under `pythonpath`, asked in a fresh process with `env`."""
    p = subprocess.run([sys.executable, "-c", "from hpcflow.provenance import git_commit; print(git_commit())"],
                       capture_output=True, text=True, timeout=60, cwd=str(pythonpath),
                       env=dict(os.environ, PYTHONPATH=str(pythonpath), **env))
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def _other_repo(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    _git(other, "init", "-q")
    (other / "a.txt").write_text("a\n")
    _git(other, "add", "a.txt")
    _git(other, "commit", "-q", "-m", "a")
    return other


def test_git_variables_of_the_caller_do_not_change_the_commit_recorded(tmp_path):
    head = _git(ROOT, "rev-parse", "HEAD")
    own = head + ("-dirty" if _git(ROOT, "status", "--porcelain", "--untracked-files=no", "--", "hpcflow",
                                   "setup.cfg", "pyproject.toml") else "")
    other = _other_repo(tmp_path)
    assert _git(other, "rev-parse", "HEAD") != head
    assert _recorded(ROOT, GIT_DIR=str(other / ".git")) == own
    assert _recorded(ROOT, GIT_DIR=str(other / ".git"), GIT_WORK_TREE=str(other)) == own
    assert _recorded(ROOT, GIT_INDEX_FILE=str(tmp_path / "no-index")) == own


def test_uncommitted_edits_read_dirty_and_a_clean_tree_reads_head(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(os.path.join(ROOT, "hpcflow"), src / "hpcflow", ignore=shutil.ignore_patterns("__pycache__"))
    (src / "README.md").write_text("docs\n")
    _git(src, "init", "-q")
    _git(src, "add", "hpcflow", "README.md")
    _git(src, "commit", "-q", "-m", "copy")
    head = _git(src, "rev-parse", "HEAD")
    assert _recorded(src) == head  # clean: HEAD alone
    (src / "untracked.txt").write_text("not tracked\n")
    assert _recorded(src) == head  # an untracked file is not an edit of the code
    (src / "README.md").write_text("docs edited\n")
    assert _recorded(src) == head  # nor is an edit of the docs
    edited = src / "hpcflow" / "provenance.py"
    edited.write_text(edited.read_text() + "\n# an uncommitted edit\n")
    assert _recorded(src) == head + "-dirty"
    assert _recorded(src, GIT_DIR=str(_other_repo(tmp_path) / ".git")) == head + "-dirty"
    _git(src, "commit", "-q", "-am", "edit")
    assert _recorded(src) == _git(src, "rev-parse", "HEAD") != head
