"""What a Slurm submission asks for against what its job needs: a job that needs a GPU wherever it runs (a network
job's [training].device = 'cuda', an exported HPCFLOW_BACKEND=cupy, a tune searching device 'cuda') is refused in one
line before anything is queued where it asks Slurm for no GPU (Slurm allocates GPUs on request only, and the job
failed on its node); an exported HPCFLOW_THREADS above --cpus-per-task, which the job inherits, is said in one line.
Slurm is a stand-in (`test_submit._stand_in_slurm`): sinfo's partitions, an sbatch that records its call."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
NN_JOB = ROOT / "jobs" / "nn_smoke.toml"
FLOW_JOB = ROOT / "jobs" / "quickstart.toml"
CUDA = ["--set", 'training.device="cuda"']
GPUS = ["--partition", "mixed", "--gpus-per-node", "1"]  # (mixed: the stand-in's partition with GPU nodes)


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    """A stand-in Slurm; returns the file its sbatch writes its call to (absent until one is made). No GPU here,
    as on a login node; HPCFLOW_BACKEND and HPCFLOW_THREADS unset."""
    import torch

    from test_submit import SINFO, _stand_in_slurm
    from test_submit_failures import _sbatch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("HPCFLOW_BACKEND", "HPCFLOW_THREADS"):
        monkeypatch.delenv(name, raising=False)
    bin_dir = tmp_path / "bin"
    called = _stand_in_slurm(bin_dir, monkeypatch, SINFO)
    _sbatch(bin_dir, out="Submitted batch job 42\n", rc=0)
    return called


def _refused(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpcflow submit: error: "), err
    return err[0]


@pytest.mark.parametrize("check", [["--check"], []])
def test_a_cuda_network_job_without_a_gpu_request_is_refused_before_it_is_queued(tmp_path, slurm, capsys, check):
    """It was queued, and failed on its node (exit 2: torch sees no GPU); --check said only that this node has none."""
    submit = ["submit", str(NN_JOB), "--out", str(tmp_path / "out"), "--command", "nn", "--executor", "slurm", *CUDA]
    assert main([*submit, *check]) == 2
    line = _refused(capsys)
    assert "[training].device = 'cuda'" in line and line.endswith("add --gpus-per-node 1"), line
    assert not slurm.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bin"]
    assert main([*submit, *GPUS, *check]) == 0, capsys.readouterr().err  # the fix it names is taken
    assert slurm.exists() != bool(check)


def test_a_job_that_needs_no_gpu_is_queued_without_one(tmp_path, slurm, capsys):
    """device 'auto' (a GPU where there is one) and 'cpu' need none; neither does a flow on NumPy."""
    out = str(tmp_path / "out")
    for device in ("auto", "cpu"):
        assert main(["submit", str(NN_JOB), "--out", out, "--command", "nn", "--executor", "slurm", "--set",
                     f'training.device="{device}"', "--check"]) == 0, capsys.readouterr().err
    assert main(["submit", str(FLOW_JOB), "--out", out, "--executor", "slurm", "--check"]) == 0
    assert "error" not in capsys.readouterr().err


def test_an_exported_cupy_backend_needs_a_gpu_request(tmp_path, slurm, capsys, monkeypatch):
    """HPCFLOW_BACKEND=cupy passes into the job (sbatch's default export), whose array work then needs a GPU."""
    monkeypatch.setenv("HPCFLOW_BACKEND", "cupy")
    submit = ["submit", str(FLOW_JOB), "--out", str(tmp_path / "out"), "--executor", "slurm", "--check"]
    assert main(submit) == 2
    line = _refused(capsys)
    assert "HPCFLOW_BACKEND=cupy" in line and "--gpus-per-node 1" in line, line
    assert main([*submit, *GPUS]) == 0, capsys.readouterr().err
    # GPUs asked through --sbatch (a TRES per task) are a request too
    assert main([*submit, "--partition", "mixed", "--sbatch", "tres-per-task=gres/gpu:1"]) == 0, \
        capsys.readouterr().err


def test_a_tune_searching_the_cuda_device_needs_a_gpu_request(tmp_path, slurm, capsys):
    """A trial drawing 'cuda' fails on a node without a GPU (the tune there refuses that value before any trial)."""
    job = tmp_path / "tune_cuda.toml"
    job.write_text((ROOT / "jobs" / "tune_nn.toml").read_text() + '"training.device" = {choices = ["cpu", "cuda"]}\n')
    submit = ["submit", str(job), "--command", "tune", "--trials", "1", "--out", str(tmp_path / "study"),
              "--executor", "slurm", "--check"]
    assert main(submit) == 2
    line = _refused(capsys)
    assert '"training.device"' in line and "'cuda'" in line and "--gpus-per-node 1" in line, line
    assert main([*submit, *GPUS]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("check", [["--check"], []])
def test_exported_threads_above_the_tasks_cpus_are_said_in_one_line(tmp_path, slurm, capsys, monkeypatch, check):
    """HPCFLOW_THREADS=2 exported with --cpus-per-task 1 went into the job unsaid: 2 threads on 1 CPU each task.
    Said (and kept: the job takes it), naming the variable, the CPUs per task and the --cpus-per-task that fits it."""
    submit = ["submit", str(FLOW_JOB), "--out", str(tmp_path / "out"), "--executor", "slurm", *check]
    monkeypatch.setenv("HPCFLOW_THREADS", "2")
    assert main([*submit, "--cpus-per-task", "1"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpcflow submit: warning: HPCFLOW_THREADS=2"), err
    assert "--cpus-per-task 1" in err[0] and "add --cpus-per-task 2" in err[0], err
    assert main(submit) == 0  # (--cpus-per-task 1 by default)
    assert "HPCFLOW_THREADS=2" in capsys.readouterr().err
    assert main([*submit, "--cpus-per-task", "2"]) == 0  # threads within the task's CPUs: nothing to say
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("HPCFLOW_THREADS")  # the job takes its task's CPUs
    assert main(submit) == 0
    assert capsys.readouterr().err == ""


def test_exported_threads_advice_fits_the_partition(tmp_path, slurm, capsys, monkeypatch):
    """HPCFLOW_THREADS=4 on a partition of 2-CPU nodes (the stand-in's default, batch) was told to add
    --cpus-per-task 4, which submit then refuses (the job could never start there). The line says the nodes have too
    few CPUs, and its advice is taken: the threads and --cpus-per-task it names are queued without a warning, and so
    is the job with HPCFLOW_THREADS unset. Where the threads fit (partition mixed, 8-CPU nodes), --cpus-per-task of
    the threads is advised, as before."""
    import re
    import shlex

    submit = ["submit", str(FLOW_JOB), "--out", str(tmp_path / "out"), "--executor", "slurm", "--check"]
    monkeypatch.setenv("HPCFLOW_THREADS", "4")
    assert main(submit) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpcflow submit: warning: HPCFLOW_THREADS=4"), err
    assert "add --cpus-per-task 4" not in err[0] and "nodes have 2 CPUs" in err[0], err
    assert "unset HPCFLOW_THREADS" in err[0], err
    assert main([*submit, "--cpus-per-task", "4"]) == 2  # (what was advised)
    assert "needs 4 CPUs per node" in capsys.readouterr().err
    threads, option = re.search(r"export HPCFLOW_THREADS=(\d+) and add (--cpus-per-task \d+)", err[0]).groups()
    monkeypatch.setenv("HPCFLOW_THREADS", threads)
    assert main([*submit, *shlex.split(option)]) == 0 and capsys.readouterr().err == ""
    monkeypatch.delenv("HPCFLOW_THREADS")
    assert main(submit) == 0 and capsys.readouterr().err == ""
    # two tasks per 2-CPU node leave each task 1 CPU, the default: HPCFLOW_THREADS=1 and nothing to add
    monkeypatch.setenv("HPCFLOW_THREADS", "2")
    assert main([*submit, "--ntasks-per-node", "2", "--no-memory-check"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export HPCFLOW_THREADS=1" in err[0] and "add --cpus-per-task" not in err[0], err
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    assert main([*submit, "--ntasks-per-node", "2", "--no-memory-check"]) == 0 and capsys.readouterr().err == ""
    monkeypatch.setenv("HPCFLOW_THREADS", "4")  # fits partition mixed's 8-CPU nodes
    assert main([*submit, "--partition", "mixed"]) == 0
    assert "add --cpus-per-task 4" in capsys.readouterr().err
    assert main([*submit, "--partition", "mixed", "--cpus-per-task", "4"]) == 0 and capsys.readouterr().err == ""
