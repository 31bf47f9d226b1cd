"""Under mpiexec every rank parses the same command line: argparse's error line, --help and --version are printed
once (by rank 0), and every rank exits with argparse's status."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis_runs import env
from test_parallel import each_rank_status, rank_statuses


@pytest.mark.parametrize("argv, stream, said, status", [
    (["sample", "--n", "10", "--out", "p.h5", "--bogus"], "stderr", "hpcflow sample: error: unrecognized arguments: "
     "--bogus", 2),
    (["--version"], "stdout", "hpcflow ", 0),
])
def test_argparse_speaks_once_under_mpiexec(tmp_path, argv, stream, said, status):
    cmd = [sys.executable, "-m", "hpcflow", *argv]
    proc = subprocess.run(["timeout", "120", *each_rank_status(tmp_path / "status", 2, cmd)], cwd=tmp_path,
                          env=env(), capture_output=True, text=True, timeout=150)
    assert rank_statuses(tmp_path / "status", 2) == [status, status], proc.stdout + proc.stderr
    text = getattr(proc, stream)
    assert text.count("\n") == 1 and text.startswith(said), proc.stdout + proc.stderr
    assert not (tmp_path / "p.h5").exists()
