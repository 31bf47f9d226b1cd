"""`hpcflow nn` data parallel at 1, 2 and 3 ranks, checkpoints and --resume, divergence, a failing rank.

Rank counts differ only in summation order (gradients and κ sums of a batch split over ranks), so σ per epoch
and the final parameters agree to rounding amplified over ~20 optimiser steps (measured ~1e-16; 1e-10 asked);
a resumed run repeats the uninterrupted one bit for bit at the same rank count.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from h5data import datasets  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from jobtexts import SMALL_NET  # noqa: E402
from test_parallel import each_rank_status, rank_statuses  # noqa: E402

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "nn_driver.py")
SEQUENCE = os.path.join(os.path.dirname(__file__), "mpi", "cli_sequence.py")
#: datasets that hold wall-clock times, different in any two runs
TIMINGS = {"history/epoch_seconds", "history/comm_seconds", "ntk/ntk_seconds"}

JOB = """
[job]
kind = "nn"
[geometry]
n_train = 300
n_val = 150
seed = 3
""" + SMALL_NET + """[training]
epochs = 3
batch_size = 70
lr = 3e-3
loss = "LOSS"
threads = 1
check_replicas = true
[ntk]
n_train_points = 3
n_test_points = 2
[checkpoint]
every = 1
[width_sweep]
n_train = 100
[kernel_flow]
n_train = 30
n_test = 20
"""


def mpiexec():
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert exe, "mpiexec not found: install the test extra (mpich wheel)"
    return exe


def _env():
    return dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.getcwd())


def _job(tmp_path, loss):
    p = tmp_path / f"job_{loss}.toml"
    p.write_text(JOB.replace("LOSS", loss))
    return str(p)


def _mpi(ranks, args, *, driver=None, timeout=120, sequence=False):
    """`hpcflow ARGS` on `ranks` ranks; through nn_driver.py with the arguments `driver` first, or with
    `sequence` through cli_sequence.py (ARGS: its command groups)."""
    prog = [sys.executable, DRIVER, *driver] if driver else [sys.executable, "-m", "hpcflow"]
    if sequence:
        prog = [sys.executable, SEQUENCE]
    return subprocess.run([mpiexec(), "-n", str(ranks), *prog, *args], capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _state(path):
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The ultralocal job at 1 (in process), 2 and 3 ranks, and the σ-loss job at 1 and 2 ranks (the two jobs at 2
    ranks in one launch: tests/mpi/cli_sequence.py, one start-up of torch; each run's output its own)."""
    tmp = tmp_path_factory.mktemp("nnmpi")
    out = {"tmp": tmp, "jobs": {loss: _job(tmp, loss) for loss in ("ultralocal", "sigma")}}
    for loss in ("ultralocal", "sigma"):
        out[loss, 1] = str(tmp / f"{loss}1")
        assert main(["nn", out["jobs"][loss], "--out", out[loss, 1]]) == 0
    for ranks, losses in ((2, ("ultralocal", "sigma")), (3, ("ultralocal",))):
        args = []
        for loss in losses:
            out[loss, ranks] = str(tmp / f"{loss}{ranks}")
            args += ["--next", "nn", out["jobs"][loss], "--out", out[loss, ranks]]
        p = _mpi(ranks, args[1:], sequence=True)
        assert p.returncode == 0, p.stderr
        said = re.split(r"cli_sequence: command \d+ status 0\n", p.stdout)
        assert len(said) == len(losses) + 1 and not said[-1], p.stdout  # every command ran, and ended with 0
        for loss, text in zip(losses, said):
            out["stdout", loss, ranks] = text
        out["stderr", ranks], out["losses", ranks] = p.stderr, losses  # (stderr has no per-command marks)
    return out


