"""What the analysis scripts and `hpcflow report` write into --out: refused before anything is written where a file's
name is a directory there, whole when the reader of their printed lines goes away, one file per run."""

from __future__ import annotations

import os

import pytest

from analysis_runs import run_dirs


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


@pytest.mark.parametrize("command, name", [("table1", "table1.md"), ("sigma_history", "sigma_history.png"),
                                           ("report", "report.html"), ("report", "report.md"),
                                           ("report", "sigma_history.png")])
def test_an_output_name_that_is_a_directory_is_one_line_exit_2_before_anything_is_written(runs, tmp_path, capsys,
                                                                                          command, name):
    from hpcflow.analysis.script import main as script_main
    from hpcflow.cli import main

    out = tmp_path / "out"
    (out / name).mkdir(parents=True)
    args = [runs["flow"], "--out", str(out)]
    status = main(["report", *args, "--force"]) if command == "report" else script_main(command, args)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and f"{out / name} is a directory" in err, err
    assert os.listdir(out) == [name] and os.listdir(out / name) == []


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_script_whose_reader_closed_the_pipe_writes_its_files_and_exits_0(runs, tmp_path, unbuffered):
    """`table1.py RUN --out F | head -1`: the table is written to F, no BrokenPipeError traceback, exit 0."""
    import subprocess
    import sys

    from analysis_runs import ROOT, env

    out = tmp_path / "f"
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "analysis", "table1.py"), runs["flow"], "--out",
                             str(out)], cwd=ROOT, env={**env(), "PYTHONUNBUFFERED": unbuffered}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == "", err
    assert (out / "table1.md").read_text().startswith("| run | status |")
