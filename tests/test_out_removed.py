"""--out removed (rm -rf) or moved away (mv) while a run goes on: the next write there fails with ENOENT; the run
ends with exit status 5 (a write refused for a reason outside the program) and one line naming --out, what was
done to it and how to go on, not a FileNotFoundError traceback with status 1; under mpiexec every rank ends with 5.
Moved back, the run continues from its last checkpoint to the uninterrupted run's results."""

import os
import re
import shlex
import subprocess
import sys

import pytest

from hpcflow.cli import main
from jobtexts import NN_POINTS, SMALL_NET, flow_points
from test_parallel import mpiexec
from test_write_failures import _same_flow

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "out_removed_driver.py")
ENV = dict(os.environ, HPCFLOW_THREADS="1")
#: 40 steps of the Delta kernel's flow, checkpoints at steps 20 and 40
FLOW = flow_points(60, 20) + '[kernel]\nname = "delta"\n[flow]\ndt = 0.3\nsteps = 40\nloss = "ultralocal"\n' \
    '[checkpoint]\nevery = 20\n'
#: 2 epochs of the small network, a checkpoint after each
NN = NN_POINTS + SMALL_NET + "[training]\nepochs = 2\nbatch_size = 50\nlr = 3e-3\nthreads = 1\n" \
    "[ntk]\nenabled = false\n[checkpoint]\nevery = 1\n"


def _removed(when: str, *args, ranks: int = 1):
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    return subprocess.run(["timeout", "90", *launch, sys.executable, DRIVER, when, *map(str, args)],
                          capture_output=True, text=True, timeout=120, env=ENV)


def _said(r, prefix: str, out, name: str) -> tuple:
    """The one line of `r` that says the write failed (no traceback): (continue command, run-again command)."""
    assert r.returncode == 5, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "FileNotFoundError" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("hpcflow") and ": note: " not in line]
    assert len(lines) == 1, r.stderr
    said = re.fullmatch(rf"{re.escape(prefix)}--out {re.escape(str(out))} was removed or moved while the run was "
                        rf"going, so {re.escape(str(out / name))} could not be written; if it was moved, move it back "
                        rf"to {re.escape(str(out))}, then (?:under mpiexec \([^)]*\), )?continue with: (.+) \(from its "
                        r"last checkpoint, where one was written\); else run it again: (.+)", lines[0])
    assert said, lines[0]
    return shlex.split(said.group(1)), shlex.split(said.group(2))


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_flow_whose_out_is_removed_exits_5_in_one_line(tmp_path, ranks):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    r = _removed("2", "run", job, "--out", out, "--quiet", ranks=ranks)
    prefix = "hpcflow: rank 0: error: " if ranks > 1 else "hpcflow run: error: "
    again, fresh = _said(r, prefix, out, "checkpoint.h5")
    assert again == ["hpcflow", "run", str(job), "--out", str(out), "--quiet", "--resume"]
    assert fresh == ["hpcflow", "run", str(job), "--out", str(out), "--quiet"]
    assert not out.exists()


def test_a_flow_whose_out_was_moved_continues_once_moved_back(tmp_path):
    job, out, whole = tmp_path / "job.toml", tmp_path / "out", tmp_path / "whole"
    job.write_text(FLOW)
    r = _removed("2:mv", "run", job, "--out", out, "--quiet")
    again, _ = _said(r, "hpcflow run: error: ", out, "checkpoint.h5")
    os.rename(tmp_path / "out.moved", out)
    assert main(again[1:]) == 0
    assert main(["run", str(job), "--out", str(whole), "--quiet"]) == 0
    _same_flow(out, whole)


def test_a_training_whose_out_is_removed_exits_5_in_one_line(tmp_path):
    pytest.importorskip("torch")
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(NN)
    r = _removed("2", "nn", job, "--out", out, "--quiet")
    again, fresh = _said(r, "hpcflow nn: error: ", out, "checkpoint.pt")
    assert again == ["hpcflow", "nn", str(job), "--out", str(out), "--quiet", "--resume"]
    assert fresh == ["hpcflow", "nn", str(job), "--out", str(out), "--quiet"]
    assert not out.exists()
