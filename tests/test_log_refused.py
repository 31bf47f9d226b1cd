"""A log or output on stdout that the file system refuses (`> /dev/full`, a full disk) ends a command that otherwise
succeeded with one line on stderr and exit status 5 (a write refused), no traceback; a file the command wrote is
complete and said so."""

import os
import re
import subprocess
import sys

from hpcflow.geometry import PointSet

FULL = "/dev/full"  # every write fails with ENOSPC (Linux)


def _hpcflow(*args, cwd):
    with open(FULL, "w") as full:
        return subprocess.run([sys.executable, "-m", "hpcflow", *args], stdout=full, stderr=subprocess.PIPE, text=True,
                              cwd=cwd, timeout=300, env=dict(os.environ, PYTHONUNBUFFERED=""))


def test_info_to_a_full_device_is_one_line_and_status_5(tmp_path):
    r = _hpcflow("info", cwd=tmp_path)
    assert r.returncode == 5 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.splitlines()[-1] == ("hpcflow info: error: the command ran to its end, but its output on stdout "
                                         "could not be written (No space left on device): free space on its file "
                                         "system, or send stdout elsewhere"), r.stderr


def test_sample_to_a_full_device_says_its_file_is_complete(tmp_path):
    r = _hpcflow("sample", "--n", "30", "--seed", "3", "--threads", "1", "--quiet", "--out", "p.h5", cwd=tmp_path)
    assert r.returncode == 5 and r.stderr.count("\n") == 1, r.stderr
    assert r.stderr.startswith("hpcflow sample: error: p.h5 is complete; only its log on stdout could not be written "
                               "(No space left on device)"), r.stderr
    assert len(PointSet.load(tmp_path / "p.h5")) == 30 and os.listdir(tmp_path) == ["p.h5"]
    readme = " ".join(open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read().split())
    said = re.search(r"`(hpcflow sample: error: p\.h5 is complete;[^`]*)`", readme)
    assert said and said.group(1) == r.stderr.strip(), "README's exit-status paragraph shows another line"


def test_a_failed_command_keeps_its_status_and_line(tmp_path):
    (tmp_path / "p.h5").write_bytes(b"keep")
    r = _hpcflow("sample", "--n", "30", "--out", "p.h5", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "exists" in r.stderr, r.stderr


def test_an_analysis_script_to_a_full_device_is_one_line_and_status_5(tmp_path, monkeypatch, capsys):
    from hpcflow.analysis import products
    from hpcflow.analysis.products import Product
    from hpcflow.analysis.script import main
    from hpcflow.cli import _ReaderGone

    monkeypatch.setitem(products.PRODUCTS, "table1", lambda paths, study_name=None: Product(
        texts={"table1.md": "| run |\n|---|\n| a |\n"}, lines=["a line"]))
    (tmp_path / "run").mkdir()
    full = open(FULL, "w")
    try:
        monkeypatch.setattr(sys, "stdout", _ReaderGone(full))
        status = main("table1", [str(tmp_path / "run"), "--out", str(tmp_path / "f")])
    finally:
        monkeypatch.undo()
        full.close()
    err = capsys.readouterr().err
    assert status == 5 and err == ("table1: error: the command ran to its end, but its output on stdout could not be "
                                   "written (No space left on device): free space on its file system, or send stdout "
                                   "elsewhere\n"), err
    assert (tmp_path / "f" / "table1.md").read_text() == "| run |\n|---|\n| a |\n"


def test_a_closed_pipe_is_still_no_failure(monkeypatch):
    """(`log_refused` says nothing and keeps 0 where the reader went away: test_cli_pipes runs the commands.)"""
    from hpcflow.cli import _ReaderGone, log_refused

    r, w = os.pipe()
    os.close(r)
    pipe = os.fdopen(w, "w")
    wrapped = _ReaderGone(pipe)
    try:
        wrapped.write("x" * 100000)
        wrapped.flush()
        assert wrapped.refused is None
        monkeypatch.setattr(sys, "stdout", wrapped)
        assert log_refused("hpcflow info", 0) == 0
    finally:
        monkeypatch.undo()
        pipe.close()


def test_a_refused_stdout_with_stderr_closed_ends_with_status_5(monkeypatch):
    """A process started with stderr closed (sys.stderr None) and stdout on a full device: status 5 with no line to
    say (an AttributeError on sys.stderr.flush ended it with 1)."""
    from hpcflow.cli import _ReaderGone, log_refused

    full = open(FULL, "w")
    try:
        wrapped = _ReaderGone(full)
        wrapped.write("x\n")
        monkeypatch.setattr(sys, "stdout", wrapped)
        monkeypatch.setattr(sys, "stderr", None)
        assert log_refused("hpcflow info", 0) == 5
        assert isinstance(wrapped.refused, OSError)
    finally:
        monkeypatch.undo()
        full.close()


def test_help_and_version_to_a_full_device_are_one_line_and_status_5(tmp_path):
    """argparse's --help and --version exit 0 once printed: a stdout the file system refused said so (status 5),
    as every command's; to a device that takes it, status 0."""
    for args in (["--help"], ["--version"], ["sample", "--help"]):
        r = _hpcflow(*args, cwd=tmp_path)
        assert r.returncode == 5 and r.stderr.count("\n") == 1, (args, r.stderr)
        assert r.stderr.startswith("hpcflow: error: the command ran to its end, but its output on stdout could not "
                                   "be written (No space left on device)"), r.stderr
    ok = subprocess.run([sys.executable, "-m", "hpcflow", "--help"], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "usage: hpcflow" in ok.stdout and ok.stderr == "", ok.stderr
