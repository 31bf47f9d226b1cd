"""A network run interrupted and resumed, whose training then diverges, writes the files of the uninterrupted run
that diverged at the same step: nn.h5 (but its timing datasets), model.pt, the checkpoint (status "diverged", the
last finite epoch; but its legs and wall-clock entries) and summary.json (but its timings, legs and `resumed`), also
where it was interrupted part way into the epoch it diverges in (the checkpoint then holds that epoch's start:
train.epoch_start). The divergence is forced by a learning rate of 1e300 from optimiser step HUGE_FROM on (3 batches
per epoch: the last step of epoch 2, so epoch 2's σ is not finite and epoch 1 is the last finite one); the
interruption is a SIGTERM sent as tests/test_nn_legs.py sends it. A checkpoint without train.epoch_start (written
before it was kept) resumes and diverges to the state it holds (hpcflow/nn/checkpoint.py)."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from test_nn_checkpoint_repro import _entry  # noqa: E402
from test_nn_legs import JOB as LEGS_JOB  # noqa: E402
from test_nn_legs import _documented_checkpoint_entries, _stop_at  # noqa: E402

HUGE_FROM = 5  # steps 0-2: epoch 1, 3-5: epoch 2
#: the legs chain's network, points and training (batches of 70 of 200 points: 3 an epoch) over 3 epochs, no
#: periodic checkpoint, sweep or kernel flow
JOB = LEGS_JOB.split("[checkpoint]")[0].replace("epochs = 2\n", "epochs = 3\n")
#: summary.json entries that describe how the run was made, not what it computed
HOW_MADE = ("wall_seconds", "wall_seconds_total", "legs", "resumed", "resumed_with", "provenance",
            "train_seconds", "seconds_per_epoch")


def _huge_rate(mp) -> None:
    """The learning rate 1e300 from optimiser step HUGE_FROM on (`mp`: a pytest MonkeyPatch)."""
    from hpcflow.nn import train as T

    rate = T.learning_rate
    mp.setattr(T, "learning_rate", lambda c, step, epoch, total: 1e300 if step >= HUGE_FROM
               else rate(c, step, epoch, total))


@pytest.fixture
def huge_rate(monkeypatch):
    _huge_rate(monkeypatch)


def _files(out):
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    return (summary, datasets(os.path.join(out, "nn.h5")), torch.load(os.path.join(out, "model.pt"), weights_only=True),
            torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True))


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nndiverged")
    (tmp / "job.toml").write_text(JOB)
    with pytest.MonkeyPatch.context() as mp:
        _huge_rate(mp)
        assert main(["nn", str(tmp / "job.toml"), "--out", str(tmp / "plain"), "--quiet"]) == 3
    return tmp, _files(tmp / "plain")


def _same_tensors(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _resumed(tmp, out, epoch, position):
    """The job stopped by SIGTERM sent after step `position` of epoch `epoch` + 1 (honoured at the next step
    boundary), then resumed to its divergence: exit statuses 4, then 3."""
    job = str(tmp / "job.toml")
    with _stop_at(epoch=epoch, position=position):
        assert main(["nn", job, "--out", str(out), "--quiet"]) == 4
    first = torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)["train"]
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 3
    return first, _files(out)


def _same_entries(a, b) -> bool:
    """Whether `a` and `b` (a checkpoint's entries) hold the same types, keys in the same order and equal values,
    tensors of the same dtype and shape; the bytes of two equal checkpoints may still differ in how pickle shares
    equal strings between them."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_entries(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_entries(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a == b


def _same_checkpoints(a: dict, b: dict) -> bool:
    """Whether checkpoints `a` and `b` hold the same entries but for their legs and wall-clock entries."""
    from hpcflow.nn.checkpoint import TIMINGS

    a, b = ({k: v for k, v in c.items() if k != "legs"} for c in (a, b))
    for name in TIMINGS:
        if not name.startswith("legs"):
            for (na, k), (nb, _) in zip(_entry(a, name), _entry(b, name)):
                nb[k] = na[k]
    return _same_entries(a, b)


@pytest.mark.parametrize("epoch, position, saved", [(0, 3, (1, 0)), (1, 1, (1, 2))])
def test_a_resumed_run_diverges_to_the_uninterrupted_runs_files(plain, tmp_path, huge_rate, epoch, position, saved):
    """Stopped at the end of epoch 1 (the signal after its last step), or after epoch 1 + 2 batches: the checkpoint
    then holds the network and optimiser of epoch 1 too (train.epoch_start), which the divergence writes."""
    tmp, (s0, h0, m0, c0) = plain
    first, (s1, h1, m1, c1) = _resumed(tmp, tmp_path / "run", epoch, position)
    assert (first["epoch"], first["position"]) == saved and ("epoch_start" in first) == bool(saved[1])
    if "epoch_start" in first:  # epoch 1's network and optimiser, as the uninterrupted run's diverged checkpoint
        assert _same_entries({k: c0["train"][k] for k in ("model", "optimizer")}, first["epoch_start"])
        assert "train.epoch_start" in _documented_checkpoint_entries()
    assert s0["status"] == s1["status"] == "diverged" and s0["checkpoint_step"] == 1
    assert h0["history/sigma_val"].shape == (2,) and np.isfinite(h0["history/sigma_val"]).all()
    assert {k: v for k, v in s0.items() if k not in HOW_MADE} == {k: v for k, v in s1.items() if k not in HOW_MADE}
    assert h0.keys() == h1.keys()
    for key in sorted(set(h0) - NN_TIMINGS):
        np.testing.assert_array_equal(h1[key], h0[key], err_msg=key)
    assert _same_tensors(m0, m1) and all(torch.isfinite(t).all() for t in m1.values())
    assert c0["status"] == "diverged" and (c0["train"]["epoch"], c0["train"]["position"]) == (1, 0)
    assert _same_checkpoints(c0, c1)


def test_a_checkpoint_within_the_epoch_without_its_start_resumes_and_diverges_to_the_state_it_held(plain, tmp_path,
                                                                                                   huge_rate, capsys):
    """A checkpoint written part way into an epoch before train.epoch_start was kept: the run resumed from it that
    diverges in that epoch writes the (finite) network it resumed as "diverged", with the histories and summary of the
    uninterrupted run; --resume then has nothing to do and says which state it holds."""
    tmp, (s0, h0, _, _) = plain
    job, out = str(tmp / "job.toml"), tmp_path / "run"
    with _stop_at(epoch=1, position=1):
        assert main(["nn", job, "--out", str(out), "--quiet"]) == 4
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    first = state["train"]
    assert (first["epoch"], first["position"]) == (1, 2)
    del first["epoch_start"]
    torch.save(state, out / "checkpoint.pt")
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 3
    s1, h1, m1, c1 = _files(out)
    assert {k: v for k, v in s0.items() if k not in HOW_MADE} == {k: v for k, v in s1.items() if k not in HOW_MADE}
    for key in sorted(set(h0) - NN_TIMINGS):
        np.testing.assert_array_equal(h1[key], h0[key], err_msg=key)
    assert c1["status"] == "diverged" and (c1["train"]["epoch"], c1["train"]["position"]) == (1, 2)
    assert _same_tensors(m1, first["model"]) and _same_tensors(c1["train"]["model"], first["model"])
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged in epoch 2 (it holds epoch 1 + 2 batches, its last finite state): nothing " \
        "to do" in err[0], err
    (out / "nn.h5").unlink()  # a resume would train the diverging epoch again: nn.h5 stays missing, and it says so
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to do; its nn.h5 is missing; a resume would train epoch 2 again" in err[0], err
    assert not (out / "nn.h5").exists()


@pytest.mark.parametrize("keys", [("model", "layers.0.weight"), ("optimizer", "state", 0, "exp_avg")])
def test_a_start_of_epoch_tensor_that_does_not_fit_the_job_is_refused_before_any_work(plain, tmp_path, capsys, keys):
    """train.epoch_start's tensors are checked as train.model's and train.optimizer's: one of another shape is
    refused in one line naming it (exit 2), not loaded when the run diverges."""
    tmp, _ = plain
    job, out = str(tmp / "job.toml"), tmp_path / "run"
    with _stop_at(epoch=1, position=1):
        assert main(["nn", job, "--out", str(out), "--quiet"]) == 4
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    node = state["train"]["epoch_start"]
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = node[keys[-1]][:1]
    torch.save(state, out / "checkpoint.pt")
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    name = "train.epoch_start." + ".".join(map(str, keys))
    assert len(err.splitlines()) == 1 and f"entry {name} (" in err and "damaged" in err, err