@pytest.mark.parametrize("loss,ranks", [("ultralocal", 2), ("ultralocal", 3), ("sigma", 2)])
def test_rank_counts_give_the_same_training(runs, loss, ranks):
    one, many = datasets(os.path.join(runs[loss, 1], "nn.h5")), datasets(os.path.join(runs[loss, ranks], "nn.h5"))
    for key in ("history/sigma_val", "history/sigma_train", "history/loss", "ntk/ntk_train_test"):
        np.testing.assert_allclose(many[key], one[key], rtol=1e-10, atol=0, err_msg=key)
    # the not-positive-definite count is summed over the ranks' validation rows: the same integers at every R
    np.testing.assert_array_equal(many["history/val_not_positive_definite"], one["history/val_not_positive_definite"])
    assert len(one["history/sigma_val"]) == 4 and one["history/sigma_val"][-1] < one["history/sigma_val"][0]
    a, b = _state(os.path.join(runs[loss, 1], "model.pt")), _state(os.path.join(runs[loss, ranks], "model.pt"))
    for k in a:
        assert torch.max(torch.abs(a[k] - b[k])) <= 1e-10 * torch.max(torch.abs(a[k])), k
    summary = json.loads(open(os.path.join(runs[loss, ranks], "summary.json")).read())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 3 and summary["ranks"] == ranks
    assert sorted(p["n_train_local"] for p in summary["per_rank"]) == sorted([300 // ranks] * ranks)
    assert all(p["allreduce_calls"] == 3 * 5 for p in summary["per_rank"])  # 5 batches (4 x 70 + 20) per epoch
    assert many["history/comm_seconds"].shape == (3, ranks) and one["history/comm_seconds"].shape == (3, 1)


def _assert_same_run(a_dir, b_dir):
    a, b = datasets(os.path.join(a_dir, "nn.h5")), datasets(os.path.join(b_dir, "nn.h5"))
    assert a.keys() == b.keys()
    for key in sorted(set(a) - TIMINGS):
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)
    sa, sb = _state(os.path.join(a_dir, "model.pt")), _state(os.path.join(b_dir, "model.pt"))
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    ca, cb = _state(os.path.join(a_dir, "checkpoint.pt")), _state(os.path.join(b_dir, "checkpoint.pt"))
    for pid, st in ca["train"]["optimizer"]["state"].items():
        for name, t in st.items():
            assert torch.equal(t, cb["train"]["optimizer"]["state"][pid][name]), (pid, name)


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_batch_split_into_few_rows_per_rank_is_noted_once_on_stderr(runs, ranks):
    """A note, like the others (stderr): stdout keeps only the run's progress lines."""
    losses = runs["losses", ranks]
    assert not any("rows per rank" in runs["stdout", loss, ranks] for loss in losses)
    lines = [s for s in runs["stderr", ranks].splitlines() if "rows per rank" in s]
    assert len(lines) == len(losses)  # rank 0 only, once for each command of the launch
    split = {2: "35", 3: "23.3"}[ranks]  # the mean share of a global batch of 70 rows (1 in 0.5 was "0")
    for line in lines:
        assert line.startswith("hpcflow nn: note: batch_size = 70 over "), line
        assert f"batch_size = 70 over {ranks} ranks is {split} rows per rank" in line


def test_sigterm_mid_epoch_then_resume_is_bitwise_the_uninterrupted_run_at_2_ranks(runs):
    """SIGTERM reaches rank 1 after batch 2 of epoch 2: the next step boundary writes the checkpoint and every
    rank stops with status 4; --resume then finishes the run exactly as the uninterrupted one. The checkpoint holds
    each rank's seconds in collectives of the unfinished epoch: the resume at R = 2 continues each rank's own (every
    rank took rank 0's), the one at R = 1 has none of its ranks' (its row showed rank 0's 2-rank seconds)."""
    d, statuses = str(runs["tmp"] / "sig2"), runs["tmp"] / "sig2_statuses"
    cmd = [sys.executable, DRIVER, "signal", "1", "2", "1", "nn", runs["jobs"]["sigma"], "--out", d]
    p = subprocess.run(each_rank_status(statuses, 2, cmd), capture_output=True, text=True, timeout=120, env=_env())
    assert p.returncode == 4, p.stderr
    assert rank_statuses(statuses, 2) == [4, 4]  # each rank's own (mpiexec's is theirs ORed: 4 | 0 reads 4)
    said = [line for line in p.stderr.strip().splitlines() if ": note: " not in line]  # (the few rows' note)
    assert len(said) == 1 and "--resume" in said[0], p.stderr
    summary = json.loads(open(os.path.join(d, "summary.json")).read())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == 1
    ck = _state(os.path.join(d, "checkpoint.pt"))
    assert (ck["train"]["epoch"], ck["train"]["position"], ck["status"]) == (1, 3, "running")
    assert not os.path.exists(os.path.join(d, "nn.h5"))
    partial, done = ck["train"]["partial"]["comm_seconds"], ck["train"]["history"]["comm_seconds"].numpy()
    assert isinstance(partial, list) and len(partial) == 2 and min(partial) > 0, partial
    for r, each in enumerate(summary["per_rank"]):  # rank r's seconds so far hold its epoch 1 and its part of 2
        assert each["rank"] == r and each["comm_seconds"] >= done[0, r] + partial[r] - 1e-12, (each, partial)
    other = str(runs["tmp"] / "sig2_on_1")
    shutil.copytree(d, other)
    p = _mpi(2, ["nn", runs["jobs"]["sigma"], "--out", d, "--resume"])
    assert p.returncode == 0, p.stderr
    _assert_same_run(runs["sigma", 2], d)
    assert json.loads(open(os.path.join(d, "summary.json")).read())["status"] == "finished"
    split = datasets(os.path.join(d, "nn.h5"))["history/comm_seconds"][1]  # epoch 2: each rank's part + the rest
    assert np.isfinite(split).all() and (split >= np.asarray(partial)).all(), (split, partial)
    # the same checkpoint resumed on one rank: the training of R = 1 and 2 to rounding, the per-rank seconds of
    # the epoch trained on 2 ranks unknown (NaN) in the 1-rank table
    assert main(["nn", runs["jobs"]["sigma"], "--out", other, "--resume", "--quiet"]) == 0
    a, b = datasets(os.path.join(runs["sigma", 1], "nn.h5")), datasets(os.path.join(other, "nn.h5"))
    for key in ("history/sigma_val", "history/sigma_train", "history/loss"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-10, atol=0, err_msg=key)
    comm = b["history/comm_seconds"]  # epoch 1 on 2 ranks, epoch 2 begun on them: unknown for this rank
    assert comm.shape == (3, 1) and np.isnan(comm[:2]).all() and np.isfinite(comm[2:]).all(), comm


def _sigterm_after_step(monkeypatch, *, epoch, position):
    """What tests/mpi/nn_driver.py's mode "signal" does, in this process: the main training (the one that
    checkpoints) sends SIGTERM to this process after the step that leaves (epoch, position), and again once it has
    stopped (as scancel --full delivers it; a stopped run ignores it)."""
    from hpcflow.nn import train

    init, run = train.Trainer.__init__, train.Trainer.run

    def init_with_fault(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.checkpoint is not None:
            self.on_step = lambda t: (t.epoch, t.pos) == (epoch, position) and os.kill(os.getpid(), signal.SIGTERM)

    def run_then_repeat(self):
        try:
            return run(self)
        finally:
            if self.signalled:
                os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(train.Trainer, "__init__", init_with_fault)
    monkeypatch.setattr(train.Trainer, "run", run_then_repeat)


def test_resume_at_an_epoch_boundary_extension_and_refused_changes(runs, capsys, monkeypatch):
    tmp, job = runs["tmp"], runs["jobs"]["ultralocal"]
    d = str(tmp / "sig1")
    # the signal arrives in the last batch of epoch 2: the epoch-end decision writes the checkpoint (in this process:
    # tests/mpi/nn_driver.py's SIGTERM after the step, a real signal to the handler the run installs)
    with monkeypatch.context() as patch:
        _sigterm_after_step(patch, epoch=1, position=5)
        assert main(["nn", job, "--out", d]) == 4
    capsys.readouterr()
    ck = _state(os.path.join(d, "checkpoint.pt"))
    assert (ck["train"]["epoch"], ck["train"]["position"]) == (2, 0)
    before = {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)}
    # a plain rerun into the preempted directory points to --resume
    assert main(["nn", job, "--out", d]) == 2
    assert "--resume" in capsys.readouterr().err
    # a changed job is refused in one line, before any work, nothing touched
    assert main(["nn", job, "--out", d, "--resume", "--set", "training.lr=1e-3", "--set", "model.width=9"]) == 2
    err = capsys.readouterr().err
    assert "[training].lr" in err and len(err.strip().splitlines()) == 1
    # ... naming the --set arguments that restore the checkpoint's job, which --check then accepts
    restore = re.search(r"resume with ((--set \S+ ?)+)", err).group(1).split()
    assert restore == ["--set", "model.width=8", "--set", "training.lr=0.003"], err  # the job file's values
    assert main(["nn", job, "--out", d, "--resume", "--set", "training.lr=1e-3", "--set", "model.width=9",
                 *restore, "--check"]) == 0
    assert main(["nn", job, "--out", d, "--resume", "--set", "training.epochs=1"]) == 2
    assert "epochs" in capsys.readouterr().err
    assert {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)} == before
    assert main(["nn", job, "--out", d, "--resume", "--set", "checkpoint.every=0"]) == 0
    _assert_same_run(runs["ultralocal", 1], d)
    # a finished 3-epoch run extended to 4 epochs equals a 4-epoch run (exponential schedule: lr per epoch)
    assert main(["nn", job, "--out", d, "--resume", "--set", "training.epochs=4"]) == 0
    full = str(tmp / "four")
    assert main(["nn", job, "--out", full, "--set", "training.epochs=4"]) == 0
    _assert_same_run(full, d)
    assert json.loads(open(os.path.join(d, "summary.json")).read())["checkpoint_step"] == 4


