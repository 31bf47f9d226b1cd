"""Two runs of the same network job, in two processes, write the same checkpoint.pt but for its wall-clock entries
(hpcflow.nn.checkpoint.TIMINGS, docs/outputs.md): with those copied from one file into the other, both save to the
same bytes. A version 2 checkpoint (which also held the process's global torch and NumPy generator states) still
resumes, to the network of an uninterrupted run."""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hpcflow.cli import main  # noqa: E402

JOB = """
[job]
kind = "nn"
[geometry]
n_train = 60
n_val = 30
seed = 2
[model]
depth = 1
width = 4
[training]
epochs = 2
batch_size = 20
threads = 1
[ntk]
n_train_points = 2
n_test_points = 2
[checkpoint]
every = 1
"""


def _load(out):
    return torch.load(os.path.join(out, "checkpoint.pt"), weights_only=True)


def _entry(state, name):
    """(container, key) pairs of a TIMINGS name ("legs[].x": one per leg)."""
    *path, key = name.replace("[]", "").split(".")
    nodes = [state]
    for p in path:
        nodes = [n[p] for n in nodes]
        nodes = [g for n in nodes for g in (n if isinstance(n, list) else [n])]
    return [(n, key) for n in nodes]


def _bytes(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nnrepro")
    job = tmp / "job.toml"
    job.write_text(JOB)
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.getcwd())
    p = subprocess.run([sys.executable, "-m", "hpcflow.cli", "nn", str(job), "--out", str(tmp / "a"), "--quiet"],
                       capture_output=True, text=True, timeout=180, env=env)
    assert p.returncode == 0, p.stderr[-2000:]
    assert main(["nn", str(job), "--out", str(tmp / "b"), "--quiet"]) == 0  # another process
    return tmp


def test_two_runs_write_the_same_checkpoint_but_for_its_timings(runs):
    from hpcflow.nn.checkpoint import TIMINGS

    a, b = _load(runs / "a"), _load(runs / "b")
    for name in TIMINGS:
        pairs_a, pairs_b = _entry(a, name), _entry(b, name)
        assert len(pairs_a) == len(pairs_b) > 0, name
        for (na, k), (nb, _) in zip(pairs_a, pairs_b):
            nb[k] = na[k]
    assert _bytes(a) == _bytes(b)


def test_a_version_2_checkpoint_resumes_to_the_uninterrupted_network(runs):
    from hpcflow.nn.checkpoint import VERSION

    job, out = str(runs / "job.toml"), str(runs / "v2")
    assert main(["nn", job, "--out", out, "--set", "training.epochs=1", "--quiet"]) == 0
    ck = os.path.join(out, "checkpoint.pt")
    state = _load(out)
    state["version"] = 2
    _, keys, pos, has_gauss, cached = np.random.get_state()  # the entries as version 2 wrote them
    state["train"]["rng"].update(torch=torch.get_rng_state(), numpy={
        "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "cached_gaussian": cached})
    torch.save(state, ck)
    assert main(["nn", job, "--out", out, "--resume", "--quiet"]) == 0
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
        assert json.load(fh)["status"] == "finished"
    got, ref = _load(out), _load(runs / "b")
    assert got["version"] == VERSION and set(got["train"]["rng"]) == {"order"}
    assert got["train"]["model"].keys() == ref["train"]["model"].keys()
    assert all(torch.equal(got["train"]["model"][k], ref["train"]["model"][k]) for k in ref["train"]["model"])
