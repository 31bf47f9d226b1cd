"""A stop request (SIGTERM) that `hpcflow nn` honours at the end of its last epoch (it came in the last optimiser
step) has nothing left to stop where only the outputs follow: the run finishes as the uninterrupted one (summary
status "finished", exit 0, the same nn.h5). It used to write a "preempted" checkpoint.pt and exit 4 with every epoch
trained. Where the width sweep or the kernel flow follow the training, the request stops the run before them
(status 4, as after training); one in the last step of the epoch before stops the training there (status
4). The request is
sent after a chosen optimiser step (tests/mpi/nn_step_stop_driver.py): in this process at one rank, at 2 ranks on
rank 1 alone."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from hpcflow.jobs.output import read_summary  # noqa: E402
from jobtexts import NN_POINTS, SMALL_NET, SMALL_SWEEP, TINY_TRAINING  # noqa: E402
from test_nn_stop_sweep import DRIVER, FLOW_NET_STEPS, _driver  # noqa: E402
from test_nn_stop_sweep import JOB as PHASES_JOB  # noqa: E402
from test_parallel import mpiexec  # noqa: E402

#: 2 epochs of 200 train points in batches of 100: optimiser steps 1-4, the last one LAST
EPOCHS, LAST = 2, 4
JOB = NN_POINTS + SMALL_NET + TINY_TRAINING.replace("epochs = 4", f"epochs = {EPOCHS}")


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nnlast")
    (tmp / "job.toml").write_text(JOB)
    (tmp / "sweep.toml").write_text(JOB + SMALL_SWEEP)
    (tmp / "phases.toml").write_text(PHASES_JOB)  # a width sweep of 2 widths, then the kernel flow and its network
    for name in ("job", "sweep", "phases"):
        assert main(["nn", str(tmp / f"{name}.toml"), "--out", str(tmp / f"plain_{name}"), "--quiet"]) == 0
    return tmp


def _stopped_at(job, name, step, out, trainer=0):
    """`hpcflow nn` of job `name` in this process, SIGTERM after optimiser step `step` of training `trainer` (0 the
    main one, then the width sweep's, then the kernel flow's network): the exit status."""
    undo = _driver().watch(trainer, step, 0, lambda s: None)
    try:
        return main(["nn", str(job / name), "--out", out, "--quiet"])
    finally:
        undo()


def _same_as_uninterrupted(job, out, *, name="job", exact=True):
    got, ref = datasets(os.path.join(out, "nn.h5")), datasets(os.path.join(job, f"plain_{name}", "nn.h5"))
    assert got.keys() == ref.keys()
    for key in sorted(set(got) - NN_TIMINGS):
        if exact or got[key].dtype.kind not in "fc":
            np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
        else:  # trained on 2 ranks: gradients summed in another order (tests/test_nn_mpi.py: ~1e-16 measured)
            np.testing.assert_allclose(got[key], ref[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_a_stop_request_in_the_last_step_finishes_the_run(job, capsys):
    out = str(job / "last")
    status = _stopped_at(job, "job.toml", LAST, out)
    err = capsys.readouterr().err
    assert status == 0, err[-2000:]
    assert "--resume" not in err and "signal received" not in err, err
    said = [line for line in err.splitlines() if "stop request" in line]  # the request said once, as it is not honoured
    assert len(said) == 1 and said[0].startswith("hpcflow nn: stop request after the last training step: nothing "
                                                 "left to stop; writing the outputs (about "), err
    summary = read_summary(out)
    assert (summary["status"], summary["checkpoint_step"], summary["epochs"]) == ("finished", EPOCHS, EPOCHS)
    _same_as_uninterrupted(job, out)


def test_a_stop_request_in_the_last_step_on_one_of_two_ranks_finishes_the_run(job):
    out = str(job / "two")
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.getcwd())
    p = subprocess.run([mpiexec(), "-n", "2", sys.executable, DRIVER, "0", str(LAST), "1", "nn", str(job / "job.toml"),
                        "--out", out], capture_output=True, text=True, timeout=180, env=env)
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert f"wrote {out}/summary.json" in p.stdout and "--resume" not in p.stderr, p.stdout + p.stderr
    summary = read_summary(out)
    assert (summary["status"], summary["checkpoint_step"], summary["ranks"]) == ("finished", EPOCHS, 2)
    _same_as_uninterrupted(job, out, exact=False)


def test_a_stop_request_in_the_epoch_before_the_last_stops_the_training(job, capsys):
    out = str(job / "before")
    status = _stopped_at(job, "job.toml", LAST - 2, out)  # its last step: honoured at the end of that epoch
    err = capsys.readouterr().err
    assert status == 4, err[-2000:]
    assert f"checkpoint written after epoch {EPOCHS - 1};" in err and "--resume" in err, err
    assert (read_summary(out)["status"], read_summary(out)["checkpoint_step"]) == ("preempted", EPOCHS - 1)


def test_a_stop_request_in_the_last_step_stops_the_width_sweep_that_follows(job, capsys):
    out = str(job / "sweep")
    status = _stopped_at(job, "sweep.toml", LAST, out)
    err = capsys.readouterr().err
    assert status == 4, err[-2000:]
    assert "signal received after training: training had finished" in err and "--resume" in err, err
    summary = read_summary(out)
    assert (summary["status"], summary["checkpoint_step"]) == ("preempted", EPOCHS)
    assert "width_sweep" not in summary and not os.path.exists(os.path.join(out, "nn.h5"))


# the last step of the job's last training after the main one: the sweep's last width, the kernel flow's network
@pytest.mark.parametrize("name, trainer, step", [("sweep", 2, 1), ("phases", 3, FLOW_NET_STEPS)])
def test_a_stop_request_in_the_last_step_of_the_last_training_finishes_the_run(job, capsys, name, trainer, step):
    out = str(job / f"last_{name}")
    status = _stopped_at(job, f"{name}.toml", step, out, trainer)
    err = capsys.readouterr().err
    assert status == 0, err[-2000:]
    assert "--resume" not in err and "signal received" not in err, err
    assert read_summary(out)["status"] == "finished"
    _same_as_uninterrupted(job, out, name=name)
