"""The array backend's settings: $HPCFLOW_BACKEND refused in one line quoting the value as it was set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def hpcflow(*args, cwd, fake: Path | None = None, env=None, mpi: int = 0):
    """`python -m hpcflow ARGS` (under `mpiexec -n MPI` where set) with this checkout, after `fake` on PYTHONPATH."""
    paths = ([str(fake)] if fake else []) + [str(ROOT)]
    full = {k: v for k, v in os.environ.items() if not k.startswith("HPCFLOW_")}
    full.update(PYTHONPATH=os.pathsep.join(paths), HPCFLOW_QUIET="1", **(env or {}))
    cmd = [sys.executable, "-m", "hpcflow", *map(str, args)]
    if mpi:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(mpi), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=cwd, timeout=600)


def one_line(r, command: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"hpcflow {command}: error:"), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def test_a_bad_backend_variable_is_quoted_as_it_was_set(tmp_path):
    """HPCFLOW_BACKEND=4G was quoted as '4g'."""
    r = hpcflow("sample", "--n", 200, "--out", tmp_path / "x.h5", cwd=tmp_path, env={"HPCFLOW_BACKEND": "4G"})
    line = one_line(r, "sample")
    assert "HPCFLOW_BACKEND='4G' is not one of numpy, cupy, auto" in line and not (tmp_path / "x.h5").exists(), line
