"""A stop request (SIGTERM) while `hpcflow nn` trains a width of its width sweep, or the network on the kernel flow's
points, is honoured after the optimiser step it arrives in (not at the end of that training): exit status 4,
summary.json status "preempted" with the epochs of the finished main training, and --resume redoes what follows
the training, bit for bit the uninterrupted run's nn.h5. Stops are injected after a chosen step
(tests/mpi/nn_step_stop_driver.py), in this process at one rank, and (slow: the ranks' start takes many seconds)
at 2 ranks with the request on rank 1 only."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow.cli import main  # noqa: E402

HERE = os.path.dirname(__file__)
DRIVER = os.path.join(HERE, "mpi", "nn_step_stop_driver.py")
#: trainings: 0 the main one, 1 and 2 the sweep's widths (3 steps each), 3 the kernel flow's network (2 steps)
SWEEP_STEPS, FLOW_NET_STEPS = 3, 2
JOB = """
[job]
kind = "nn"
[geometry]
n_train = 100
n_val = 50
seed = 3
[model]
depth = 2
width = 8
activation = "gelu"
[training]
epochs = 1
batch_size = 20
lr = 3e-3
threads = 1
[ntk]
n_train_points = 3
n_test_points = 2
[width_sweep]
widths = [4, 8]
epochs = 1
n_train = 60
[kernel_flow]
enabled = true
n_train = 40
n_test = 20
steps = 2
"""


def _driver():
    spec = importlib.util.spec_from_file_location("nn_step_stop_driver", DRIVER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _summary(out):
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _steps(lines):
    """{training: [steps taken]} of the driver's "training T step S" lines."""
    got = {}
    for t, s in re.findall(r"training (\d+) step (\d+)", "\n".join(lines)):
        got.setdefault(int(t), []).append(int(s))
    return got


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nnstep")
    (tmp / "job.toml").write_text(JOB)
    assert main(["nn", str(tmp / "job.toml"), "--out", str(tmp / "plain"), "--quiet"]) == 0
    return tmp


@pytest.mark.parametrize("trainer,where", [(2, "in the width sweep, width 8, after step 1 of epoch 1"),
                                           (3, "training the network on the kernel flow's points, after step 1 "
                                               "of epoch 1")])
def test_a_stop_request_in_a_training_after_the_main_one_is_honoured_after_its_step(job, capsys, trainer, where):
    out, lines = str(job / f"stop{trainer}"), []
    undo = _driver().watch(trainer, 1, 0, lines.append)
    try:
        status = main(["nn", str(job / "job.toml"), "--out", out, "--quiet"])
    finally:
        undo()
    err = capsys.readouterr().err
    assert status == 4, err[-2000:]
    done = {1: list(range(1, SWEEP_STEPS + 1)), 2: list(range(1, SWEEP_STEPS + 1))}
    assert _steps(lines) == {**{t: s for t, s in done.items() if t < trainer}, trainer: [1]}  # not its other steps
    assert f"signal received {where}" in err and "--resume" in err
    summary = _summary(out)
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == 1
    assert "width_sweep" not in summary and "kernel_flow" not in summary
    assert os.path.isfile(os.path.join(out, "job.toml")) and not os.path.exists(os.path.join(out, "nn.h5"))
    assert main(["nn", str(job / "job.toml"), "--out", out, "--resume", "--quiet"]) == 0
    assert _summary(out)["status"] == "finished"
    got, ref = datasets(os.path.join(out, "nn.h5")), datasets(os.path.join(job, "plain", "nn.h5"))
    assert got.keys() == ref.keys()
    for key in sorted(set(got) - NN_TIMINGS):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


@pytest.mark.slow
def test_a_stop_request_on_one_rank_stops_both_ranks_sweep_training_after_its_step(job):
    from test_parallel import mpiexec

    out = str(job / "two")
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.getcwd())
    p = subprocess.run([mpiexec(), "-n", "2", sys.executable, DRIVER, "1", "1", "1", "nn", str(job / "job.toml"),
                        "--out", out], capture_output=True, text=True, timeout=180, env=env)
    assert p.returncode == 4, p.stderr[-2000:]
    assert sorted(int(s) for s in re.findall(r"training 1 step (\d+)", p.stderr)) == [1, 1], p.stderr[-2000:]
    assert "training 2 step" not in p.stderr
    summary = _summary(out)
    assert summary["status"] == "preempted" and summary["ranks"] == 2 and summary["checkpoint_step"] == 1
