"""`hpcflow submit` refuses a job file or a tune's --storage journal that is not a regular file (a FIFO, a device) in
one line, exit 2, as `hpcflow run` and `hpcflow tune` do, never opening it: a FIFO job file blocked submit (even
--check) until a writer came, and a --storage /dev/null passed --check ("would queue")."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from test_submit import JOB, ROOT

TUNE_JOB = JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n'


def _submit(cwd, *argv, timeout=120):
    """`hpcflow submit ARGV` in `cwd`; a run that blocks (on a FIFO) fails the test by its timeout."""
    return subprocess.run([sys.executable, "-m", "hpcflow", "submit", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("command", ["run", "nn", "tune"])
@pytest.mark.parametrize("check", [True, False])
def test_a_fifo_job_file_is_refused_in_one_line_without_opening_it(tmp_path, command, check):
    os.mkfifo(tmp_path / "fifo.toml")
    argv = ["fifo.toml", "--executor", "local", "--out", "o_sf", "--command", command]
    argv += ["--trials", "1"] if command == "tune" else []
    r = _submit(tmp_path, *argv, *(["--check"] if check else []), timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr == ("hpcflow submit: error: fifo.toml: is not a regular file; pass the path of a TOML job file "
                        "(see jobs/)\n") and r.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.toml"]  # no --out, no logs, nothing queued


@pytest.mark.parametrize("storage, what", [("/dev/null", "a character device"),
                                           ("fifo.journal", "a named pipe (FIFO)")])
@pytest.mark.parametrize("check", [True, False])
def test_a_storage_journal_that_is_not_a_regular_file_is_refused_as_tune_refuses_it(tmp_path, storage, what, check):
    (tmp_path / "tiny.toml").write_text(TUNE_JOB)
    os.mkfifo(tmp_path / "fifo.journal")
    argv = ["--out", "o_t", "--storage", storage]
    r = subprocess.run([sys.executable, "-m", "hpcflow", "tune", "tiny.toml", "--trials", "1", *argv], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stdout + r.stderr
    line = r.stderr.removeprefix("hpcflow tune: error: ")
    assert line.startswith(f"--storage {storage} is {what}, not a regular file"), r.stderr
    s = _submit(tmp_path, "tiny.toml", "--executor", "local", "--command", "tune", "--trials", "1", *argv,
                *(["--check"] if check else []), timeout=60)
    assert s.returncode == 2, s.stdout + s.stderr
    assert s.stderr == f"hpcflow submit: error: {line}" and s.stdout == ""  # the same line, nothing would queue
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo.journal", "tiny.toml"]  # nothing queued or made
