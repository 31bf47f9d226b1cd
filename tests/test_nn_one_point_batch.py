"""A train set one point larger than a multiple of [training].batch_size: that point joins the epoch's last batch
instead of making a batch of its own, whose σ (eq. B.11) and gradient are 0 but whose Adam step still moved the
parameters through the moments. The trained network is that of a plain torch loop over the intended batches, at 1
and at 2 ranks, and a run stopped before that batch and resumed repeats the uninterrupted one bit for bit."""

import json
import os
import re
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from hpcflow.cli import main  # noqa: E402
from jobtexts import NN_POINTS, SMALL_NET, SMALL_SWEEP, TINY_TRAINING  # noqa: E402
from test_parallel import mpiexec  # noqa: E402

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "nn_driver.py")
SEQUENCE = os.path.join(os.path.dirname(__file__), "mpi", "cli_sequence.py")
#: 601 train points in batches of 100, two epochs of the constant learning rate 3e-3, training seed 0
JOB = (NN_POINTS.replace("n_train = 200", "n_train = 601") + SMALL_NET
       + TINY_TRAINING.replace("epochs = 4", "epochs = 2"))
#: the batches intended: five of 100 positions of the epoch's order, then the last 101
BATCHES = [(0, 100), (100, 200), (200, 300), (300, 400), (400, 500), (500, 601)]


def _reference(initial: dict, config: dict) -> dict:
    """The network after two epochs of Adam (lr 3e-3) on the σ loss of the BATCHES of each epoch's permutation (one
    torch.Generator seeded with the training seed 0), by autograd: the parameters hpcflow's training should reach."""
    from hpcflow.geometry import Hypersurface
    from hpcflow.nn.data import MetricData
    from hpcflow.nn.loss import metric_loss
    from hpcflow.nn.model import MetricMLP

    data = MetricData.from_pointset(Hypersurface.fermat(3).sample(601, seed=3))  # the job's train set
    net = MetricMLP(**config)
    net.load_state_dict(initial)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        perm = torch.randperm(601, generator=gen)
        for start, end in BATCHES:
            b = data[perm[start:end]]
            opt.zero_grad()
            metric_loss(net(b.x, b.gfs), b.omega2, b.weights).backward()
            opt.step()
    return {k: v.detach() for k, v in net.state_dict().items()}


def _close(got: dict, want: dict) -> None:
    for k in want:  # rounding of the hand-written gradient and fused Adam: ~2e-16 measured; an extra Adam step: ~1e-2
        assert torch.max(torch.abs(got[k] - want[k])) <= 1e-9 * torch.max(torch.abs(want[k])), k


def test_a_one_point_remainder_joins_the_last_batch_at_one_and_two_ranks(tmp_path, capsys):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    zero, one, two = tmp_path / "zero", tmp_path / "one", tmp_path / "two"
    assert main(["nn", str(job), "--out", str(zero), "--set", "training.epochs=0"]) == 0  # the initial network
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(one)]) == 0
    err = capsys.readouterr().err
    assert ("note: [geometry].n_train = 601 leaves one point after 6 batches of [training].batch_size = 100: it joins "
            "the last of them (101 points)") in err, err
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.getcwd())

    def two_ranks(*args):
        return subprocess.run([mpiexec(), "-n", "2", sys.executable, *args], capture_output=True, text=True,
                              timeout=300, env=env)

    # stopped by SIGTERM just before epoch 2's last batch (101 points), then resumed: the same bits as `two`
    cut = tmp_path / "cut"
    proc = two_ranks(DRIVER, "signal", "1", "4", "0", "nn", str(job), "--out", str(cut))
    assert proc.returncode == 4, proc.stderr
    state = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert (state["train"]["epoch"], state["train"]["position"], state["train"]["step"]) == (1, 5, 11)
    # the uninterrupted run and the resume in one launch of the two ranks (tests/mpi/cli_sequence.py)
    proc = two_ranks(SEQUENCE, "nn", str(job), "--out", str(two), "--next", "nn", str(job), "--out", str(cut),
                     "--resume")
    assert proc.returncode == 0, proc.stderr
    assert re.findall(r"cli_sequence: command (\d) status (\d+)", proc.stdout) == [("0", "0"), ("1", "0")], proc.stdout
    config = json.loads((zero / "model.pt.json").read_text())
    want = _reference(torch.load(zero / "model.pt", weights_only=True), config)
    for out in (one, two):
        state = torch.load(out / "checkpoint.pt", weights_only=True)
        assert (state["train"]["epoch"], state["train"]["step"]) == (2, 12), out  # six optimiser steps an epoch
        _close(torch.load(out / "model.pt", weights_only=True), want)
    resumed, whole = (torch.load(d / "model.pt", weights_only=True) for d in (cut, two))
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_a_checkpoint_of_one_point_batches_is_refused_in_one_line(tmp_path, capsys):
    """A checkpoint whose counters are those of 7 steps an epoch (the one-point batch its own) cannot go on with 6:
    refused in one line saying so, exit 2, not called damaged."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    out = tmp_path / "run"
    assert main(["nn", str(job), "--out", str(out), "--set", "training.epochs=1"]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["train"]["step"] = 7  # epoch 1 of 7 batches, as the training before wrote it
    torch.save(state, out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "trained the one point left after 6 batches" in err and "damaged" not in err, err


def test_metric_data_batches_put_a_one_point_remainder_into_the_last_batch():
    from hpcflow.geometry import Hypersurface
    from hpcflow.nn.data import MetricData

    data = MetricData.from_pointset(Hypersurface.fermat(3).sample(602, seed=3))
    for n, sizes in ((601, [100] * 5 + [101]), (602, [100] * 6 + [2]), (600, [100] * 6), (101, [101]), (50, [50])):
        batches = list(data[:n].batches(100, torch.Generator().manual_seed(0)))
        assert [len(b) for b in batches] == sizes, n
        assert len(torch.unique(torch.cat([b.x for b in batches]), dim=0)) == n  # every point once


def test_the_width_sweep_and_the_kernel_flow_network_say_their_one_point_batch_once(tmp_path, capsys):
    """Batches of 50: the 200 train points of the network leave none, the sweep's first 101 one (after 2 batches,
    trained at two widths) and the kernel flow network's 51 one (after 1 batch); each of those two is said once on
    stderr, at one rank and by rank 0 alone at two."""
    job = tmp_path / "job.toml"
    job.write_text(NN_POINTS + SMALL_NET + TINY_TRAINING.replace("epochs = 4", "epochs = 1").replace(
        "batch_size = 100", "batch_size = 50") + SMALL_SWEEP.replace("n_train = 100", "n_train = 101")
        + "[kernel_flow]\nenabled = true\nn_train = 51\nn_test = 50\nsteps = 2\n")
    sweep = ("note: [width_sweep].n_train = 101 leaves one point after 2 batches of [training].batch_size = 50: it "
             "joins the last of them (51 points), since σ of one point is 0 (no gradient)")
    flow = ("note: [kernel_flow].n_train = 51 leaves one point after 1 batch of [training].batch_size = 50: it "
            "joins the last of them (51 points)")
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(tmp_path / "one")]) == 0
    err = capsys.readouterr().err
    assert err.count(sweep) == 1 and err.count(flow) == 1 and "[geometry].n_train = 200 leaves" not in err, err
    proc = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "nn", str(job), "--out",
                           str(tmp_path / "two")], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.getcwd()))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count(sweep) == 1 and proc.stderr.count(flow) == 1, proc.stderr
