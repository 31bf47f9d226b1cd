"""A stop request (SIGTERM) received while a flow is set up (its points sampled and clustered, before its checkpoint
writer exists) stops `hpcflow run` at the flow's first step, on every rank: the checkpoint of that step, summary.json
"preempted", exit 4 and the one line naming the command that continues it, which ends with the uninterrupted run's
datasets and summary numbers, bit for bit. It used to end the run at once (exit 143, nothing written but the lock)."""

import json
import os
import re
import shlex
import subprocess
import sys

import h5py
import numpy as np
import pytest

from test_ctrl_c import FLOW
from test_ctrl_c import STEPS as CTRL_C_STEPS
from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi", "flow_setup_signal_driver.py")
STEPS = 5
JOB = FLOW.replace(f"steps = {CTRL_C_STEPS}", f"steps = {STEPS}")  # a clustered flow; no periodic checkpoint


@pytest.mark.parametrize("ranks, rank, sig", [(1, 0, "TERM"), (2, 1, "TERM"), (1, 0, "INT"), (2, 0, "INT")])
def test_sigterm_during_setup_stops_at_the_first_step_and_resume_is_bitwise_the_uninterrupted_run(tmp_path, ranks,
                                                                                                     rank, sig):
    """The request reaches one rank (at 2 ranks rank 1, whose request every rank honours together). A Ctrl-C
    (SIGINT) is the same request, and rank 0 says at once that it was heard: the setup may take minutes before the
    step that honours it (before, a person at the terminal saw nothing until then)."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(DRIVER))))
    r = subprocess.run(["timeout", "60", *launch, sys.executable, DRIVER, str(rank), str(job), str(cut), str(whole), sig],
                       capture_output=True, text=True, timeout=90, env=env)
    said = [line.split()[1:] for line in r.stdout.splitlines() if line.startswith("statuses")]
    assert r.returncode == 0 and said == [["4", "0", "0"]] * ranks, (r.returncode, r.stdout, r.stderr)
    again = shlex.join(["hpcflow", "run", str(job), "--out", str(cut), "--quiet", "--resume"])  # the driver's 2nd
    lead = "under mpiexec (2 ranks, or any other number), " if ranks > 1 else ""  # the launch it is to be run with
    lines = r.stderr.splitlines()
    if sig == "INT":
        assert lines[:1] == ["hpcflow run: stop requested: the run stops with a checkpoint at its first step, once its "
                             "points are sampled and clustered; Ctrl-C again interrupts now"], r.stderr
        lines = lines[1:]
    assert len(lines) == 1 and re.fullmatch(r"hpcflow run: stopped: signal received: checkpoint of step 1 written "
                                            rf"to \S+; {re.escape(lead)}continue with: {re.escape(again)}",
                                            lines[0]), r.stderr
    a, b = (json.loads((d / "summary.json").read_text()) for d in (cut, whole))
    assert a["legs"][0]["to_step"] == 1 and a["ranks"] == ranks  # the stopped run's leg: step 0 to 1
    for key in ("sigma_train_final", "sigma_test_final", "gain_train", "gain_test", "steps_taken", "test_held",
                "rejected_steps", "checkpoint_step", "status"):
        assert a[key] == b[key], key
    assert a["status"] == "finished" and a["checkpoint_step"] == STEPS
    with h5py.File(cut / "checkpoint.h5") as f, h5py.File(whole / "checkpoint.h5") as g:
        for key in ("history/sigma_train", "history/sigma_test", "history/dt", "train/g", "test/g", "cluster/labels"):
            np.testing.assert_array_equal(f[key][()], g[key][()], err_msg=key)


def test_the_readme_says_what_a_flow_job_does_with_a_request_before_and_during_its_setup():
    """The README said what `hpcflow nn` and the kinds without checkpoints do with an early SIGTERM/SIGUSR1, not
    what a flow job does: before its setup it ends at once (tests/test_start_up_signal.py), during it the request is
    honoured at the first step (above), and which of the two a request about a second in gets depends on the load."""
    with open(os.path.join(os.path.dirname(DRIVER), os.pardir, os.pardir, "README.md"), encoding="utf-8") as fh:
        readme = " ".join(fh.read().split())
    for words in ("a flow job (`hpcflow run` of kind \"flow\") takes a request as `hpcflow nn` does",
                  "`hpcflow run: stopped by SIGTERM` (SIGUSR1), status 143 (138), or for Ctrl-C `hpcflow run: "
                  "interrupted`, 130, with nothing written: an --out it created is removed",
                  "the checkpoint under `--resume`", "any of the three is honoured at the flow's first step "
                  "(`checkpoint of step 1 written`", "A request about a second in may land on either side"):
        assert words in readme, words
