"""`hpcflow submit --executor slurm` refuses what is wrong whatever the cluster says (the job file, a --set value, a
--mpi type srun lacks, a job that needs a GPU and asks for none, an --out in use) before it asks Slurm anything: a
controller that does not answer made sinfo and squeue wait 10-20 s before such a one-line refusal. Slurm is a
stand-in whose sinfo, squeue, scontrol and sacct record each call; a submission that passes those checks does ask
sinfo (the stand-in is the one on PATH). Its memory refusal names the --set that sized the job, as `hpcflow run`'s
does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hpcflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.toml"
NN = ROOT / "jobs" / "nn_smoke.toml"
#: sinfo's line of one partition (batch, the default): 8 CPUs on 2 nodes, no GPU, 1000 MiB of memory each
SINFO = "batch*|8|2|(null)|infinite|1-infinite|UNLIMITED|1000"
#: what the stand-in srun prints for --mpi=list (Slurm 22.05's form): no pmix
MPI_LIST = "MPI plugin types are...\\n\\tnone\\n\\tpmi2\\n\\tcray_shasta"
ASKS = ("sinfo", "squeue", "scontrol", "sacct")


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def slurm(tmp_path, monkeypatch):
    """A stand-in Slurm first on PATH; returns the file each query of the cluster (ASKS) appends its name to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "asked"
    for name in ASKS:
        out = f"echo '{SINFO}'" if name == "sinfo" else "true"
        _script(bin_dir / name, f'echo {name} >> "{asked}"; {out}')
    _script(bin_dir / "srun", f'[ "$1" = --mpi=list ] && printf "{MPI_LIST}\\n"; true')
    _script(bin_dir / "sbatch", f'echo sbatch >> "{tmp_path}/queued"; exit 1')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in ("HPCFLOW_BACKEND", "HPCFLOW_THREADS", "HPCFLOW_IGNORE_MEMORY_CHECK"):
        monkeypatch.delenv(name, raising=False)
    return asked


def _asked(asked: Path) -> list[str]:
    return asked.read_text().split() if asked.exists() else []


def _submit(tmp_path, job, *options) -> list[str]:
    return ["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--check", *options]


REFUSED = {
    "a cuda network job asking for no GPU": (NN, ["--command", "nn", "--set", "training.device=cuda"],
                                             "add --gpus-per-node 1"),
    "an --mpi type srun lacks": (QUICKSTART, ["--nodes", "2", "--mpi", "bogus"], "--mpi bogus: not an MPI type"),
    "a PMIx --mpi srun lacks": (QUICKSTART, ["--nodes", "2", "--mpi", "pmix"], "--mpi pmix"),
    "a --set value out of range": (QUICKSTART, ["--set", "flow.steps=-1"], "(from --set flow.steps=-1)"),
    "a cross-field check": (QUICKSTART, ["--set", "clustering.n_clusters=501"],
                            "(from --set clustering.n_clusters=501)"),
    "a job file that does not exist": (ROOT / "jobs" / "missing.toml", [], "job file does not exist"),
    "a key of another kind": (QUICKSTART, ["--command", "nn"], "'hpcflow nn' runs kind = \"nn\" jobs"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refusal_that_needs_no_cluster_asks_slurm_nothing(case, tmp_path, slurm, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    job, options, words = REFUSED[case]
    assert main(_submit(tmp_path, job, *options)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert _asked(slurm) == [], (case, _asked(slurm))
    assert not (tmp_path / "queued").exists() and not (tmp_path / "out").exists()


def test_an_out_that_is_not_empty_is_refused_before_squeue(tmp_path, slurm, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text("{}")
    assert main(_submit(tmp_path, QUICKSTART)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err, err
    assert _asked(slurm) == []


def test_a_valid_submission_asks_slurm_once_checked(tmp_path, slurm, capsys):
    """The stand-in is the Slurm asked: squeue (a job queued into the same --out) and sinfo (the partition)."""
    assert main(_submit(tmp_path, QUICKSTART, "--set", "flow.steps=2")) == 0, capsys.readouterr().err
    assert "in partition batch" in capsys.readouterr().out
    assert set(_asked(slurm)) == {"sinfo", "squeue"}


@pytest.mark.parametrize("executor", ["slurm", "local"])
def test_a_submitted_jobs_memory_refusal_names_the_set_that_sized_it(executor, tmp_path, slurm, capsys):
    """Checked against the partition's 1000 MiB nodes (slurm) or this host's memory (local): it named no --set."""
    big = "geometry.n_train=1_000_000_000_000"
    argv = _submit(tmp_path, QUICKSTART, "--set", big, "--set", "flow.steps=2")
    argv[argv.index("slurm")] = executor
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "estimated peak memory" in err, err
    assert "[geometry].n_train" in err and err.rstrip().endswith(f"(from --set {big})"), err
    assert ("1000 MiB" in err) == (executor == "slurm"), err


def test_a_submitted_tunes_memory_is_still_checked_with_its_job(tmp_path, slurm, capsys):
    """A tune's trials are checked against this host's memory as its job loads (before Slurm is asked): the check
    left for later, against the node's memory, is a run's or network run's only."""
    big = "geometry.n_train=1_000_000_000_000"
    argv = _submit(tmp_path, ROOT / "jobs" / "tune_gaussian.toml", "--command", "tune", "--trials", "2", "--set", big)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "estimated peak memory" in err and err.rstrip().endswith(f"(from --set {big})"), err
    assert _asked(slurm) == []
