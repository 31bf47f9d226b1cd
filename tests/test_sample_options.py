"""`hpcflow sample`'s options and lines: integer options written otherwise are told to be written in digits (as the
job values of `hpcflow run` and the counts of tune and submit are; --n alone takes 1e5), --n echoes what was typed,
memory that runs out mid-sample is not told to resume, and outputs.md's PointSet shapes fit --dim."""

import os
import re

import h5py
import pytest

from hpcflow.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("args, option, example", [(["--dim", "2.0"], "--dim", "3"),
                                                   (["--threads", "2.0"], "--threads", "4"),
                                                   (["--seed", "2.0"], "--seed", "0"),
                                                   (["--chart", "0.0", "1"], "--chart", "0 1"),
                                                   (["--dim", "2.5"], "--dim", "3")])
def test_an_integer_option_not_in_digits_is_told_to_be_written_in_digits(tmp_path, capsys, args, option, example):
    with pytest.raises(SystemExit) as exc:
        main(["sample", "--n", "10", "--out", str(tmp_path / "p.h5"), *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1, err
    value = args[1]
    assert err.startswith(f"hpcflow sample: error: argument {option}: '{value}' is not an integer; write it in "
                          f"digits, e.g. {example}"), err
    assert "invalid int value" not in err and os.listdir(tmp_path) == []


@pytest.mark.parametrize("typed", ["1e30", "1E+30", "5e18"])
def test_a_count_out_of_range_is_echoed_as_typed(tmp_path, capsys, typed):
    assert main(["sample", "--n", typed, "--out", str(tmp_path / "p.h5")]) == 2
    err = capsys.readouterr().err
    assert err == f"hpcflow sample: error: --n = {typed}: must lie in [1, 2**62] (number of points); change it\n", err


def test_a_count_in_float_notation_is_still_that_integer(tmp_path, capsys):
    assert main(["sample", "--n", "3e1", "--threads", "1", "--quiet", "--out", str(tmp_path / "p.h5")]) == 0
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert f["points"].shape == (30, 5)
    capsys.readouterr()


def test_memory_that_runs_out_mid_sample_is_not_told_to_resume(tmp_path, capsys, monkeypatch):
    from hpcflow.geometry import sampling
    from hpcflow.resources import out_of_memory_line

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(sampling, "sample_waves", out_of_memory)
    assert main(["sample", "--n", "100", "--no-memory-check", "--out", str(tmp_path / "p.h5")]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hpcflow sample: error: out of memory mid-run (MemoryError)"), err
    assert "--resume" not in err and err.endswith("or reduce --n, then run it again\n"), err
    assert out_of_memory_line("MemoryError", "run").endswith(
        "or reduce the job's sizes, then run it again (with --resume where it wrote a checkpoint)")
    assert os.listdir(tmp_path) == []


def test_the_command_a_launched_rank_runs_chooses_the_advice(monkeypatch):
    """Under mpiexec a rank says the line itself (`parallel.comm.abort_on_error`, no command given): the command the
    program runs (`stop_signals.early_command`) decides."""
    from hpcflow import stop_signals
    from hpcflow.resources import out_of_memory_said

    monkeypatch.setattr(stop_signals, "_COMMAND", ["hpcflow"])
    stop_signals.early_command("hpcflow sample")
    assert "--resume" not in out_of_memory_said(MemoryError())
    stop_signals.early_command("hpcflow nn")
    assert stop_signals.command_name() == "hpcflow nn"
    assert "(with --resume where it wrote a checkpoint)" in out_of_memory_said(MemoryError())


def test_outputs_md_pointset_shapes_fit_dim(tmp_path, capsys):
    """The PointSet section's shapes are in P^n (n = --dim + 1): the sentence that says so is what a file holds."""
    with open(os.path.join(ROOT, "docs", "outputs.md"), encoding="utf-8") as fh:
        text = fh.read()
    section = text[text.index("## sample: PointSet file"):]
    section = section[:section.index("\n## ", 1)]
    m = re.search(r"`hpcflow sample --dim (\d+)`.*?`points` of shape \(N, (\d+)\)\s+and `g_fs` of shape "
                  r"\(N, (\d+), (\d+)\)", section, re.S)
    assert m, "outputs.md's PointSet section gives no example of the shapes for a --dim"
    dim, n1, m1, m2 = map(int, m.groups())
    assert "| `points` | (N, n+1) |" in section and "| `g_fs` | (N, m, m) |" in section
    assert main(["sample", "--n", "7", "--dim", str(dim), "--threads", "1", "--quiet", "--out",
                 str(tmp_path / "p.h5")]) == 0
    with h5py.File(tmp_path / "p.h5", "r") as f:
        assert f["points"].shape == (7, n1) and f["g_fs"].shape == (7, m1, m2) == (7, dim, dim)
    assert n1 == dim + 2  # P^n with n = dim + 1: n + 1 coordinates
    capsys.readouterr()
