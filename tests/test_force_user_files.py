"""--force replaces only the files an earlier run wrote: a file named as a run's output (job.toml, summary.json,
checkpoint.h5, nn.h5, model.pt, ...) that hpcflow did not write is a user's, refused in one line (exit 2) before any
work, with or without --force, and left as it was; so is running the job file that is --out's own job.toml. An
earlier run's files (damaged ones too) are still replaced."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.errors import OutputPathError
from hpcflow.jobs import output, replaced
from jobtexts import DELTA_FLOW, flow_points

FLOW = flow_points(60, 20) + DELTA_FLOW
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")


def _files(path) -> dict:
    """Every entry of directory `path` (the lock file left out) -> its bytes."""
    return {p.name: p.read_bytes() for p in path.iterdir() if p.name != ".hpcflow.lock"}


def _refused(capsys, *needles) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and all(n in err for n in needles), err
    return err


@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """A finished flow run's directory (its files as hpcflow wrote them), for copies."""
    base = tmp_path_factory.mktemp("earlier")
    job, out = base / "flow.toml", base / "out"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    return out


def test_the_users_own_job_file_in_out_is_not_replaced(tmp_path, capsys):
    """The job file the user wrote, saved as --out/job.toml and run from there: refused with and without --force
    (it was replaced by the run's job.toml with --force), naming the job file and the fix; nothing touched. So is
    its submission (checked or queued), which said only that a user's job.toml is in the way."""
    ud = tmp_path / "ud"
    ud.mkdir()
    shutil.copy(os.path.join(ROOT, "jobs", "quickstart.toml"), ud / "job.toml")
    (ud / "notes.txt").write_text("notes\n")
    before = _files(ud)
    for command, force in [(c, f) for c in (["run"], ["submit", "--executor", "local", "--check"],
                                             ["submit", "--executor", "local"]) for f in ([], ["--force"])]:
        assert main([command[0], str(ud / "job.toml"), "--out", str(ud), "--quiet", *command[1:], *force]) == 2
        _refused(capsys, f"the job file {ud / 'job.toml'} is the job.toml", "copy the job file elsewhere")
        assert _files(ud) == before and not (tmp_path / "ud_logs").exists()
    other = tmp_path / "other.toml"  # another job file: the user's job.toml there is refused as a user's file
    other.write_text(FLOW)
    assert main(["run", str(other), "--out", str(ud), "--quiet", "--force"]) == 2
    _refused(capsys, f"{ud / 'job.toml'} is named as a file a run writes", "move it out of", "another --out")
    assert _files(ud) == before


@pytest.mark.parametrize("names", [("model.pt", "nn.h5"), ("summary.json",), ("checkpoint.h5",), ("job.toml",)])
def test_a_users_files_named_as_outputs_are_refused_with_force(tmp_path, capsys, names):
    """A user's files of run outputs' names, of the flow's kind or another's: --force refused (it removed them),
    one line naming each, nothing written (no job.toml, no summary.json)."""
    job, ud = tmp_path / "tiny.toml", tmp_path / "ud"
    job.write_text(FLOW)
    ud.mkdir()
    for name in names:
        if name.endswith(".h5"):  # a real HDF5 file, not hpcflow's
            with h5py.File(ud / name, "w") as f:
                f["x"] = np.arange(3)
                f.attrs["version"] = "1.0"
        elif name == "summary.json":
            (ud / name).write_text(json.dumps({"status": "finished", "loss": 0.1}))
        else:
            (ud / name).write_bytes(b"mine " + name.encode())
    (ud / "notes.txt").write_text("mine")
    before = _files(ud)
    for command in (["run"], ["submit", "--executor", "local", "--check"]):
        assert main([command[0], str(job), "--out", str(ud), *command[1:], "--force"]) == 2
        _refused(capsys, *(str(ud / n) for n in names), "no mark of an hpcflow run", "--force")
        assert _files(ud) == before


def test_nn_refuses_a_users_model_files(tmp_path, capsys):
    """`hpcflow nn --force` over a user's model.pt and model.pt.json (a network's files that carry no mark): refused
    as well, kept."""
    from jobtexts import NN_POINTS, SMALL_NET

    job, ud = tmp_path / "net.toml", tmp_path / "ud"
    job.write_text(NN_POINTS + SMALL_NET)
    ud.mkdir()
    (ud / "model.pt").write_bytes(b"weights")
    (ud / "model.pt.json").write_text("{}")
    before = _files(ud)
    assert main(["nn", str(job), "--out", str(ud), "--force", "--quiet"]) == 2
    _refused(capsys, str(ud / "model.pt"), str(ud / "model.pt.json"))
    assert _files(ud) == before


