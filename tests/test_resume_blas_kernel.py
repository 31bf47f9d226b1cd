"""Each flow and network run records its BLAS kernel (`legs[].blas_kernel`, checkpoint and summary.json): a resume
on another kernel (a requeue onto another CPU type; here OPENBLAS_CORETYPE) rounds the products otherwise, and it
says so in one line, as a resume at another thread count does (one line where both change); one on the same kernel,
or of a checkpoint whose legs predate the record, says nothing.

OpenBLAS reads OPENBLAS_CORETYPE when it loads, so every run here is a process of its own, and both kernels are set
explicitly (never the machine's default), so the tests hold whichever kernel the suite itself runs under."""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from hpcflow import checkpoint as ckpt
from jobtexts import NN_POINTS

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "quickstart.toml")
SETS = ["--set", "geometry.n_train=600", "--set", "geometry.n_test=100", "--set", "clustering.n_clusters=2",
        "--set", "checkpoint.every=1"]
#: two OpenBLAS core types of x86-64 that report different kernels (threadpoolctl's `architecture`)
KERNELS = ("Prescott", "Nehalem")
TIMEOUT = 300
CLI = "import sys; from hpcflow.cli import main; sys.exit(main(sys.argv[1:]))"
REPORTED = ("import json, numpy, threadpoolctl; print(json.dumps(sorted({p['architecture'] for p in "
            "threadpoolctl.threadpool_info() if p['architecture']})))")


def _env(coretype, threads=1):
    return dict(os.environ, OPENBLAS_CORETYPE=coretype, HPCFLOW_THREADS=str(threads), HPCFLOW_QUIET="1",
                PYTHONPATH=str(ROOT))


def _reported(coretype):
    """The architecture OpenBLAS reports under `coretype`, read with threadpoolctl in a process of its own."""
    r = subprocess.run([sys.executable, "-c", REPORTED], capture_output=True, text=True, env=_env(coretype),
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    names = json.loads(r.stdout)
    assert len(names) == 1, names  # NumPy's OpenBLAS (and any other loaded) on one kernel
    return names[0]


@pytest.fixture(scope="module")
def kernels():
    names = {c: _reported(c) for c in KERNELS}
    assert len(set(names.values())) == 2, names  # the two core types are two kernels here
    return names


def _cli(args, coretype, threads=1):
    r = subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True,
                       env=_env(coretype, threads), timeout=TIMEOUT, cwd=ROOT)
    return r.returncode, r.stderr


def _notes(err):
    return [line for line in err.splitlines() if " note: " in line and ("kernel" in line or "threads" in line)]


def _flow(out, steps, coretype, threads=1, resume=True):
    rc, err = _cli(["run", JOB, "--out", str(out), *SETS, "--set", f"flow.steps={steps}",
                    *(["--resume"] if resume else [])], coretype, threads)
    assert rc == 0, err
    return _notes(err)


def _flow_legs(out):
    with h5py.File(out / "checkpoint.h5", "r") as f:
        saved = json.loads(f.attrs["legs"])
    assert saved == json.loads((out / "summary.json").read_text())["legs"]
    return saved


def test_a_flow_resumed_on_another_blas_kernel_records_it_and_says_so(tmp_path, kernels):
    first, other = KERNELS
    out, same = tmp_path / "out", tmp_path / "same"
    assert _flow(out, 2, first, resume=False) == []
    assert [g["blas_kernel"] for g in _flow_legs(out)] == [kernels[first]]
    os.makedirs(same)
    for name in ("checkpoint.h5", "job.toml"):
        (same / name).write_bytes((out / name).read_bytes())

    notes = _flow(out, 3, other)
    assert len(notes) == 1, notes
    assert notes[0].startswith(f"hpcflow run: note: BLAS kernel {kernels[other]}, where the checkpoint's last leg "
                               f"ran kernel {kernels[first]}"), notes
    assert "not bit for bit" in notes[0] and "threads per rank" not in notes[0]
    assert [g["blas_kernel"] for g in _flow_legs(out)] == [kernels[first], kernels[other]]

    both = _flow(out, 4, first, threads=2)  # kernel and threads both change: one line naming both
    assert len(both) == 1, both
    assert both[0].startswith(f"hpcflow run: note: 2 threads per rank and BLAS kernel {kernels[first]}, where the "
                              f"checkpoint's last leg ran 1 thread per rank and kernel {kernels[other]}"), both
    assert "HPCFLOW_THREADS=1" not in both[0]  # the threads alone would not resume it bit for bit

    assert _flow(same, 3, first) == []  # the same kernel and threads: nothing to say
    assert [g["blas_kernel"] for g in _flow_legs(same)] == [kernels[first]] * 2


