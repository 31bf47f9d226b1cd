"""A network run that ends at a write the file system refuses (exit status 5: here ENOSPC, as on a full scratch)
records that in its checkpoint.pt's legs: the leg's status "write_failed", not "running" or "trained" (docs/outputs.md:
killed without a signal, or after training), where that record can still be written; where it cannot (the disk full
for it too), the leg keeps the status of its last write, as the docs say of "running". Either way the checkpoint is
the last complete one and --resume ends as the uninterrupted run."""

import errno
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from h5data import NN_TIMINGS, datasets  # noqa: E402
from hpcflow.cli import main  # noqa: E402
from hpcflow.errors import WriteFailed  # noqa: E402
from jobtexts import NN_POINTS, SMALL_NET  # noqa: E402

#: 2 epochs of 2 batches, the NTK on 3 + 2 probes, a checkpoint after every epoch
JOB = NN_POINTS + SMALL_NET + """[training]
epochs = 2
batch_size = 100
lr = 3e-3
threads = 1
[ntk]
n_train_points = 3
n_test_points = 2
[checkpoint]
every = 1
"""
REASON = os.strerror(errno.ENOSPC)


def _refused(monkeypatch, module, name, refuse):
    """module.name (a writer of files) refusing the calls for which refuse(n) is true (n = 1, 2, ...: the calls so
    far) with WriteFailed ENOSPC naming its path; the others write."""
    write, calls = getattr(module, name), []

    def writer(path, *args, **kwargs):
        calls.append(path)
        if refuse(len(calls)):
            raise WriteFailed(errno.ENOSPC, REASON, os.fspath(path))
        return write(path, *args, **kwargs)

    monkeypatch.setattr(module, name, writer)
    return calls


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """(job file, an uninterrupted run of JOB)."""
    tmp = tmp_path_factory.mktemp("whole")
    job, out = tmp / "job.toml", tmp / "run"
    job.write_text(JOB)
    assert main(["nn", str(job), "--out", str(out), "--quiet"]) == 0
    return str(job), out


def _legs(out):
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    return state, [(g["from_step"], g["to_step"], g["status"]) for g in state["legs"]]


def _resumed_as_whole(job, out, ref, capsys):
    """--resume of `out` ends as the uninterrupted run `ref`: its nn.h5 the same bit for bit but the seconds."""
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 0
    got, want = datasets(out / "nn.h5"), datasets(ref / "nn.h5")
    assert got.keys() == want.keys()
    for key in sorted(set(got) - NN_TIMINGS):
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_a_checkpoint_write_refused_mid_training_ends_the_leg_as_write_failed(whole, tmp_path, monkeypatch, capsys):
    """The checkpoint of epoch 2 refused (the one of epoch 1 written): exit 5, checkpoint.pt that of epoch 1, whose
    leg says "write_failed" (it said "running": killed without a signal); the resume's legs carry it."""
    from hpcflow.nn import checkpoint

    job, ref = whole
    out = tmp_path / "run"
    calls = _refused(monkeypatch, checkpoint, "save_checkpoint", lambda n: n == 2)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 5
    err = capsys.readouterr().err
    assert err.startswith(f"hpcflow nn: error: cannot write {out / 'checkpoint.pt'} ({REASON}); the last complete "
                          f"checkpoint {out / 'checkpoint.pt'} (1 epoch done) is intact"), err
    assert len(calls) == 3  # epoch 1, epoch 2 (refused), the record of how the leg ended
    state, legs = _legs(out)
    assert state["status"] == "running" and state["train"]["epoch"] == 1
    assert legs == [(0, 1, "write_failed")]
    monkeypatch.undo()
    _resumed_as_whole(job, out, ref, capsys)
    assert _legs(out)[1] == [(0, 1, "write_failed"), (1, 2, "finished")]


def test_an_nn_h5_write_refused_after_training_ends_the_leg_as_write_failed(whole, tmp_path, monkeypatch, capsys):
    """nn.h5 refused once the training is done: exit 5, checkpoint.pt "trained" (the resume redoes what follows the
    training), its leg "write_failed" (it said "trained": killed after training)."""
    from hpcflow.jobs import output

    job, ref = whole
    out = tmp_path / "run"
    _refused(monkeypatch, output, "write_hdf5", lambda n: True)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 5
    assert capsys.readouterr().err.startswith(f"hpcflow nn: error: cannot write {out / 'nn.h5'} ({REASON}); ")
    state, legs = _legs(out)
    assert state["status"] == "trained" and legs == [(0, 2, "write_failed")]
    assert not (out / "nn.h5").exists() and not (out / "summary.json").exists()
    monkeypatch.undo()
    _resumed_as_whole(job, out, ref, capsys)
    assert _legs(out)[1] == [(0, 2, "write_failed"), (2, 2, "finished")]


def test_where_the_disk_refuses_the_record_too_the_leg_keeps_its_last_writes_status(whole, tmp_path, monkeypatch,
                                                                                     capsys):
    """Every checkpoint write after the first refused (a full disk): the leg's end cannot be recorded, so it keeps
    what its last write said ("running", which the docs give as killed without a signal or ended at a refused write
    whose record could not be written), the file that of epoch 1 whole; the exit is 5 with the write's own line."""
    from hpcflow.nn import checkpoint

    job, ref = whole
    out = tmp_path / "run"
    calls = _refused(monkeypatch, checkpoint, "save_checkpoint", lambda n: n >= 2)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot write {out / 'checkpoint.pt'} ({REASON})" in err, err
    assert len(calls) == 3  # the record was tried
    state, legs = _legs(out)
    assert state["train"]["epoch"] == 1 and legs == [(0, 1, "running")]
    monkeypatch.undo()
    _resumed_as_whole(job, out, ref, capsys)
    assert _legs(out)[1] == [(0, 1, "running"), (1, 2, "finished")]
