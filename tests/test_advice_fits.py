"""Advice that the command it names would take: the local executor's memory refusal names no --nodes (which it
refuses), and `sample --out ''` names a file, not a run directory."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from hpcflow.cli import main
from test_submit import JOB, ROOT

BIG = ["--set", "geometry.n_train=300000000"]  # far above any host's memory


def test_a_local_memory_refusal_advises_nothing_the_local_executor_refuses(tmp_path, monkeypatch, capsys):
    """It said "reduce the sizes, use more nodes", and --executor local refuses --nodes 2."""
    monkeypatch.delenv("HPCFLOW_IGNORE_MEMORY_CHECK", raising=False)
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    base = ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "local", "--check"]
    assert main([*base, *BIG]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "estimated peak memory" in err, err
    assert "nodes" not in err, err
    assert main([*base, "--nodes", "2", "--no-memory-check"]) == 2  # (what "more nodes" would have asked)
    assert "--executor local runs one task per job" in capsys.readouterr().err
    assert "(--executor slurm)" in err and "--no-memory-check" in err, err


def test_sample_with_an_empty_out_names_a_file_to_write():
    """It suggested `--out runs/x`, a directory's name, where sample writes one HDF5 file."""
    r = subprocess.run([sys.executable, "-m", "hpcflow", "sample", "--n", "10", "--out", ""], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 2, r.stderr
    line, = r.stderr.splitlines()
    suggested = shlex.split(re.search(r"e\.g\. (--out \S+)", line).group(1))[1]
    assert suggested.endswith(".h5") and "runs/" not in line, line
