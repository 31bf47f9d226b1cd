"""An output file whose write permissions refuse (EPERM: the file made immutable, EACCES: its directory made
read-only) while a run goes on: exit status 5 and one line naming the file, what to make writable and the command that
continues, the earlier file kept whole; for a network run's nn.h5, summary.json and job.toml as for its checkpoint.pt,
and for a flow run's summary.json."""

import errno
import os
import re
import shlex

import pytest

from hpcflow import atomic
from hpcflow.cli import main
from jobtexts import GAUSSIAN_KERNEL, NN_POINTS, SMALL_NET, flow_points

#: 200 train points, 2 epochs of the small network, no NTK, a checkpoint every epoch
NN = (NN_POINTS + SMALL_NET + "[training]\nepochs = 2\nbatch_size = 50\nlr = 3e-3\nthreads = 1\n"
      "[ntk]\nenabled = false\n[checkpoint]\nevery = 1\n")

FLOW = flow_points(60, 20, seed=4) + GAUSSIAN_KERNEL + "[flow]\ndt = 2.0\nsteps = 2\nloss = \"ultralocal\"\n"


def _refuse_replace_of(monkeypatch, name: str, code: int = errno.EPERM) -> list:
    """os.replace in hpcflow.atomic refuses every rename onto a file called `name` as the kernel does for an immutable
    target (chattr +i: EPERM, the temporary and the target named); the calls refused are listed."""
    replace, refused = os.replace, []

    def refusing(src, dst, *args, **kwargs):
        if os.path.basename(dst) == name:
            refused.append(dst)
            raise PermissionError(code, os.strerror(code), src, None, dst)
        return replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", refusing)
    return refused


@pytest.mark.parametrize("name", ["nn.h5", "summary.json", "job.toml"])
def test_a_network_output_the_permissions_refuse_ends_with_5_in_one_line_and_the_resume_finishes(
        tmp_path, monkeypatch, capsys, name):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(NN)
    assert main(["nn", str(job), "--out", str(out), "--quiet"]) == 0
    before = (out / name).read_bytes()
    capsys.readouterr()
    refused = _refuse_replace_of(monkeypatch, name)
    assert main(["nn", str(job), "--out", str(out), "--quiet", "--resume", "--set", "training.epochs=3"]) == 5
    monkeypatch.undo()
    assert refused
    err = capsys.readouterr().err
    ckpt = out / "checkpoint.pt"
    said = re.fullmatch(rf"hpcflow nn: error: cannot write {re.escape(str(out / name))} "
                        rf"\({os.strerror(errno.EPERM)}\); the last complete checkpoint {re.escape(str(ckpt))} "
                        rf"\((\d) epochs done\) is intact: make {re.escape(str(out))} writable again \(its "
                        rf"permissions; chattr -i {re.escape(str(out))} if made immutable\), then continue with: "
                        r"(.+)\n", err)
    assert said, err
    assert int(said.group(1)) in (2, 3)
    assert (out / name).read_bytes() == before  # the earlier file kept whole, no temporary beside it
    assert not [e for e in os.listdir(out) if atomic.TMP_MARK in e]
    again = shlex.split(said.group(2))
    assert again == ["hpcflow", "nn", str(job), "--out", str(out), "--quiet", "--resume", "--set",
                     "training.epochs=3"]
    assert main(again[1:]) == 0
    import json

    assert json.loads((out / "summary.json").read_text())["epochs"] == 3


def test_a_flow_runs_summary_the_permissions_refuse_ends_with_5_in_one_line(tmp_path, monkeypatch, capsys):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    _refuse_replace_of(monkeypatch, "summary.json", errno.EACCES)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 5
    monkeypatch.undo()
    err = capsys.readouterr().err
    said = re.fullmatch(rf"hpcflow run: error: cannot write {re.escape(str(out / 'summary.json'))} "
                        rf"\({os.strerror(errno.EACCES)}\); the last complete checkpoint "
                        rf"{re.escape(str(out / 'checkpoint.h5'))} \(2 steps done\) is intact: make "
                        rf"{re.escape(str(out))} writable again \(its permissions\), then continue with: (.+)\n", err)
    assert said, err
    assert not (out / "summary.json").exists()
    assert main(shlex.split(said.group(1))[1:]) == 0
    assert (out / "summary.json").is_file()


def test_the_file_or_the_directory_that_refuses_is_the_one_to_make_writable(tmp_path, monkeypatch):
    """denied_by: the directory where it may not be written, else the existing file that may not be (immutable)."""
    target = tmp_path / "summary.json"
    target.write_text("{}")
    access = os.access
    for locked, want in ((str(tmp_path), str(tmp_path)), (str(target), str(target)), (None, str(tmp_path))):
        monkeypatch.setattr(atomic.os, "access", lambda p, mode, **kw: p != locked and access(p, mode, **kw))
        assert atomic.denied_by(str(target)) == want
    monkeypatch.undo()
    _refuse_replace_of(monkeypatch, "summary.json")
    monkeypatch.setattr(atomic.os, "access", lambda p, mode, **kw: p != str(target) and access(p, mode, **kw))
    from hpcflow.errors import WriteFailed
    from hpcflow.jobs.output import write_json

    with pytest.raises(WriteFailed) as exc:
        write_json(target, {"x": 1})
    assert str(exc.value) == (f"cannot write {target} ({os.strerror(errno.EPERM)}); make {target} writable again "
                              f"(its permissions; chattr -i {target} if made immutable), then run it again")
    assert exc.value.exit_status == 5 and target.read_text() == "{}"
