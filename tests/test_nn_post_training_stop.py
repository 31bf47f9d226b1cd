"""A stop request (SIGTERM) after a network's training (width sweep, kernel flow) ends `hpcflow nn` with exit
status 4, summary.json status "preempted" and job.toml, as during training; --resume then redoes what follows the
training and writes the nn.h5 of an uninterrupted run."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from jobtexts import NN_POINTS, SMALL_NET, SMALL_SWEEP  # noqa: E402

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "nn_post_driver.py")
EPOCHS = 2

JOB = "\n" + NN_POINTS + SMALL_NET + f"""[training]
epochs = {EPOCHS}
batch_size = 100
lr = 3e-3
threads = 1
[ntk]
n_train_points = 3
n_test_points = 2
""" + SMALL_SWEEP + """[kernel_flow]
enabled = true
n_train = 20
n_test = 20
steps = 2
"""


def _env():
    return dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.getcwd())


def _launch(ranks, prog):
    if ranks == 1:
        return [sys.executable, *prog]
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert exe, "mpiexec not found: install the test extra (mpich wheel)"
    return [exe, "-n", str(ranks), sys.executable, *prog]


def _run(ranks, args, driver):
    return subprocess.run(_launch(ranks, [DRIVER, *driver, *args]), capture_output=True, text=True, timeout=180,
                          env=_env())


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nnpost")
    (tmp / "job.toml").write_text(JOB)
    return tmp


@pytest.fixture(scope="module")
def uninterrupted(job):
    out = str(job / "plain")
    assert main(["nn", str(job / "job.toml"), "--out", out]) == 0
    return datasets(os.path.join(out, "nn.h5"))


# the signal on one rank: the other stops with it; the resume (in this process, 1 rank) redoes sweep and flow
@pytest.mark.parametrize("phase,ranks,rank", [("sweep", 1, 0),
                                              pytest.param("kernel_flow", 2, 1, marks=pytest.mark.slow)])
def test_stop_after_training_exits_4_and_resumes_to_the_same_files(job, uninterrupted, phase, ranks, rank):
    from hpcflow.jobs.output import interrupted
    from hpcflow.submit.requeue import command

    out = str(job / f"{phase}{ranks}")
    p = _run(ranks, ["nn", str(job / "job.toml"), "--out", out], driver=[phase, str(rank)])
    assert p.returncode == 4, (p.returncode, p.stderr[-2000:])
    assert "--resume" in p.stderr
    summary = json.loads(open(os.path.join(out, "summary.json")).read())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == EPOCHS
    assert os.path.isfile(os.path.join(out, "job.toml")) and not os.path.exists(os.path.join(out, "nn.h5"))
    assert interrupted(out, "checkpoint.pt")  # a plain rerun is refused; a requeued job resumes
    assert command(str(job / "job.toml"), out) == ["nn", "--resume"]
    assert main(["nn", str(job / "job.toml"), "--out", out, "--resume"]) == 0
    summary = json.loads(open(os.path.join(out, "summary.json")).read())
    assert summary["status"] == "finished" and summary["resumed"] is True
    got = datasets(os.path.join(out, "nn.h5"))
    assert got.keys() == uninterrupted.keys()
    for key in sorted(set(got) - NN_TIMINGS):
        if ranks == 1 or got[key].dtype.kind not in "fc":  # the same rank count, or not numbers: bit for bit
            np.testing.assert_array_equal(got[key], uninterrupted[key], err_msg=key)
        else:  # trained on 2 ranks: gradients summed in another order (tests/test_nn_mpi.py: ~1e-16 measured)
            np.testing.assert_allclose(got[key], uninterrupted[key], rtol=1e-9, atol=1e-12, err_msg=key)