def test_divergence_stops_with_status_3_and_keeps_the_last_finite_epoch(runs, capsys):
    """float32 Adam whose learning rate grows 135-fold per epoch (3e-3, 0.4, 55, 7.4e3): the first epoch stays
    finite, a later one overflows float32; the outputs equal the run that stops there by its epoch count."""
    tmp, job = runs["tmp"], runs["jobs"]["ultralocal"]
    absurd = ["--set", 'model.dtype="float32"', "--set", "training.lr_decay=135.0"]
    d = str(tmp / "div")
    assert main(["nn", job, "--out", d, *absurd, "--set", "training.epochs=4"]) == 3
    err = capsys.readouterr().err
    assert "diverged" in err and len(err.strip().splitlines()) == 1
    summary = json.loads(open(os.path.join(d, "summary.json")).read())
    last = summary["checkpoint_step"]
    assert summary["status"] == "diverged" and 1 <= last < 4
    ref = str(tmp / "finite_part")  # the same run stopped after the last finite epoch by its epoch count
    assert main(["nn", job, "--out", ref, *absurd, "--set", f"training.epochs={last}"]) == 0
    got, want = datasets(os.path.join(d, "nn.h5")), datasets(os.path.join(ref, "nn.h5"))
    assert len(got["history/sigma_val"]) == last + 1 and np.all(np.isfinite(got["history/sigma_val"]))
    for key in sorted(set(want) - TIMINGS):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    sa, sb = _state(os.path.join(d, "model.pt")), _state(os.path.join(ref, "model.pt"))
    assert all(torch.equal(sa[k], sb[k]) and torch.isfinite(sa[k]).all() for k in sa)
    assert _state(os.path.join(d, "checkpoint.pt"))["status"] == "diverged"
    # --resume keeps the [training] settings, so it would train the diverging epoch again: nothing to do, status 3
    before = {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)}
    capsys.readouterr()
    assert main(["nn", job, "--out", d, *absurd, "--set", "training.epochs=4", "--resume"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"diverged in epoch {last + 1}" in err and "nothing to do" in err, err
    assert {n: open(os.path.join(d, n), "rb").read() for n in os.listdir(d)} == before


def test_a_rank_that_raises_mid_epoch_ends_the_job_nonzero(runs):
    d = str(runs["tmp"] / "crash")
    # bad input under mpiexec: the ranks refuse together, one line (from rank 0), nothing created
    p = _mpi(2, ["nn", runs["jobs"]["sigma"], "--out", d, "--set", "training.batch_size=0"])
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "batch_size" in p.stderr
    assert not os.path.exists(d)
    p = _mpi(2, ["nn", runs["jobs"]["sigma"], "--out", d], driver=["raise", "0", "2", "1"], timeout=90)
    assert p.returncode != 0
    assert "rank 1" in p.stderr and "injected failure" in p.stderr


def test_writing_checkpoints_after_every_step_does_not_change_the_run(runs):
    """[checkpoint].seconds tiny: a checkpoint at every step boundary (mid-epoch ones included); same bits."""
    d = str(runs["tmp"] / "often")
    assert main(["nn", runs["jobs"]["ultralocal"], "--out", d, "--set", "checkpoint.seconds=1e-9"]) == 0
    _assert_same_run(runs["ultralocal", 1], d)


@pytest.fixture(scope="module")
def nn_h5_rewritten(runs):
    """The finished 2-rank σ-loss run copied back without its nn.h5 ("missing") and with it cut short ("damaged"),
    each continued by `--resume` at its R = 2, both in one launch (cli_sequence.py: one start-up of torch; each
    command's output its own): {case: (directory, what the command printed)}."""
    dirs = {case: str(runs["tmp"] / f"{case}_back") for case in ("missing", "damaged")}
    for d in dirs.values():
        shutil.copytree(runs["sigma", 2], d)
    os.remove(os.path.join(dirs["missing"], "nn.h5"))  # a copy back that left it out
    nn_h5 = os.path.join(dirs["damaged"], "nn.h5")
    os.truncate(nn_h5, os.path.getsize(nn_h5) // 2)  # a partial copy
    p = _mpi(2, ["nn", runs["jobs"]["sigma"], "--out", dirs["missing"], "--resume", "--next",
                 "nn", runs["jobs"]["sigma"], "--out", dirs["damaged"], "--resume"], sequence=True)
    assert p.returncode == 0, p.stderr
    said = re.split(r"cli_sequence: command \d+ status 0\n", p.stdout)
    assert len(said) == 3 and not said[-1], p.stdout  # both commands ran, and ended with 0
    return {case: (dirs[case], text) for case, text in zip(dirs, said)}


def test_a_finished_2_rank_runs_missing_nn_h5_is_written_again_by_resume_at_2_ranks(runs, nn_h5_rewritten):
    """--resume of a finished run copied back without its nn.h5, at its R = 2: every rank redoes what follows the
    training (rank 0 decides that nn.h5 is missing, for all), nn.h5 comes back as the run wrote it but for its
    seconds, and the line saying so is printed once; it said "nothing to do" and left nn.h5 missing."""
    d, said = nn_h5_rewritten["missing"]
    assert said.count("nn.h5 missing from a finished run") == 1 and "nothing to do" not in said, said
    _assert_same_run(runs["sigma", 2], d)


def test_a_finished_2_rank_runs_damaged_nn_h5_is_written_again_by_resume_at_2_ranks(runs, nn_h5_rewritten):
    """As a missing one: nn.h5 cut short (a partial copy) comes back as the run wrote it but for its seconds, said
    once; --resume refused it ("rerun the job with --force", a retraining)."""
    d, said = nn_h5_rewritten["damaged"]
    assert said.count("nn.h5 damaged in a finished run") == 1 and "nothing to do" not in said, said
    _assert_same_run(runs["sigma", 2], d)
