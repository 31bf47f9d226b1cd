"""A job file's max_batches beside its chart: the sampler's cap on its batches of lines, which a job whose chart's
points need more batches than the default raises; bad values are refused before any work, the sampler's refusal
names the key, and the points are the same with any cap that lets the sampling end (for every rank count)."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.experiments import flow_job
from hpcflow.jobs.schema import Field
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
#: 1000 train points of seed 0 in chart (0, 1) lie in its first 3 batches (479 and 945 in the first 1 and 2); 200 test
#: points of seed 1 in the first one (493 there)
FLOW = flow_points(1000, 200) + DELTA_FLOW.replace("steps = 3", "steps = 1")


def _job(tmp_path, text, name="job.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_a_chart_job_refused_at_the_default_runs_with_the_key_raised(tmp_path, capsys, monkeypatch):
    """With the default lowered to 2 batches (a stand-in for a chart too rare for the default's 100000), the flow
    job is refused with exit 2, in one line that names [geometry].max_batches (not `hpcflow sample`'s option),
    nothing written; the same job with [geometry].max_batches = 3 runs."""
    monkeypatch.setitem(flow_job.SCHEMA["geometry"], "max_batches", Field(int, 2, lo=1))
    job = _job(tmp_path, FLOW)
    assert main(["run", job, "--out", str(tmp_path / "a")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "could not find 1000 points in chart (0, 1) in 2 batches (found 945)" in line, line
    assert "raise [geometry].max_batches" in line and "--max-batches" not in line, line
    assert not os.path.exists(tmp_path / "a" / "summary.json")
    assert main(["run", job, "--out", str(tmp_path / "b"), "--set", "geometry.max_batches=3"]) == 0
    with h5py.File(tmp_path / "b" / "checkpoint.h5") as f:
        assert f["train/points"].shape == (1000, 5)


def test_the_default_cap_s_chart_refusal_names_the_job_key(tmp_path, capsys, monkeypatch):
    """The default 100000 batches: 1e8 points of chart (0, 1) (rate ~1/20 of 2048 x 5 points a batch) are refused
    after the first wave (`chart_hopeless`), the advice naming the job's key, which the job file can follow."""
    monkeypatch.setenv("HPCFLOW_IGNORE_MEMORY_CHECK", "1")
    job = _job(tmp_path, flow_points(10**8, 0) + DELTA_FLOW)
    assert main(["run", job, "--out", str(tmp_path / "a")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "chart (0, 1) holds too few points" in line and "max_batches=100000 batches" in line, line
    assert line.endswith("or raise [geometry].max_batches"), line


@pytest.mark.parametrize("value, said", [("0", "must lie in [1, 2**62]"), ("-3", "must lie in [1, 2**62]"),
                                         ("1.5", "must be an integer"), ("true", "must be an integer"),
                                         ("'many'", "must be an integer"), ("4611686018427387905",
                                                                           "must lie in [1, 2**62]")])
@pytest.mark.parametrize("kind, section, text", [
    ("flow", "geometry", FLOW), ("distance_scaling", "geometry", "[job]\nkind = \"distance_scaling\"\n"),
    ("clustering", "points", "[job]\nkind = \"clustering\"\n"),
    ("noise_scan", "geometry", "[job]\nkind = \"noise_scan\"\n[kernel]\nname = \"delta\"\n[flow]\ndt = 1.0\n"),
    ("local_limit", "geometry", "[job]\nkind = \"local_limit\"\n[flow]\ndt = 1.0\n")])
def test_a_bad_max_batches_is_refused_in_one_line_naming_the_key_before_any_work(tmp_path, capsys, value, said,
                                                                                 kind, section, text):
    job = _job(tmp_path, text)
    out = tmp_path / "out"
    assert main(["run", job, "--out", str(out), "--set", f"{section}.max_batches={value}"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert f"[{section}].max_batches = " in line and said in line, line
    assert f"(from --set {section}.max_batches={value})" in line, line
    assert not out.exists()
    # written in the file itself: the same refusal, the file named
    job = _job(tmp_path, text.replace(f"[{section}]\n", f"[{section}]\nmax_batches = {value}\n")
               if f"[{section}]\n" in text else text + f"[{section}]\nmax_batches = {value}\n", "file.toml")
    assert main(["run", job, "--out", str(out)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"hpcflow run: error: {job}: [{section}].max_batches = ") and said in line, line
    assert not out.exists()


def test_submit_check_refuses_a_bad_max_batches(tmp_path, capsys):
    job = _job(tmp_path, FLOW.replace("[geometry]\n", "[geometry]\nmax_batches = 0\n"))
    assert main(["submit", job, "--out", str(tmp_path / "out"), "--executor", "local", "--check"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "[geometry].max_batches = 0: must lie in [1, 2**62]" in line, line


def _nn_job(tmp_path, extra=""):
    text = NN_POINTS.replace("[geometry]\n", "[geometry]\nchart = [0, 1]\n" + extra).replace("n_train = 200",
                                                                                              "n_train = 1000")
    text += SMALL_NET + TINY_TRAINING
    return _job(tmp_path, text.replace("epochs = 4", "epochs = 1"), "nn.toml")


def test_an_nn_job_s_sampling_refusal_names_its_key_and_the_key_lets_it_run(tmp_path, capsys):
    """1000 train points of seed 3 in chart (0, 1) need more than one batch of 2048 lines (~480 points there), fewer
    than 4."""
    assert main(["nn", _nn_job(tmp_path, "max_batches = 1\n"), "--out", str(tmp_path / "a")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "in chart (0, 1) in 1 batches" in line and "raise [geometry].max_batches" in line, line
    assert main(["nn", _nn_job(tmp_path, "max_batches = 0\n"), "--out", str(tmp_path / "b")]) == 2
    assert "[geometry].max_batches = 0: must lie in [1, 2**62]" in _one_line(capsys.readouterr().err)
    assert not os.path.exists(tmp_path / "b")
    assert main(["nn", _nn_job(tmp_path, "max_batches = 4\n"), "--out", str(tmp_path / "c")]) == 0


def test_sample_names_its_option_in_the_refusal(tmp_path, capsys):
    assert main(["sample", "--n", "1000", "--chart", "0", "1", "--max-batches", "2", "--out",
                 str(tmp_path / "p.h5")]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "in 2 batches (found 945); raise --max-batches or choose" in line, line


def _train_points(out) -> np.ndarray:
    with h5py.File(os.path.join(out, "checkpoint.h5")) as f:
        return f["train/points"][()], f["test/points"][()]


def test_the_points_are_the_same_with_and_without_the_key_and_for_every_rank_count(tmp_path):
    """The default cap and a cap of exactly the 3 batches the train points need (the last wave cut to it) give
    bitwise the same train and test points, on one rank and on two."""
    job = _job(tmp_path, FLOW)
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), "HPCFLOW_QUIET": "1"}
    runs = {"default": [], "tight": ["--set", "geometry.max_batches=3"]}
    got = {}
    for name, sets in runs.items():
        for ranks in (1, 2):
            out = str(tmp_path / f"{name}{ranks}")
            launch = [MPIEXEC, "-n", "2"] if ranks == 2 else []
            r = subprocess.run([*launch, sys.executable, "-m", "hpcflow", "run", job, "--out", out, *sets],
                               capture_output=True, text=True, env=env, timeout=300)
            assert r.returncode == 0, r.stderr
            got[name, ranks] = _train_points(out)
    first = got["default", 1]
    assert first[0].shape == (1000, 5) and first[1].shape == (200, 5)
    for key, (train, test) in got.items():
        assert np.array_equal(train, first[0]) and np.array_equal(test, first[1]), key


def test_a_resume_may_change_max_batches(tmp_path, capsys):
    """The cap does not change the points of a sampling that ends, so a --resume may change it (the resume samples
    them again and compares them with the checkpoint's); another [geometry] key is still refused."""
    job = _job(tmp_path, FLOW + "[checkpoint]\nevery = 1\n")
    out = str(tmp_path / "out")
    assert main(["run", job, "--out", out, "--set", "geometry.max_batches=3"]) == 0
    assert main(["run", job, "--out", out, "--resume", "--set", "flow.steps=2", "--set",
                 "geometry.max_batches=50"]) == 0, capsys.readouterr().err
    with h5py.File(os.path.join(out, "checkpoint.h5")) as f:
        assert int(f.attrs["step"]) == 2
    capsys.readouterr()
    assert main(["run", job, "--out", out, "--resume", "--set", "flow.steps=3", "--set", "geometry.seed=1"]) == 2
    assert "[geometry].max_batches" in capsys.readouterr().err  # among the keys a resume may change


def test_ranks_given_different_max_batches_are_refused_together_before_any_work(tmp_path):
    """Every rank samples with the same cap: ranks started with different values are refused in one line, exit 2,
    nothing written."""
    job = _job(tmp_path, FLOW)
    out = str(tmp_path / "out")
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "hpcflow", "run", job, "--out", out]
    r = subprocess.run([MPIEXEC, "-n", "1", *cmd, "--set", "geometry.max_batches=3", ":", "-n", "1", *cmd, "--set",
                        "geometry.max_batches=4"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2, r.stderr
    line = _one_line(r.stderr)
    assert "[geometry].max_batches differs between ranks (3 on rank 0, 4 on rank 1)" in line, line
    assert not os.path.exists(out)


def test_an_nn_resume_may_change_max_batches(tmp_path, capsys):
    job = _nn_job(tmp_path, "max_batches = 4\n")
    with open(job, "a") as fh:
        fh.write("[checkpoint]\nevery = 1\n")
    out = str(tmp_path / "out")
    assert main(["nn", job, "--out", out, "--quiet"]) == 0
    assert main(["nn", job, "--out", out, "--quiet", "--resume", "--set", "training.epochs=2", "--set",
                 "geometry.max_batches=100"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["nn", job, "--out", out, "--quiet", "--resume", "--set", "training.epochs=3", "--set",
                 "geometry.seed=4"]) == 2
    assert "--resume may change only [training].epochs, threads and check_replicas, [geometry].max_batches" \
        in capsys.readouterr().err
