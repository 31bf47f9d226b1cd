"""`hpcflow nn --resume` of a finished run: a model.pt that loads but is not the network in checkpoint.pt (another
dtype, other values, another config) is written again from it; `load_model` refuses tensors of another dtype than
model.pt.json's instead of converting them."""

import json

import pytest

torch = pytest.importorskip("torch")

from hpcflow.cli import main  # noqa: E402
from hpcflow.errors import InputFileError  # noqa: E402
from jobtexts import NN_POINTS, SMALL_NET, TINY_TRAINING  # noqa: E402

TINY = NN_POINTS + SMALL_NET + TINY_TRAINING


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run: (its job file, its directory)."""
    base = tmp_path_factory.mktemp("finished")
    job = base / "job.toml"
    job.write_text(TINY)
    assert main(["nn", str(job), "--out", str(base / "run")]) == 0
    return str(job), base / "run"


def _copy(run, to):
    import shutil

    shutil.copytree(run, to)
    return to


def _final_model(run) -> dict:
    return torch.load(run / "checkpoint.pt", weights_only=True)["train"]["model"]


def _same_bits(a: dict, b: dict) -> bool:
    return sorted(a) == sorted(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and a[k].contiguous().numpy().tobytes() == b[k].contiguous().numpy().tobytes() for k in a)


def test_load_model_refuses_tensors_of_another_dtype_than_its_json(finished, tmp_path):
    """model.pt of float32 tensors beside a model.pt.json of dtype float64: one error naming the file and the
    tensor's dtype; before, the weights were converted to float64 without a word."""
    from hpcflow.nn.checkpoint import load_model

    run = _copy(finished[1], tmp_path / "run")
    assert json.loads((run / "model.pt.json").read_text())["dtype"] == "float64"
    weights = torch.load(run / "model.pt", weights_only=True)
    torch.save({k: v.float() for k, v in weights.items()}, run / "model.pt")
    with pytest.raises(InputFileError) as err:
        load_model(run / "model.pt")
    said = str(err.value)
    assert "\n" not in said and str(run / "model.pt") in said and "float32" in said and "float64" in said, said


@pytest.mark.parametrize("change", ["float32", "one weight + 1", "lowest bit", "config"])
def test_resume_writes_a_model_that_is_not_the_checkpoints_again(finished, tmp_path, capsys, change):
    """A finished run whose model.pt loads but is not checkpoint.pt's final network (its weights as float32, one of
    them changed by 1, or by its lowest bit) or whose model.pt.json is another network's config: --resume
    with nothing to train writes both again and says why in one line naming model.pt; it said "nothing to do" and
    kept them."""
    job, done = finished
    run = _copy(done, tmp_path / "run")
    weights = torch.load(run / "model.pt", weights_only=True)
    config = (run / "model.pt.json").read_text()
    if change == "float32":
        torch.save({k: v.float() for k, v in weights.items()}, run / "model.pt")
    elif change == "config":
        cfg = json.loads(config)
        cfg["output_scale"] = 2 * cfg["output_scale"]
        (run / "model.pt.json").write_text(json.dumps(cfg))
    else:
        k = next(iter(weights))
        t = weights[k].clone()
        if change == "lowest bit":  # 1 ulp: equal to any tolerance, not bitwise
            t.view(torch.int64).view(-1)[0] ^= 1
        else:
            t.view(-1)[0] += 1
        weights[k] = t
        torch.save(weights, run / "model.pt")
    capsys.readouterr()
    assert main(["nn", job, "--out", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    said = [s for s in out.splitlines() if "again from checkpoint.pt" in s]
    assert len(said) == 1 and f"{run}: model.pt" in said[0], out
    assert "nothing to do" in out
    assert _same_bits(torch.load(run / "model.pt", weights_only=True), _final_model(run))
    assert json.loads((run / "model.pt.json").read_text()) == json.loads((done / "model.pt.json").read_text())
    capsys.readouterr()
    assert main(["nn", job, "--out", str(run), "--resume"]) == 0  # now the checkpoint's: nothing written or said
    assert "again from checkpoint.pt" not in capsys.readouterr().out


def test_resume_keeps_a_model_that_is_the_checkpoints(finished, tmp_path, capsys):
    """The run's own model.pt (checkpoint.pt's final network, bit for bit) is kept as it is, byte for byte."""
    job, done = finished
    run = _copy(done, tmp_path / "run")
    before = (run / "model.pt").read_bytes()
    assert _same_bits(torch.load(run / "model.pt", weights_only=True), _final_model(run))
    capsys.readouterr()
    assert main(["nn", job, "--out", str(run), "--resume"]) == 0
    assert "again from checkpoint.pt" not in capsys.readouterr().out
    assert (run / "model.pt").read_bytes() == before


@pytest.mark.parametrize("damage", ["float32 history", "other history"])
def test_resume_that_rewrites_nn_h5_names_it_and_why_and_trains_nothing(finished, tmp_path, capsys, damage):
    """A finished run whose nn.h5 holds history/sigma_val as float32, or a value other than checkpoint.pt's: the
    resume says in one line that nn.h5 is rewritten and why (the dataset named), and says no "resuming after epoch
    4 (+0 batches) of 4", which read as if training went on: it says that nothing is left to train."""
    import h5py
    import numpy as np

    job, done = finished
    run = _copy(done, tmp_path / "run")
    with h5py.File(run / "nn.h5", "a") as f:
        v = f["history/sigma_val"][:]
        del f["history/sigma_val"]
        if damage == "float32 history":
            f["history/sigma_val"] = v.astype(np.float32)
        else:
            f["history/sigma_val"] = v + np.arange(len(v)) * 1e-3
    capsys.readouterr()
    assert main(["nn", job, "--out", str(run), "--resume"]) == 0
    out = capsys.readouterr().out
    said = [s for s in out.splitlines() if "nn.h5" in s]
    assert len(said) == 1 and f"{run}: nn.h5 damaged in a finished run" in said[0], out
    assert "history/sigma_val" in said[0] and ("float32" in said[0]) == (damage == "float32 history"), said
    assert "resuming after" not in out and "nothing to train" in out, out
    with h5py.File(run / "nn.h5") as f, h5py.File(done / "nn.h5") as g:
        assert f["history/sigma_val"].dtype == np.float64
        np.testing.assert_array_equal(f["history/sigma_val"][:], g["history/sigma_val"][:])