def test_the_users_job_file_by_another_path_is_refused_and_a_runs_own_reruns_in_place(earlier, tmp_path, capsys):
    """A user's --out/job.toml run through a link to it: refused as itself; a run's own job.toml (its header) run
    again into its directory with --force, as `hpcflow.analysis.fig2` advises, still replaces that run."""
    ud = tmp_path / "ud"
    ud.mkdir()
    (ud / "job.toml").write_text(FLOW)
    os.symlink(ud / "job.toml", tmp_path / "link.toml")
    assert main(["run", str(tmp_path / "link.toml"), "--out", str(ud), "--quiet", "--force"]) == 2
    _refused(capsys, f"the job file {tmp_path / 'link.toml'} (that is, {ud / 'job.toml'}) is the job.toml")
    assert _files(ud) == {"job.toml": FLOW.encode()}
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    summary = (out / "summary.json").read_bytes()
    assert main(["run", str(out / "job.toml"), "--out", str(out), "--quiet", "--force", "--set", "flow.steps=2"]) == 0
    assert (out / "summary.json").read_bytes() != summary and "steps = 2" in (out / "job.toml").read_text()


def test_an_earlier_runs_files_are_still_replaced_damaged_ones_too(earlier, tmp_path, capsys):
    """What an earlier run wrote is replaced by --force as before: whole, beside its job.toml when cut short, and cut
    short without job.toml or summary.json where the file's head holds its writer's mark; a user's file beside them
    stays."""
    job = tmp_path / "flow.toml"
    job.write_text(FLOW)
    for case in ("whole", "cut, job.toml there", "cut, alone"):
        out = tmp_path / case.replace(", ", "_").replace(" ", "")
        shutil.copytree(earlier, out)
        ckpt = out / "checkpoint.h5"
        old = ckpt.read_bytes()
        if case != "whole":
            ckpt.write_bytes(old[:len(old) // 3])  # cut short past its root attributes (a killed copy)
        if case == "cut, alone":
            (out / "job.toml").unlink()
            (out / "summary.json").unlink()
        (out / "notes.txt").write_text("mine")
        assert main(["run", str(job), "--out", str(out), "--quiet", "--force"]) == 0, capsys.readouterr().err
        assert ckpt.read_bytes() != old[:len(old) // 3] and (out / "notes.txt").read_text() == "mine"
        assert sorted(_files(out)) == ["checkpoint.h5", "job.toml", "notes.txt", "summary.json"]


def test_which_files_count_as_a_runs_own(earlier, tmp_path):
    """`run_files_in`: by job.toml's header (its kind's files then whatever they hold), else by each file's mark;
    model.pt(.json) beside a run's nn.h5 only."""
    from hpcflow.nn.checkpoint import FORMAT

    assert output.NN_CHECKPOINT_FORMAT == FORMAT  # (the mark read without torch)
    d = tmp_path / "d"
    d.mkdir()
    assert output.run_files_in(d) == {}
    (d / "model.pt").write_bytes(b"weights")
    (d / "model.pt.json").write_text("{}")
    (d / "checkpoint.pt").write_bytes(b"PK not a checkpoint")
    (d / "summary.json").write_text("{cut")
    assert output.run_files_in(d) == dict.fromkeys(["summary.json", "model.pt", "model.pt.json",
                                                    "checkpoint.pt"], False)
    output.write_hdf5(d / "nn.h5", {"x": np.arange(2)})  # hpcflow's writer stamps hpcflow_version
    (d / "checkpoint.pt").write_bytes(b"PK...archive/data.pkl...hpcflow.nn_checkpoint")  # its head: the format
    (d / "summary.json").write_text('{"b": 1, "hpcflow_version": "0.1.0", "c"')  # cut short past the mark
    assert all(output.run_files_in(d).values())
    (d / "nn.h5").write_bytes(b"\x89HDF\r\n\x1a\n")  # cut short before its attributes, no job.toml: not known
    got = output.run_files_in(d)
    assert not got["nn.h5"] and not got["model.pt"] and got["checkpoint.pt"] and got["summary.json"]
    (d / "job.toml").write_text(open(earlier / "job.toml").read().replace('kind = "flow"', 'kind = "nn"'))
    assert all(output.run_files_in(d).values())  # a network run's job.toml: its kind's files are its own
    shutil.copy(earlier / "job.toml", d / "job.toml")  # a flow run's: nn.h5 must carry its own mark
    got = output.run_files_in(d)
    assert got["job.toml"] and not got["nn.h5"] and not got["model.pt"]
    (d / "job.toml").write_text("# my job\n" + open(earlier / "job.toml").read())
    assert not output.run_files_in(d)["job.toml"]


def test_a_failed_set_aside_keeps_every_earlier_file(earlier, tmp_path, monkeypatch):
    """A rename that fails while an earlier run's files are set aside puts the moved ones back and removes none:
    the files not moved yet were deleted as if this run had written them."""
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    before = _files(out)
    rename, moved = os.rename, []

    def failing(src, dst):
        if moved:
            raise PermissionError(1, "Operation not permitted")
        moved.append(src)
        rename(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(OutputPathError, match="cannot set the earlier run's"):
        replaced.set_aside(str(out))
    monkeypatch.undo()
    assert moved and _files(out) == before and replaced.leftovers(out) == []
