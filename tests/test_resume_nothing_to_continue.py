"""--resume of an --out without the checkpoint to continue (`output.refuse_no_checkpoint`): where an earlier run's
files are there, it said "CHECKPOINT does not exist ... run without --resume", and the run without --resume was then
refused as "already holds results ...; pass --force": advice in a circle. It says there is nothing to continue and
that --force without --resume starts over, which then runs; a checkpoint path that is a directory is called one."""

import os

import pytest

from hpcflow.cli import main
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points

#: command, job text, checkpoint, --set values of a short run
KINDS = {"run": (flow_points(60, 20) + DELTA_FLOW, "checkpoint.h5", []),
         "nn": (NN_POINTS + SMALL_NET + TINY_TRAINING, "checkpoint.pt", ["--set", "training.epochs=1"])}


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")


def _finished(tmp_path, verb):
    text, ckpt, sets = KINDS[verb]
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(text)
    argv = [verb, str(job), "--out", str(out), "--quiet", *sets]
    assert main(argv) == 0
    assert (out / ckpt).is_file() and (out / "summary.json").is_file()
    return argv, out, ckpt


@pytest.mark.parametrize("verb", ["run", "nn"])
def test_resume_without_a_checkpoint_beside_an_earlier_run_says_force_starts_over(tmp_path, capsys, verb):
    argv, out, ckpt = _finished(tmp_path, verb)
    os.unlink(out / ckpt)  # e.g. a run whose [checkpoint] wrote none, or a checkpoint removed by hand
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"hpcflow {verb}: error: --resume: {out / ckpt} does not exist"), err
    assert "nothing to continue" in err and "without --resume and with --force" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # refused before any work
    assert main(argv) == 2  # without --force the earlier run's files are kept, as the line says
    assert "--force" in capsys.readouterr().err
    assert main([*argv, "--force"]) == 0  # the advice runs: the job starts over
    assert (out / ckpt).is_file()


@pytest.mark.parametrize("verb", ["run", "nn"])
def test_resume_of_a_checkpoint_path_that_is_a_directory_says_so(tmp_path, capsys, verb):
    argv, out, ckpt = _finished(tmp_path, verb)
    os.unlink(out / ckpt)
    (out / ckpt).mkdir()
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{out / ckpt} is a directory" in err and "does not exist" not in err, err
    assert "nothing to continue" in err and "--force" in err, err
    assert (out / ckpt).is_dir()


def test_resume_where_nothing_is_still_says_run_without_resume(tmp_path, capsys):
    """An --out that does not exist: a plain run writes it, so that is the advice."""
    job, out = tmp_path / "job.toml", tmp_path / "none"
    job.write_text(KINDS["run"][0])
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith("run without --resume") and not out.exists(), err


@pytest.mark.parametrize("verb, other", [("run", "nn"), ("nn", "run")])
def test_resume_over_the_other_commands_run_names_the_command_that_continues_it(tmp_path, capsys, verb, other):
    other_argv, out, other_ckpt = _finished(tmp_path, other)
    text, ckpt, sets = KINDS[verb]
    job = tmp_path / "this.toml"
    job.write_text(text)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main([verb, str(job), "--out", str(out), "--quiet", *sets, "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and other_ckpt in err and f"'hpcflow {other} JOB --out DIR --resume'" in err, err
    assert "--force without" not in err and "with --force" not in err, err  # no advice that replaces that run
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert main([*other_argv, "--resume"]) == 0  # the command named continues (here: finds nothing left to do)
