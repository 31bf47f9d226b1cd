"""A network run interrupted at an epoch boundary and resumed, whose training then diverges, writes the files of the
uninterrupted run that diverged at the same step: nn.h5 (but its timing datasets), model.pt, the checkpoint's
training state (status "diverged", the last finite epoch) and summary.json (but its timings, legs and `resumed`).
The divergence is forced by a learning rate of 1e300 from optimiser step HUGE_FROM on (3 batches per epoch: the
last step of epoch 2, so epoch 2's σ is not finite and epoch 1 is the last finite one); the interruption is a
SIGTERM sent as tests/test_nn_legs.py sends it. A run interrupted within the epoch it then diverges in keeps the
state it resumed from (hpcflow/nn/checkpoint.py says why it cannot hold the epoch boundary before it)."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from test_nn_legs import JOB as LEGS_JOB  # noqa: E402
from test_nn_legs import _stop_at  # noqa: E402

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


def test_a_run_resumed_at_an_epoch_boundary_diverges_to_the_uninterrupted_runs_files(plain, tmp_path, huge_rate):
    tmp, (s0, h0, m0, c0) = plain
    first, (s1, h1, m1, c1) = _resumed(tmp, tmp_path / "run", 0, 3)  # after epoch 1's last step
    assert (first["epoch"], first["position"]) == (1, 0)
    assert s0["status"] == s1["status"] == "diverged" and s0["checkpoint_step"] == 1
    assert h0["history/sigma_val"].shape == (2,) and np.isfinite(h0["history/sigma_val"]).all()
    assert {k: v for k, v in s0.items() if k not in HOW_MADE} == {k: v for k, v in s1.items() if k not in HOW_MADE}
    assert h0.keys() == h1.keys()
    for key in sorted(set(h0) - NN_TIMINGS):
        np.testing.assert_array_equal(h1[key], h0[key], err_msg=key)
    assert _same_tensors(m0, m1) and all(torch.isfinite(t).all() for t in m1.values())
    assert c0["status"] == c1["status"] == "diverged"
    t0, t1 = c0["train"], c1["train"]
    assert (t0["epoch"], t0["step"], t0["position"]) == (t1["epoch"], t1["step"], t1["position"]) == (1, 3, 0)
    assert _same_tensors(t0["model"], t1["model"]) and torch.equal(t0["rng"]["order"], t1["rng"]["order"])
    for pid, st in t0["optimizer"]["state"].items():
        assert _same_tensors(st, t1["optimizer"]["state"][pid])
    for k in ("sigma_train", "sigma_val", "loss", "val_not_positive_definite"):
        assert torch.equal(t0["history"][k], t1["history"][k]), k
    assert _same_tensors({k: v for k, v in c0["ntk"].items() if k != "seconds"},
                         {k: v for k, v in c1["ntk"].items() if k != "seconds"})


def test_a_run_resumed_within_the_epoch_it_diverges_in_keeps_the_state_it_resumed_from(plain, tmp_path, huge_rate,
                                                                                       capsys):
    """Stopped after 1 epoch + 2 batches, the epoch-1 network is not in the checkpoint: the diverged run's checkpoint and
    model.pt hold the (finite) network it resumed, its histories and summary those of the uninterrupted run; --resume
    then has nothing to do and says which state it holds."""
    tmp, (s0, h0, _, _) = plain
    first, (s1, h1, m1, c1) = _resumed(tmp, tmp_path / "run", 1, 1)
    capsys.readouterr()
    assert (first["epoch"], first["position"]) == (1, 2)
    assert {k: v for k, v in s0.items() if k not in HOW_MADE} == {k: v for k, v in s1.items() if k not in HOW_MADE}
    for key in sorted(set(h0) - NN_TIMINGS):
        np.testing.assert_array_equal(h1[key], h0[key], err_msg=key)
    assert c1["status"] == "diverged" and (c1["train"]["epoch"], c1["train"]["position"]) == (1, 2)
    assert _same_tensors(m1, first["model"]) and _same_tensors(c1["train"]["model"], first["model"])
    assert main(["nn", str(tmp / "job.toml"), "--out", str(tmp_path / "run"), "--resume", "--quiet"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "diverged in epoch 2 (it holds epoch 1 + 2 batches, its last finite state): nothing " \
        "to do" in err[0], err