def test_a_flow_checkpoint_whose_legs_predate_the_kernel_resumes_without_a_note(tmp_path, kernels):
    first, other = KERNELS
    out = tmp_path / "out"
    assert _flow(out, 2, first, resume=False) == []
    with h5py.File(out / "checkpoint.h5", "r+") as f:  # legs as written before the kernel was recorded
        f.attrs["legs"] = json.dumps([{k: v for k, v in g.items() if k != "blas_kernel"}
                                      for g in json.loads(f.attrs["legs"])])
    assert _flow(out, 3, other) == []
    assert [g.get("blas_kernel") for g in _flow_legs(out)] == [None, kernels[other]]


def test_a_leg_whose_kernel_is_not_a_name_is_a_damaged_checkpoint(tmp_path, kernels):
    first = KERNELS[0]
    out = tmp_path / "out"
    assert _flow(out, 2, first, resume=False) == []
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        f.attrs["legs"] = json.dumps([{**g, "blas_kernel": 7} for g in json.loads(f.attrs["legs"])])
    rc, err = _cli(["run", JOB, "--out", str(out), *SETS, "--set", "flow.steps=3", "--resume"], first)
    assert rc == 2 and "legs[0].blas_kernel = 7" in err and "damaged" in err, err


NN_JOB = NN_POINTS + """[model]
depth = 2
width = 8
activation = "gelu"
[training]
epochs = {epochs}
batch_size = 100
threads = 1
[checkpoint]
every = 1
"""


def test_a_network_resumed_on_another_blas_kernel_records_it_and_says_so(tmp_path, kernels):
    torch = pytest.importorskip("torch")
    first, other = KERNELS
    out = str(tmp_path / "run")
    said = []
    for epochs, coretype in ((1, first), (2, other), (3, other)):
        job = tmp_path / f"job{epochs}.toml"
        job.write_text(NN_JOB.format(epochs=epochs))
        rc, err = _cli(["nn", str(job), "--out", out, "--quiet", *(["--resume"] if epochs > 1 else [])], coretype)
        assert rc == 0, err
        said.append(_notes(err))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    legs = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)["legs"]
    assert [g["blas_kernel"] for g in legs] == [kernels[first], kernels[other], kernels[other]]
    assert summary["legs"] == legs
    assert said[0] == said[2] == [] and len(said[1]) == 1, said
    assert said[1][0].startswith(f"hpcflow nn: note: BLAS kernel {kernels[other]}, where the checkpoint's last leg "
                                 f"ran kernel {kernels[first]}"), said


def test_the_note_names_a_fix_only_where_one_setting_differs_with_the_legs_rank_count_where_it_differs():
    legs = [{"from_step": 0, "to_step": 2, "ranks": 2, "threads": 1, "blas_kernel": "A"}]
    kernel = ckpt.threads_note(legs, 1, "p:", ranks=2, kernel="B")
    assert kernel.startswith("p: note: BLAS kernel B, where the checkpoint's last leg ran kernel A")
    assert "kernel is A resumes it bit for bit" in kernel and "HPCFLOW_THREADS" not in kernel
    other_ranks = ckpt.threads_note(legs, 1, "p:", ranks=1, kernel="B")
    assert "(a node whose BLAS kernel is A on 2 ranks, as that leg ran, resumes it bit for bit)" in other_ranks
    both = ckpt.threads_note(legs, 2, "p:", ranks=2, kernel="B")
    assert "2 threads per rank and BLAS kernel B" in both and "resumes it" not in both
    threads = ckpt.threads_note(legs, 2, "p:", ranks=2, kernel="A")
    assert "HPCFLOW_THREADS=1 resumes it bit for bit" in threads and "kernel" not in threads
    assert ckpt.threads_note(legs, 1, "p:", ranks=2, kernel="A") is None
    assert ckpt.threads_note(legs, 1, "p:", ranks=2, kernel=None) is None  # this kernel unknown: nothing to compare
