"""`hpcflow submit` estimates a job's memory per rank with the threads each rank runs with on its node (its
--cpus-per-task, or an exported HPCFLOW_THREADS), as the queued `hpcflow run` then does, not with the submitting
host's: a job accepted at submission refused itself on the node after its wait in the queue. A refusal names the
--mem that the node's ranks need."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from hpcflow.cli import main
from hpcflow.resources import ENV_IGNORE
from test_parallel import mpiexec
from test_submit import _stand_in_slurm

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "quickstart.toml")
#: sizes whose estimate per rank rests on the per-thread kernel tiles and sampler batches (hundreds of MiB)
SETS = ["geometry.n_train=20000", "geometry.n_test=20000", "clustering.n_clusters=40", "clustering.batch_size=1000"]
SET_ARGS = [x for s in SETS for x in ("--set", s)]
PER_RANK = re.compile(r"estimated peak memory (\S+ \S+) per rank")


def _run_check(tmp_path, cpus: int) -> str:
    """The estimate per rank that `hpcflow run --check` prints on 2 ranks of a node as a Slurm job's tasks see it:
    SLURM_CPUS_PER_TASK and the HPCFLOW_THREADS the sbatch templates export from it (this host has fewer CPUs than a
    rank of 8 would own on the node)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_", "PMI", "HYDRA_"))}
    env = dict(env, PYTHONPATH=str(ROOT), SLURM_CPUS_PER_TASK=str(cpus), HPCFLOW_THREADS=str(cpus),
               SLURM_MEM_PER_NODE="100000")
    env.pop(ENV_IGNORE, None)
    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", JOB, "--out",
                        str(tmp_path / f"run{cpus}"), *SET_ARGS, "--check"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    said = PER_RANK.findall(r.stdout + r.stderr)
    assert said, r.stdout + r.stderr
    return said[0]


def _submit(tmp_path, capsys, cpus: int, mem: str) -> tuple[int, str]:
    rc = main(["submit", JOB, "--out", str(tmp_path / "out"), "--executor", "slurm", "--ntasks-per-node", "2",
               "--cpus-per-task", str(cpus), "--mem", mem, *SET_ARGS, "--check"])
    return rc, capsys.readouterr().err


def test_submit_estimates_with_the_threads_of_each_rank_on_the_node(tmp_path, monkeypatch, capsys):
    """submit --check at --cpus-per-task 1 and 8 (2 ranks per node) states the estimate per rank that the queued
    `hpcflow run --check` prints there; a --mem between the two is accepted at 1 CPU and refused at 8, naming a
    --mem that then passes; an HPCFLOW_THREADS exported at submission, which the job inherits, counts over
    --cpus-per-task."""
    _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|16|4|(null)|infinite|1-infinite|UNLIMITED|64000")
    monkeypatch.delenv(ENV_IGNORE, raising=False)
    monkeypatch.delenv("HPCFLOW_THREADS", raising=False)
    ran = {cpus: _run_check(tmp_path, cpus) for cpus in (1, 8)}
    mib = {cpus: float(v.split()[0]) * {"MiB": 1, "GiB": 1024}[v.split()[1]] for cpus, v in ran.items()}
    assert mib[8] > 1.2 * mib[1], ran  # (the per-thread parts matter at these sizes)
    for cpus in (1, 8):  # a --mem of 1 MiB a rank: the refusal states the estimate per rank
        rc, err = _submit(tmp_path, capsys, cpus, "2M")
        assert rc == 2 and PER_RANK.findall(err) == [ran[cpus]], (cpus, ran, err)
    between = int(mib[1] + mib[8])  # MiB per node: 2 ranks of the 1-CPU estimate fit, 2 of the 8-CPU one do not
    assert _submit(tmp_path, capsys, 1, f"{between}M")[0] == 0
    rc, err = _submit(tmp_path, capsys, 8, f"{between}M")
    assert rc == 2 and err.count("\n") == 1 and f"estimated peak memory {ran[8]} per rank" in err, err
    need = re.search(r"raise --mem to at least (\d+) \(MiB", err)
    assert need is not None, err
    assert 2 * mib[8] - 2 <= int(need.group(1)) <= 2 * mib[8] + 2, (need.group(1), ran)
    assert _submit(tmp_path, capsys, 8, f"{need.group(1)}M")[0] == 0
    monkeypatch.setenv("HPCFLOW_THREADS", "8")  # exported here: the job's ranks run 8 threads on 1 CPU each
    rc, err = _submit(tmp_path, capsys, 1, f"{between}M")
    assert rc == 2 and f"estimated peak memory {ran[8]} per rank" in err, err
