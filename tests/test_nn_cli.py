"""`hpcflow nn JOB.toml --out DIR`: outputs (HDF5, summary.json, checkpoint) and job-file errors (exit 2)."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

pytest.importorskip("torch")

from hpcflow.cli import main  # noqa: E402
from jobtexts import NN_POINTS, SMALL_NET, SMALL_SWEEP, TINY_TRAINING, pt_archive  # noqa: E402

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "outputs.md")

JOB = """
[job]
kind = "nn"
[geometry]
n_train = 400
n_val = 200
seed = 3
""" + SMALL_NET + """[training]
epochs = 2
batch_size = 100
lr = 3e-3
threads = 1
[ntk]
n_train_points = 4
n_test_points = 3
""" + SMALL_SWEEP + """[kernel_flow]
enabled = true
n_train = 30
n_test = 20
steps = 2
"""


def _write(tmp_path, text, name="job.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_nn_job_writes_history_ntk_summary_and_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["nn", _write(tmp_path, JOB), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    for key in ("sigma_val_initial", "sigma_val_final", "epochs", "ntk_wasserstein", "wall_seconds"):
        assert key in summary
    assert summary["epochs"] == 2 and len(summary["ntk_wasserstein"]) == 3 and summary["ntk_wasserstein"][0] == 0
    with h5py.File(out / "nn.h5") as f:
        assert f["ntk/ntk_train_test"].shape == (3, 9, 9, 4, 3)
        assert f["ntk/spectrum"].shape == (3, 81 * 4)
        assert f["history/sigma_val"].shape == (3,)
        np.testing.assert_allclose(f["history/sigma_val"][()][[0, -1]],
                                   [summary["sigma_val_initial"], summary["sigma_val_final"]])
        assert list(f["width_sweep/width"][()]) == [4, 8]
        assert f["kernel_flow/sigma_test"].shape == (3,)
        assert "conventions" in f.attrs
    from hpcflow.nn.checkpoint import load_model

    assert load_model(out / "model.pt").config["width"] == 8
    # a second run into the same directory is refused, nothing overwritten
    before = (out / "summary.json").read_text()
    assert main(["nn", _write(tmp_path, JOB), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "summary.json").read_text() == before


@pytest.mark.parametrize("edit,needle", [
    (("[model]\n", "[model]\nfoo = 1\n"), "foo"),
    (('activation = "gelu"', 'activation = "tanh"'), "activation"),
    (("n_train = 30", "n_train = 5000"), "kernel_flow].n_train"),
    (('kind = "nn"', 'kind = "flow"'), "hpcflow nn"),
    (("epochs = 2", "epochs = -1"), "epochs"),
    (("lr = 3e-3", "lr = 3e-3\nlr_min = 1e-2"), "lr_min"),
    (("[model]\n", '[model]\nfeatures = "abs"\n'), "features"),
    (("[training]\n", '[training]\nlr_schedule = "step"\n'), "lr_schedule"),
])
def test_bad_job_files_exit_2_before_any_work(tmp_path, capsys, edit, needle):
    out = tmp_path / "run"
    job = _write(tmp_path, JOB.replace(*edit, 1))
    assert main(["nn", job, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "\n" not in err.strip()
    assert not out.exists()


@pytest.mark.parametrize("key, old, new", [
    ("geometry].n_train", "n_train = 400", "n_train = 1"), ("geometry].n_val", "n_val = 200", "n_val = 1"),
    ("width_sweep].n_train", "n_train = 100", "n_train = 1"), ("kernel_flow].n_train", "n_train = 30", "n_train = 1"),
    ("kernel_flow].n_test", "n_test = 20", "n_test = 1"),
])
def test_one_point_sets_are_refused_as_sigma_needs_two(tmp_path, capsys, key, old, new):
    """sigma (eq. B.11) of one point is 0 whatever the metric: a point set a network is trained or scored on
    (train, validation, width sweep, kernel flow) has >= 2 points, as for the flow kinds."""
    out = tmp_path / "run"
    assert main(["nn", _write(tmp_path, JOB.replace(old, new, 1)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"[{key} = 1 must be >= 2 (sigma needs two points" in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_batch_of_one_point_is_refused_as_its_loss_is_zero(tmp_path, capsys):
    """kappa is the batch's mean of eta, so one point has eta/kappa = 1: loss 0, gradient 0, nothing learnt."""
    import torch

    from hpcflow.nn.loss import metric_loss

    v = torch.tensor([[2.0, 0.1, 0.0, 0.1, 3.0, 0.2, 0.0, 0.2, 1.5]], dtype=torch.float64, requires_grad=True)
    for loss in ("sigma", "ultralocal"):  # the reason, from the loss itself on a batch of one point
        value = metric_loss(v, torch.tensor([0.7], dtype=torch.float64), torch.tensor([1.3], dtype=torch.float64),
                            loss=loss)
        (grad,) = torch.autograd.grad(value, v)
        assert value.item() == 0.0 and torch.all(grad == 0)
    out = tmp_path / "run"
    assert main(["nn", _write(tmp_path, JOB.replace("batch_size = 100", "batch_size = 1", 1)), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "[training].batch_size = 1: must lie in [2, " in err and "one point's loss is 0" in err, err
    assert err.count("\n") == 1, err
    assert not out.exists()
    assert main(["nn", _write(tmp_path, JOB.replace("batch_size = 100", "batch_size = 2", 1)), "--out", str(out),
                 "--check"]) == 0


def test_two_point_sets_are_accepted(tmp_path):
    from hpcflow.jobs import registry

    two = [f"{k}=2" for k in ("geometry.n_train", "geometry.n_val", "width_sweep.n_train", "kernel_flow.n_train",
                              "kernel_flow.n_test", "ntk.n_train_points", "ntk.n_test_points")]
    cfg = registry.load(_write(tmp_path, JOB), two)[1]
    assert (cfg["geometry"]["n_val"], cfg["width_sweep"]["n_train"], cfg["kernel_flow"]["n_test"]) == (2, 2, 2)


def test_missing_torch_is_a_one_line_error_with_the_install_line(tmp_path):
    """Without torch (simulated: sys.modules['torch'] = None) the job is refused before --out is created."""
    import os
    import subprocess
    import sys

    out = tmp_path / "run"
    code = ("import sys; sys.modules['torch'] = None; from hpcflow.cli import main; "
            f"sys.exit(main(['nn', {_write(tmp_path, JOB)!r}, '--out', {str(out)!r}]))")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install -e '.[nn]' in the hpcflow checkout" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


REFUSAL = """
import contextlib, io, json, sys
from hpcflow.cli import main
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    rc = main(json.loads(sys.argv[1]))
print(json.dumps([rc, out.getvalue(), err.getvalue(), "torch" in sys.modules]))
"""


def test_refusals_and_check_of_a_fresh_out_do_not_import_torch(tmp_path):
    """A job-file error, --out held by a live run, --out a file, an interrupted --out, and --check of a fresh --out
    are answered without importing torch (~2 s of a refusal's start-up)."""
    import os
    import subprocess
    import sys

    from hpcflow.jobs import outlock
    from hpcflow.nn.checkpoint import CHECKPOINT

    job = _write(tmp_path, JOB)
    (tmp_path / "file").write_text("x")
    (tmp_path / "interrupted").mkdir()
    (tmp_path / "interrupted" / CHECKPOINT).write_bytes(pt_archive())  # (its contents are --resume's to read)
    fresh = tmp_path / "fresh"
    cases = [("job", ["nn", job, "--out", str(fresh), "--set", "ntk.n_train_points=401"]),
             ("held", ["nn", job, "--out", str(tmp_path / "held")]),
             ("file", ["nn", job, "--out", str(tmp_path / "file")]),
             ("interrupted", ["nn", job, "--out", str(tmp_path / "interrupted")]),
             ("check", ["nn", job, "--out", str(fresh), "--check"])]
    said = {}
    lock = outlock.acquire(tmp_path / "held", command="hpcflow run")  # another process's lock to the children
    try:
        for name, argv in cases:  # one process each: torch, once imported, stays
            proc = subprocess.run([sys.executable, "-c", REFUSAL, json.dumps(argv)], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
            assert proc.returncode == 0, proc.stderr
            said[name] = json.loads(proc.stdout)
    finally:
        lock.release()
    expected = {"job": "[ntk].n_train_points = 401 exceeds the 400 sampled points",
                "held": f"is in use by hpcflow run (pid {os.getpid()} on ",
                "file": "exists and is not a directory; choose another --out",
                "interrupted": f"holds an interrupted run ({CHECKPOINT} that no finished summary.json describes)"}
    for name, words in expected.items():
        rc, out, err, _ = said[name]
        assert rc == 2 and out == "" and err.startswith("hpcflow nn: error: ") and words in err, (name, err)
        assert len(err.splitlines()) == 1, (name, err)
    rc, out, err, _ = said["check"]
    assert rc == 0 and err == "" and f"valid; --out {fresh} accepted;" in out and "nothing run" in out, out + err
    assert out.startswith("hpcflow nn: "), out  # as every other line of the command (it said "hpcflow: ")
    assert {name: said[name][3] for name, _ in cases} == {name: False for name, _ in cases}
    assert not fresh.exists() and os.listdir(tmp_path / "interrupted") == [CHECKPOINT]


def test_a_torch_that_fails_to_import_is_refused_before_force_removes_anything(tmp_path):
    """torch found but failing to import (a broken install) is refused by the run, with --out's earlier results
    kept: the job's checks only look torch up, the run imports it before --force clears --out."""
    import os
    import subprocess
    import sys

    (tmp_path / "fake" / "torch").mkdir(parents=True)
    (tmp_path / "fake" / "torch" / "__init__.py").write_text("raise ImportError('libtorch_cpu.so: cannot open')\n")
    out = tmp_path / "run"
    out.mkdir()
    (out / "summary.json").write_text('{"hpcflow_version": "0.1.0"}')  # (an earlier run's: its mark)
    code = ("import sys; from hpcflow.cli import main; "
            f"sys.exit(main(['nn', {_write(tmp_path, JOB)!r}, '--out', {str(out)!r}, '--force']))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), os.getcwd()])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "reinstall it: pip install -e '.[nn]' --force-reinstall in the hpcflow checkout" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert os.listdir(out) == ["summary.json"]


def test_set_overrides_reach_the_nn_job(tmp_path):
    """`--set` changes epochs, the cosine schedule and the input features; the checkpoint records them."""
    out = tmp_path / "run"
    args = ["nn", _write(tmp_path, JOB), "--out", str(out), "--set", "training.epochs=1", "--set",
            "model.features=reim_abs2", "--set", "training.lr_schedule=cosine", "--set", "width_sweep.widths=[]",
            "--set", "kernel_flow.enabled=false"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["config"]["training"]["lr_schedule"] == "cosine"
    assert "width_sweep" not in summary and "kernel_flow" not in summary
    from hpcflow.nn.checkpoint import load_model

    model = load_model(out / "model.pt")
    assert model.config["features"] == "reim_abs2" and model.layers[0].weight.shape[1] == 15
    with h5py.File(out / "nn.h5") as f:
        assert f["history/sigma_val"].shape == (2,)
    assert main(["nn", _write(tmp_path, JOB), "--out", str(tmp_path / "b"), "--set", "job.kind=flow"]) == 2


SMALL = JOB.split("[width_sweep]")[0].replace("[ntk]\n", "[ntk]\nenabled = false\n")


def _edit(state, how):
    import torch

    tr = state["train"]
    if how == "no config":
        del state["config"]
    elif how == "config a list":
        state["config"] = "[1, 2]"
    elif how == "config not JSON":
        state["config"] = "{not json"
    elif how == "no rng":
        del tr["rng"]
    elif how == "negative position":
        tr["position"] = -5
    elif how == "position past the epoch":
        tr["position"] = 10 ** 6
    elif how == "epoch a string":
        tr["epoch"] = "four"
    elif how == "short history":
        tr["history"]["sigma_val"] = tr["history"]["sigma_val"][:1]
    elif how == "no data order":
        del tr["rng"]["order"]
    elif how == "no loss sum":
        del tr["partial"]["loss_sum"]
    elif how == "status unknown":
        state["status"] = "banana"
    elif how == "no ranks":
        state["ranks"] = 0
    elif how == "negative sigma":
        tr["history"]["sigma_val"][0] = -1.0
    elif how == "data order state short":
        tr["rng"]["order"] = tr["rng"]["order"][:10]
    elif how == "data order state zeroed":
        tr["rng"]["order"] = torch.zeros_like(tr["rng"]["order"])
    elif how == "wrong model shape":
        k = next(iter(tr["model"]))
        tr["model"][k] = torch.zeros(3, 3, dtype=torch.float64)
    return state


@pytest.mark.parametrize("how", ["no config", "config a list", "config not JSON", "no rng", "negative position",
                                 "position past the epoch", "epoch a string", "short history", "wrong model shape",
                                 "data order state short", "data order state zeroed", "status unknown", "no ranks",
                                 "negative sigma", "no data order", "no loss sum"])
def test_a_damaged_checkpoint_is_one_line_exit_2_and_left_as_it_was(tmp_path, capsys, how):
    """Entries of checkpoint.pt missing, mistyped or out of range (a file torch still loads): --resume refuses in one
    line naming the file (exit 2), the checkpoint unchanged; a sound checkpoint resumes."""
    import torch

    job, out = _write(tmp_path, SMALL), tmp_path / "run"
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 0
    ck = out / "checkpoint.pt"
    torch.save(_edit(torch.load(ck, weights_only=True), how), ck)
    before = ck.read_bytes()
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--set", "training.epochs=3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(ck) in err and "damaged" in err, err
    if how.startswith("data order"):  # found with the other entries' checks, before any work, with their fix
        assert "entry train.rng.order" in err and "--force" in err, err
    named = {"no config": "entry config is missing", "config not JSON": "entry config (not JSON: ",
             "config a list": "entry config (not a JSON object)", "no rng": "entry train.rng is missing",
             "no data order": "entry train.rng.order is missing", "no loss sum": "entry train.partial.loss_sum is"}
    if how in named:  # the entry by its whole name, never a parser's message or a bare key in quotes
        assert named[how] in err, err
    assert ck.read_bytes() == before


#: (entry path in checkpoint.pt, index, value) where a training never writes NaN or inf
NN_POISONS = [(("train", "model", "layers.0.weight"), (0, 0), float("nan")),
              (("train", "optimizer", "state", 0, "exp_avg_sq"), (1,), float("inf")),
              (("train", "history", "sigma_val"), (1,), float("nan"))]


@pytest.mark.parametrize("entry,index,value", NN_POISONS, ids=[".".join(map(str, p[0])) for p in NN_POISONS])
def test_a_non_finite_checkpoint_is_refused_and_the_finished_run_kept(tmp_path, capsys, entry, index, value):
    """NaN/inf in a parameter, an optimiser moment or a history of checkpoint.pt: --resume exits 2 in one line naming
    the file and the entry, before any work; every file of the finished run stays as it was (not rewritten as
    diverged)."""
    import torch

    job, out = _write(tmp_path, SMALL), tmp_path / "run"
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 0
    ck = out / "checkpoint.pt"
    state = torch.load(ck, weights_only=True)
    *parents, last = entry
    holder = state
    for key in parents:
        holder = holder[key]
    holder[last][index] = value
    torch.save(state, ck)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--set", "training.epochs=3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    name = ".".join(map(str, entry))
    assert len(err.splitlines()) == 1 and f"{ck}: entry {name} holds a non-finite value" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_nan_per_rank_seconds_of_another_rank_count_still_resume(tmp_path):
    """train.history.comm_seconds is NaN for epochs trained at another rank count: such a checkpoint resumes."""
    import torch

    job, out = _write(tmp_path, SMALL), tmp_path / "run"
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    state["train"]["history"]["comm_seconds"][:] = float("nan")
    torch.save(state, out / "checkpoint.pt")
    assert main(["nn", job, "--out", str(out), "--resume", "--set", "training.epochs=3", "--quiet"]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["train"]["epoch"] == 3


def test_resume_refuses_an_output_that_is_a_directory_before_any_work(tmp_path, capsys, monkeypatch):
    """nn.h5 replaced by a directory: --resume is refused like a fresh run (exit 2), checkpoint.pt untouched; a
    bad HPCFLOW_QUIET is refused even with --quiet."""
    job, out = _write(tmp_path, SMALL), tmp_path / "run"
    assert main(["nn", job, "--out", str(out), "--quiet"]) == 0
    (out / "nn.h5").unlink()
    (out / "nn.h5").mkdir()
    before = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--set", "training.epochs=3"]) == 2
    assert "nn.h5 is a directory" in capsys.readouterr().err
    assert (out / "checkpoint.pt").read_bytes() == before
    monkeypatch.setenv("HPCFLOW_QUIET", "yes")
    assert main(["nn", job, "--out", str(tmp_path / "q"), "--quiet"]) == 2
    assert "HPCFLOW_QUIET" in capsys.readouterr().err and not (tmp_path / "q").exists()


def test_a_diverging_sweep_width_or_kernel_flow_network_makes_the_run_diverged(tmp_path, capsys, monkeypatch):
    """A NaN learning rate for the width sweep's width-8 network and the kernel flow's network (batch 30) alone:
    both stop at epoch 1's non-finite σ. Every output is written, status "diverged" (summary, nn.h5, checkpoint),
    exit status 3 with one line naming both; their rows say why, their final σ are null/NaN, the other width's are
    finite (the run was "finished" with σ of the last finite epoch)."""
    import math

    import torch

    from hpcflow.nn import train as T

    rate = T.learning_rate
    lr8 = 3e-3 * 64 / 8  # lr * (width_ref / width)^1, width_ref 64 by default

    def nan_rate(cfg, step, epoch, total):
        bad = math.isclose(cfg.lr, lr8) or cfg.batch_size == 30
        return math.nan if bad else rate(cfg, step, epoch, total)

    monkeypatch.setattr(T, "learning_rate", nan_rate)
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["nn", _write(tmp_path, JOB), "--out", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err.strip()
    why = "epoch 1: sigma_val = nan, sigma_train = nan"
    assert len(err.splitlines()) == 1 and f"width 8 ({why})" in err and f"kernel flow's network ({why})" in err, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "diverged" and "width 4" not in summary["stopped"]
    sw, kf = summary["width_sweep"], summary["kernel_flow"]
    assert sw["width"] == [4, 8] and sw["stopped"] == ["", why]
    assert math.isfinite(sw["sigma_val_final"][0]) and sw["sigma_val_final"][1] is None
    assert sw["rel_frobenius_final"][1] is None and sw["wasserstein_final"][1] is None
    assert kf["nn_stopped"] == why and kf["nn_sigma_test_final"] is None and kf["nn_sigma_train_final"] is None
    with h5py.File(out / "nn.h5") as f:
        assert f.attrs["status"] == "diverged"
        assert [s.decode() for s in f["width_sweep/stopped"][()]] == ["", why]
        assert np.isnan(f["width_sweep/sigma_val_final"][1]) and np.isnan(f["kernel_flow/nn_sigma_test"][-1])
        assert f["history/sigma_val"].shape == (3,) and np.isfinite(f["history/sigma_val"][()]).all()
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["status"] == "diverged" and (state["train"]["epoch"], state["train"]["position"]) == (2, 0)
    assert (out / "model.pt").exists()
    # --resume: nothing to do, said of what diverged (it named a divergence of the main network in epoch 3)
    assert main(["nn", _write(tmp_path, JOB), "--out", str(out), "--quiet", "--resume"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "finished its training (2 epochs), then a width-sweep or kernel-flow " \
        "network diverged" in err and "epoch 3" not in err, err
    doc = next(line for line in open(DOC, encoding="utf-8") if line.startswith("| `status` |") and "trained" in line)
    assert "width-sweep or kernel-flow network diverged after training, the whole training" in doc, doc
    # its nn.h5 missing: --resume writes it again (the networks after training diverge again), exit 3 as the run;
    # it said "nothing to do" and left nn.h5 missing
    before = _datasets(out / "nn.h5")
    (out / "nn.h5").unlink()
    capsys.readouterr()
    assert main(["nn", _write(tmp_path, JOB), "--out", str(out), "--quiet", "--resume"]) == 3
    said = capsys.readouterr().out
    assert f"{out}: nn.h5 missing from a finished run; redoing" in said and "diverges again" in said, said
    after = _datasets(out / "nn.h5")
    assert sorted(after) == sorted(before) and after["@"] == before["@"]
    from h5data import NN_TIMINGS

    for name in set(before) - NN_TIMINGS - {"@"}:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    # its nn.h5 cut short: the report advises that --resume (it advised --force, a retraining)
    from hpcflow.analysis.rundir import completeness

    os.truncate(out / "nn.h5", os.path.getsize(out / "nn.h5") // 2)
    assert completeness(out) == (False, "nn.h5 unreadable (damaged); write it again with hpcflow nn "
                                        f"{out / 'job.toml'} --out {out} --resume")


#: the tiny job of the positive-definiteness count: 200 train, 100 validation points, 4 epochs, no NTK
TINY = NN_POINTS + SMALL_NET + TINY_TRAINING


def _not_pd_by_eigenvalues(out) -> int:
    """Validation points where the saved model's metric has an eigenvalue <= 0 (numpy eigvalsh of each 3x3
    Hermitian matrix built from the 9 packed outputs), the points sampled again from the run's config."""
    import torch

    from hpcflow.geometry import Hypersurface
    from hpcflow.nn import experiment as ex
    from hpcflow.nn.checkpoint import load_model

    geo = json.loads((out / "summary.json").read_text())["config"]["geometry"]
    _, val = ex.sample_shards(Hypersurface.fermat(3), geo["n_train"], geo["n_val"], geo["seed"], geo["chart"])
    data = ex.as_data(val.data, "float64")
    with torch.no_grad():
        v = load_model(out / "model.pt").double()(data.x, data.gfs).numpy()
    g = np.zeros((len(v), 3, 3), dtype=complex)
    g[:, [0, 1, 2], [0, 1, 2]] = v[:, :3]
    for k, (a, b) in enumerate(((0, 1), (0, 2), (1, 2))):
        g[:, a, b] = v[:, 3 + 2 * k] + 1j * v[:, 4 + 2 * k]
        g[:, b, a] = np.conj(g[:, a, b])
    return int(np.count_nonzero(np.linalg.eigvalsh(g)[:, 0] <= 0))


def test_a_metric_no_longer_positive_definite_is_counted_and_warned_of(tmp_path, capsys):
    out = tmp_path / "huge_lr"
    argv = ["nn", _write(tmp_path, TINY), "--out", str(out), "--set", "training.lr=1e3",
            "--set", "model.output_scale=1.0"]
    assert main(argv) == 0  # the status stays "finished": the count records it, σ is unchanged
    err = capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    bad = summary["val_not_positive_definite_final"]
    assert summary["status"] == "finished" and bad > 0
    assert bad == _not_pd_by_eigenvalues(out)
    with h5py.File(out / "nn.h5") as f:
        counts = f["history/val_not_positive_definite"][()]
        assert counts.dtype == np.int64 and counts.shape == f["history/sigma_val"].shape == (5,)
    assert counts[-1] == bad and counts[0] == 0  # the untrained network's metric is g_FS-like: positive definite
    lines = [s for s in err.splitlines() if "not positive definite" in s]
    assert lines == [f"hpcflow nn: the metric is not positive definite at {bad} of 100 validation points after "
                     f"epoch 4; σ there uses the signed det g; lower training.lr (or add training.lr_warmup) for a "
                     "metric that stays positive definite (nn.h5 history/val_not_positive_definite per epoch)"]


def test_a_normal_run_counts_no_point_and_warns_of_none(tmp_path, capsys):
    out = tmp_path / "normal"
    assert main(["nn", _write(tmp_path, TINY), "--out", str(out)]) == 0
    assert "positive definite" not in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_not_positive_definite_final"] == 0 == _not_pd_by_eigenvalues(out)
    with h5py.File(out / "nn.h5") as f:
        np.testing.assert_array_equal(f["history/val_not_positive_definite"][()], np.zeros(5, dtype=np.int64))


def test_the_count_is_the_same_at_2_ranks_where_points_are_not_positive_definite(tmp_path):
    import os
    import subprocess
    import sys

    job = _write(tmp_path, TINY)
    huge = ["--set", "training.lr=1e3", "--set", "model.output_scale=1.0"]
    assert main(["nn", job, "--out", str(tmp_path / "one"), *huge]) == 0
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    p = subprocess.run([mpiexec, "-n", "2", sys.executable, "-m", "hpcflow", "nn", job, "--out",
                        str(tmp_path / "two"), *huge], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.getcwd()))
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("not positive definite") == 1  # rank 0 alone warns
    with h5py.File(tmp_path / "one" / "nn.h5") as a, h5py.File(tmp_path / "two" / "nn.h5") as b:
        one, two = a["history/val_not_positive_definite"][()], b["history/val_not_positive_definite"][()]
    assert one[-1] > 0
    np.testing.assert_array_equal(two, one)


def test_the_best_sigma_comes_only_from_epochs_whose_validation_metric_is_positive_definite(tmp_path, capsys):
    """An additive network trained with SGD at lr 1e3 has a metric with det g < 0 at every validation point after
    epoch 1; σ (signed det g) then drops below the untrained network's, but summary.json's best must not be it."""
    out = tmp_path / "indefinite"
    argv = ["nn", _write(tmp_path, TINY), "--out", str(out), "--set", "model.kind=additive",
            "--set", "training.lr=1e3", "--set", "training.optimizer=sgd"]
    assert main(argv) == 0
    capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    with h5py.File(out / "nn.h5") as f:
        counts, sigma = f["history/val_not_positive_definite"][()], f["history/sigma_val"][()]
    assert (counts > 0).any() and sigma[counts > 0].min() < sigma[counts == 0].min()  # the case: better-looking σ
    healthy = [e for e in range(len(sigma)) if counts[e] == 0]
    best = min(healthy, key=lambda e: sigma[e])
    assert summary["sigma_val_best"] == sigma[best] and summary["sigma_val_best_epoch"] == best
    assert summary["val_not_positive_definite_epochs"] == int(np.count_nonzero(counts > 0))


def test_the_best_sigma_leaves_out_epochs_not_counted_and_is_null_without_a_healthy_one():
    from hpcflow.nn.job import best_positive_definite

    got = best_positive_definite([0.5, 0.1, 0.2, 0.3, float("nan")], [-1, 3, 0, 0, 0])
    assert got == {"sigma_val_best": 0.2, "sigma_val_best_epoch": 2, "val_not_positive_definite_epochs": 1}
    assert best_positive_definite([0.5, 0.1], [-1, 7]) == {
        "sigma_val_best": None, "sigma_val_best_epoch": None, "val_not_positive_definite_epochs": 1}


def test_resume_of_a_finished_run_writes_a_missing_or_damaged_model_again_from_its_checkpoint(tmp_path, capsys):
    """checkpoint.pt of a finished run holds its network: --resume with nothing to train writes model.pt and
    model.pt.json again, when either is missing, cut short or, model.pt, holds a tensor with a flipped bit (its zip
    CRC-32 failing: left as it was, "nothing to do", before), with the tensors the run saved, and says so."""
    import torch
    from test_tune_nn_h5 import _flip_low_bit

    out = tmp_path / "done"
    job = _write(tmp_path, TINY)
    assert main(["nn", job, "--out", str(out)]) == 0
    saved = {p: (out / p).read_bytes() for p in ("model.pt", "model.pt.json")}
    weights = torch.load(out / "model.pt", weights_only=True)
    for name, damage in (("model.pt", "unlink"), ("model.pt.json", "unlink"), ("model.pt", "truncate"),
                         ("model.pt", "bit flip")):
        path = out / name
        if damage == "bit flip":
            _flip_low_bit(path)
        else:
            path.unlink() if damage == "unlink" else path.write_bytes(saved[name][:len(saved[name]) // 2])
        capsys.readouterr()
        assert main(["nn", job, "--out", str(out), "--resume"]) == 0
        said = [s for s in capsys.readouterr().out.splitlines() if "again from checkpoint.pt" in s]
        assert len(said) == 1 and (f"{name} missing" if damage == "unlink" else "damaged") in said[0], said
        assert (out / "model.pt.json").read_bytes() == saved["model.pt.json"]
        again = torch.load(out / "model.pt", weights_only=True)
        assert sorted(again) == sorted(weights) and all(torch.equal(again[k], weights[k]) for k in weights)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume"]) == 0  # both whole: nothing written, nothing said
    assert "again from checkpoint.pt" not in capsys.readouterr().out


def test_comm_seconds_is_epochs_by_ranks_also_for_zero_epochs_and_an_old_flat_one_still_resumes(tmp_path, capsys):
    """history/comm_seconds is (E, R) (docs/outputs.md), so (0, 1) for a run of 0 epochs at 1 rank, in nn.h5 and in
    checkpoint.pt; a checkpoint that holds the flat (0,) of earlier versions still resumes, to (2, 1)."""
    import torch

    out = tmp_path / "zero"
    job = _write(tmp_path, TINY.replace("epochs = 4", "epochs = 0"))
    assert main(["nn", job, "--out", str(out)]) == 0
    with h5py.File(out / "nn.h5") as f:
        assert f["history/comm_seconds"].shape == (0, 1) and f["history/epoch_seconds"].shape == (0,)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert tuple(state["train"]["history"]["comm_seconds"].shape) == (0, 1)
    state["train"]["history"]["comm_seconds"] = torch.zeros(0, dtype=torch.float64)  # as earlier versions wrote it
    torch.save(state, out / "checkpoint.pt")
    assert main(["nn", job, "--out", str(out), "--resume", "--set", "training.epochs=2"]) == 0
    with h5py.File(out / "nn.h5") as f:
        assert f["history/comm_seconds"].shape == (2, 1) and f["history/sigma_val"].shape == (3,)


def _datasets(path) -> dict:
    """Every dataset of an HDF5 file by name (`h5data.datasets`), with its attributes (as text) under "@"."""
    from h5data import datasets

    with h5py.File(path) as f:
        return {**datasets(path), "@": {k: str(v) for k, v in f.attrs.items()}}


def test_resume_of_a_finished_run_whose_nn_h5_is_missing_writes_it_again(tmp_path, capsys):
    """A finished run copied back without its nn.h5: --resume with the same epochs writes nn.h5 again (the same
    datasets and values as the run wrote, but the wall-clock seconds) and says so; it said "nothing to do" and
    left it missing, exit 0."""
    out = tmp_path / "copied"
    job = _write(tmp_path, JOB)
    assert main(["nn", job, "--out", str(out)]) == 0
    before = _datasets(out / "nn.h5")
    (out / "nn.h5").unlink()
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume"]) == 0
    said = capsys.readouterr().out
    assert f"{out}: nn.h5 missing from a finished run; redoing from checkpoint.pt" in said, said
    assert "nothing to do" not in said
    after = _datasets(out / "nn.h5")
    assert sorted(after) == sorted(before) and after["@"] == before["@"]
    from h5data import NN_TIMINGS

    for name in set(before) - NN_TIMINGS - {"@"}:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume"]) == 0  # whole again: nothing to do
    assert "nothing to do" in capsys.readouterr().out


def test_resume_of_a_finished_run_whose_nn_h5_is_damaged_writes_it_again(tmp_path, capsys):
    """A finished run whose nn.h5 is cut short (a partial copy, a disk error): --resume with the same epochs writes
    it again from checkpoint.pt (the run's datasets and values but the wall-clock seconds) and says so in one line;
    it was refused ("rerun the job with --force"), i.e. a retraining from scratch."""
    out = tmp_path / "cut"
    job = _write(tmp_path, JOB)
    assert main(["nn", job, "--out", str(out)]) == 0
    before = _datasets(out / "nn.h5")
    whole = (out / "nn.h5").read_bytes()
    (out / "nn.h5").write_bytes(whole[:len(whole) // 3])
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume"]) == 0
    said = [s for s in capsys.readouterr().out.splitlines() if "nn.h5" in s]
    assert len(said) == 1 and f"{out}: nn.h5 damaged in a finished run; redoing from checkpoint.pt" in said[0], said
    after = _datasets(out / "nn.h5")
    assert sorted(after) == sorted(before) and after["@"] == before["@"]
    from h5data import NN_TIMINGS

    for name in set(before) - NN_TIMINGS - {"@"}:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory):
    """A finished run of JOB with 4 train and 3 test NTK probes (no train x test spectrum) and one with 4 and 4,
    by test probes: (job file, run directory)."""
    tmp, runs = tmp_path_factory.mktemp("finished"), {}
    for q in (3, 4):
        job = _write(tmp, JOB.replace("n_test_points = 3", f"n_test_points = {q}"), name=f"job{q}.toml")
        assert main(["nn", job, "--out", str(tmp / f"run{q}"), "--quiet"]) == 0
        runs[q] = job, tmp / f"run{q}"
    return runs


@pytest.mark.parametrize("q", [3, 4])
def test_what_a_run_writes_to_nn_h5_is_what_its_check_asks_for(finished_runs, q):
    """datasets (what --resume asks a finished run's nn.h5 to hold) names the datasets a run writes, no more and no
    fewer, with their shapes and dtypes; a finished run's file passes the check, also against its checkpoint.pt."""
    import torch

    from hpcflow.nn.h5schema import datasets
    from hpcflow.nn.job import nn_h5_fault

    _, out = finished_runs[q]
    with h5py.File(out / "nn.h5") as f:
        written = {}
        f.visititems(lambda name, obj: written.update({name: (obj.shape, obj.dtype)}) if isinstance(obj, h5py.Dataset)
                     else None)
        cfg, epoch = json.loads(f.attrs["config"]), int(f.attrs["epoch"])
    want = datasets(cfg, epoch, "finished")
    assert set(want) == set(written), sorted(set(want) ^ set(written))
    assert ("ntk/spectrum_train_test" in written) == (q == 4)
    for name, spec in want.items():
        shape, dtype = written[name]
        assert len(shape) == len(spec.shape) and all(a is None or isinstance(a, str) or a == n
                                                     for n, a in zip(shape, spec.shape)), (name, spec, shape)
        assert (h5py.check_string_dtype(dtype) is not None if spec.dtype == "str" else dtype == spec.dtype), name
    assert epoch == 2 and written["history/sigma_val"][0] == (3,) and written["history/loss"][0] == (2,)
    assert written["ntk/points_test"][0] == (q, 5) and written["width_sweep/width"][0] == (2,)
    assert written["ntk/spectrum"][0] == (3, 81 * 4) and written["ntk/ntk_train_test"][0] == (3, 9, 9, 4, q)
    assert nn_h5_fault(str(out / "nn.h5"), epoch=2) is None
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert nn_h5_fault(str(out / "nn.h5"), state=state) is None


def _drop(name):
    def edit(f):
        del f[name]
    return edit


def _shorten(name):
    def edit(f):
        values = f[name][()]
        del f[name]
        f[name] = values[:-1]
    return edit


def _no_attribute(name):
    def edit(f):
        del f.attrs[name]
    return edit


#: edits of a finished run's nn.h5 that leave a file h5py opens and walks -> words of the resume's line
NN_H5_EDITS = {
    "history/sigma_val dropped": (_drop("history/sigma_val"), "(dataset history/sigma_val missing)"),
    "ntk/spectrum dropped": (_drop("ntk/spectrum"), "(dataset ntk/spectrum missing)"),
    "width_sweep group dropped": (_drop("width_sweep"), "(dataset width_sweep/"),
    "kernel_flow/nn_sigma_test dropped": (_drop("kernel_flow/nn_sigma_test"),
                                          "(dataset kernel_flow/nn_sigma_test missing)"),
    "history/loss one epoch short": (_shorten("history/loss"), "(dataset history/loss of shape (1,), not (2,))"),
    "@config dropped": (_no_attribute("config"), "(attribute config missing)"),
}


@pytest.mark.parametrize("case", list(NN_H5_EDITS))
def test_resume_of_a_finished_run_whose_nn_h5_lacks_a_dataset_writes_it_again(finished_runs, tmp_path, capsys, case):
    """A finished run's nn.h5 that opens but lacks a dataset or attribute a run writes, or holds a history one
    epoch short (an edit, a tool that copied part of it): --resume said "nothing to do", exit 0, leaving it so; it
    writes it again from checkpoint.pt (the run's datasets and values but the wall-clock seconds), saying what it
    lacked in one line."""
    from h5data import NN_TIMINGS

    job, run = finished_runs[3]
    out = tmp_path / "run"
    shutil.copytree(run, out)
    before = _datasets(out / "nn.h5")
    edit, words = NN_H5_EDITS[case]
    with h5py.File(out / "nn.h5", "a") as f:
        edit(f)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 0
    said = [s for s in capsys.readouterr().out.splitlines() if "nn.h5" in s]
    assert len(said) == 1 and f"{out}: nn.h5 damaged in a finished run {words}" in said[0], said
    assert "redoing from checkpoint.pt" in said[0] and "nothing to do" not in said[0], said
    after = _datasets(out / "nn.h5")
    assert sorted(after) == sorted(before) and after["@"] == before["@"]
    for name in set(before) - NN_TIMINGS - {"@"}:
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)


def _file_bytes(run) -> dict:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


@pytest.mark.parametrize("names", [("history/val_not_positive_definite",), ("width_sweep/stopped",),
                                   ("history/val_not_positive_definite", "width_sweep/stopped")])
def test_resume_of_a_finished_run_whose_nn_h5_predates_a_later_dataset_has_nothing_to_do(finished_runs, tmp_path,
                                                                                          capsys, names):
    """An nn.h5 written before schema 1 gained history/val_not_positive_definite or width_sweep/stopped (a finished
    run of an earlier hpcflow) is whole: --resume with the same epochs has nothing to do and leaves every file as it
    was. It was called damaged and redone (the NTK's spectra, the width sweep, the kernel flow). A count that is
    there is still checked: one epoch short, the file is written again."""
    job, run = finished_runs[3]
    out = tmp_path / "run"
    shutil.copytree(run, out)
    with h5py.File(out / "nn.h5", "a") as f:
        for name in names:
            del f[name]
    before = _file_bytes(out)
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "nothing to do" in said and "damaged" not in said, said
    assert _file_bytes(out) == before
    if "history/val_not_positive_definite" in names:
        return
    with h5py.File(out / "nn.h5", "a") as f:
        _shorten("history/val_not_positive_definite")(f)
    assert main(["nn", job, "--out", str(out), "--resume", "--quiet"]) == 0
    said = [s for s in capsys.readouterr().out.splitlines() if "nn.h5" in s]
    assert len(said) == 1 and ("damaged in a finished run (dataset history/val_not_positive_definite of shape (2,), "
                               "not (3,))") in said[0], said


@pytest.mark.parametrize("schedule", ["cosine", "exponential"])
def test_a_resume_that_changes_the_cosine_schedules_length_says_so_where_job_toml_does_not_rerun_it(tmp_path, capsys,
                                                                                                     schedule):
    """A run of 2 epochs extended to 4 by --resume: with the exponential schedule its saved job.toml run afresh
    trains the same network (the schedule does not depend on the length); with the cosine one it does not (the first
    2 epochs followed a 2-epoch cosine), so the resume says so in one line, job.toml's header notes it and
    summary.json's legs record each leg's length. Nothing said so: job.toml was documented to run the same job."""
    out, job = tmp_path / "run", _write(tmp_path, TINY)
    rate = "training.lr_decay=0.9" if schedule == "exponential" else "training.lr_min=1e-4"  # (the key it reads)
    sets = ["--set", f"training.lr_schedule={schedule}", "--set", rate]
    assert main(["nn", job, "--out", str(out), *sets, "--set", "training.epochs=2"]) == 0
    capsys.readouterr()
    assert main(["nn", job, "--out", str(out), "--resume", *sets, "--set", "training.epochs=4"]) == 0
    err = capsys.readouterr().err
    notes = [line for line in (out / "job.toml").read_text().splitlines() if line.startswith("# note:")]
    legs = json.loads((out / "summary.json").read_text())["legs"]
    fresh = tmp_path / "fresh"
    assert main(["nn", str(out / "job.toml"), "--out", str(fresh)]) == 0
    with h5py.File(out / "nn.h5") as a, h5py.File(fresh / "nn.h5") as b:
        same = np.array_equal(a["history/sigma_val"][()], b["history/sigma_val"][()])
    if schedule == "exponential":
        assert same and not notes and "cosine" not in err and all("schedule_epochs" not in g for g in legs)
        return
    assert not same  # what the note says
    assert [g["schedule_epochs"] for g in legs] == [2, 4]
    assert len(notes) == 1 and "(2 then 4 epochs" in notes[0] and "differs from this run" in notes[0], notes
    said = [line for line in err.splitlines() if "cosine" in line]
    assert len(said) == 1 and "checkpoint's 4 steps followed as 2 epochs long" in said[0], err


@pytest.mark.parametrize("text, sets, said", [
    (JOB, ["training.batch_size=0"], "[training].batch_size = 0: must lie in [2, "),
    ("", [], '[job].kind is required but missing; add [job] with kind = "nn"'),
    ("[geometry]\nn_train = 400\n", [], '[job].kind is required but missing; add [job] with kind = "nn"'),
    (JOB.replace('kind = "nn"', "kind = 3"), [], '[job].kind = 3 must be a string; e.g. kind = "nn"'),
    ("job = 3\n", [], 'write [job] with kind = "nn"'),
    (JOB, ["width_sweep.widths=[4,8,4]"], "[width_sweep].widths = [4, 8, 4] repeats width 4"),
])
def test_refusals_give_the_real_bound_the_nn_kind_and_repeated_widths(tmp_path, capsys, text, sets, said):
    """batch_size 0 was told 'must lie in [1, ...]' where 1 is refused too; a job-less file, a kind that is not a
    string and a [job] that is not a table were told kind = "flow"; a width listed twice trained the same network
    twice."""
    out = tmp_path / "run"
    assert main(["nn", _write(tmp_path, text), "--out", str(out), *(x for s in sets for x in ("--set", s))]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_tune_section_is_said_to_be_unused_by_hpcflow_nn(tmp_path, capsys):
    job = _write(tmp_path, TINY + '[tune]\nobjective = "log_gain_val"\n[tune.space]\n"training.lr" = '
                 '{low = 1e-4, high = 1e-2, log = true}\n')
    assert main(["nn", job, "--out", str(tmp_path / "run"), "--check"]) == 0
    err = capsys.readouterr().err
    assert f"{job}'s [tune] section is not used here" in err and "'hpcflow tune" in err, err
    assert main(["nn", _write(tmp_path, TINY, "plain.toml"), "--out", str(tmp_path / "run"), "--check"]) == 0
    assert "[tune]" not in capsys.readouterr().err


def test_the_help_gives_set_examples_of_network_jobs_and_says_what_resume_may_change(tmp_path, capsys):
    """`hpcflow nn --help`: each `--set` example is a key a network job takes (the help's
    `--set clustering.method=none`, a flow's key, was refused as "unknown section [clustering]"), and --resume's says
    that [checkpoint] may change too (it said "nothing else may change")."""
    import re

    with pytest.raises(SystemExit):
        main(["nn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    examples = re.findall(r"--set (\S+=[^\s);]+)", text.split("--set SECTION.KEY=VALUE", 2)[-1].split("--quiet")[0])
    assert len(examples) == 2, text
    job = _write(tmp_path, open(os.path.join(os.path.dirname(__file__), "..", "jobs", "nn_smoke.toml")).read())
    for example in examples:
        assert main(["nn", job, "--out", str(tmp_path / "out"), "--check", "--set", example]) == 0, example
    resume = text.split("--resume ", 2)[-1]
    assert "[checkpoint]" in resume and "[training].epochs" in resume, resume
