"""A run directory or file that this user may not read is refused in one line naming it and the chmod that lets it
be read (exit 2, before any work), by `hpcflow report`, the analysis scripts and the readers that judge a run's
files; never called damaged (whose advice, a rerun with --force, would replace a run that may be whole).

(Tests may run as root, whom file permissions do not stop: there the commands run with the capabilities that
override them dropped, `capsh --drop`, so that the owner's permission bits apply as they do to a user.)"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys

import pytest

from analysis_runs import ROOT, env, run_dirs

DROP = "--drop=cap_dac_override,cap_dac_read_search"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def unprivileged(argv, **kw) -> subprocess.CompletedProcess:
    """argv run as a user whom permission bits stop (as root: with the overriding capabilities dropped)."""
    if os.geteuid() == 0:
        argv = ["capsh", DROP, "--", "-c", shlex.join(argv)]
    return subprocess.run(argv, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300, **kw)


def dir_line(path) -> str:
    return f"{path}: permission denied (chmod u+rx {shlex.quote(str(path))})"


def file_line(path) -> str:
    return f"{path}: permission denied; make it readable (chmod u+r {shlex.quote(str(path))})"


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("mode", [0o000, 0o644])
def test_a_run_directory_that_cannot_be_read_or_entered_is_refused_in_one_line(runs, tmp_path, mode):
    run = _copy(runs["flow"], tmp_path / "run")
    os.chmod(run, mode)
    try:
        out = tmp_path / "report"
        proc = unprivileged([sys.executable, "-m", "hpcflow", "report", str(run), "--out", str(out)])
        script = unprivileged([sys.executable, os.path.join(ROOT, "analysis", "sigma_history.py"), str(run), "--out",
                               str(tmp_path / "figs")])
    finally:
        os.chmod(run, 0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"hpcflow report: error: {dir_line(run)}\n"
    assert proc.stdout == "" and not (out / "report.html").exists()
    assert script.returncode == 2, script.stderr
    assert script.stderr == f"sigma_history: error: {dir_line(run)}\n"
    assert not (tmp_path / "figs").exists() or not os.listdir(tmp_path / "figs")


@pytest.mark.parametrize("kind, name", [("flow", "checkpoint.h5"), ("flow", "summary.json"), ("nn", "nn.h5")])
def test_a_run_file_that_cannot_be_read_is_named_with_its_chmod_never_called_damaged(runs, tmp_path, kind, name):
    run = _copy(runs[kind], tmp_path / "run")
    file = run / name
    os.chmod(file, 0)
    proc = unprivileged([sys.executable, "-m", "hpcflow", "report", str(run), "--out", str(tmp_path / "report")])
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"hpcflow report: error: {file_line(file)}\n"
    # the readers that judge a run's files say the same, where no command refused it first
    probe = ("import sys; from hpcflow.analysis.rundir import completeness, read_attrs, MissingData\n"
             "print(completeness(sys.argv[1])[1])\n"
             "try:\n    read_attrs(sys.argv[2])\nexcept MissingData as exc:\n    print(exc)\n")
    h5 = str(file) if name.endswith(".h5") else str(run / "checkpoint.h5")
    said = unprivileged([sys.executable, "-c", probe, str(run), h5])
    assert said.returncode == 0, said.stderr
    lines = said.stdout.splitlines()
    assert lines[0] == file_line(file)
    if name.endswith(".h5"):
        assert lines[1] == file_line(file)
    assert "damaged" not in said.stdout and "--force" not in said.stdout
