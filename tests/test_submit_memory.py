"""`hpcflow submit` checks the job's memory per rank as the queued job will: its ranks, those on one node sharing
the node's memory; `--no-memory-check`, which the refusal names, is taken by submit and tune and passed on."""

from __future__ import annotations

import os

import pytest

from hpcflow.cli import build_parser, main
from hpcflow.jobs import registry
from hpcflow.resources import ENV_IGNORE, estimate, fmt_bytes
from test_submit import JOB, _only, _stand_in_slurm

TUNE = JOB + '[tune]\nsampler = "random"\npruner = "none"\n[tune.space]\n"flow.dt" = {low = 0.5, high = 3.0}\n'


def _queued(said: str) -> list:
    """The command line that submit --check says it would queue."""
    return said.splitlines()[0].split(": hpcflow ", 1)[1].split()  # (a Slurm job's #SBATCH lines follow)


def test_ranks_on_one_node_share_its_memory_at_submission(tmp_path, monkeypatch, capsys):
    """A node limit (SLURM_MEM_PER_NODE) that holds the job's one rank but not two: --ntasks-per-node 2 is refused
    (the queued job refused itself as it started), 2 nodes of 1 task pass; --no-memory-check queues it with the
    flag passed on (the refusal named a flag that submit did not take)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    _, cfg = registry.load(str(job), memory_check=False)
    one, two = estimate(cfg, ranks=1).bytes, estimate(cfg, ranks=2).bytes
    node = int(1.5 * max(one, two) / 2**20)  # MiB: one rank fits, two of them on the node do not
    assert one <= node * 2**20 and two > node * 2**20 / 2
    monkeypatch.setenv("SLURM_MEM_PER_NODE", str(node))
    monkeypatch.delenv(ENV_IGNORE, raising=False)
    base = ["submit", str(job), "--out", str(out), "--executor", "slurm", "--check"]
    for check in (["--check"], []):
        assert main([*base[:-1], *check, "--ntasks-per-node", "2"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"estimated peak memory {fmt_bytes(two)} per rank" in err, err
        assert f"exceeds the {fmt_bytes(node * 2**20 / 2)} " in err and "SLURM_MEM_PER_NODE / 2 ranks per node" in err
        assert "pass --no-memory-check" in err
    assert main([*base, "--nodes", "2"]) == 0  # one rank a node
    assert "is valid" in capsys.readouterr().out
    assert main([*base, "--ntasks-per-node", "2", "--no-memory-check"]) == 0
    queued = _queued(capsys.readouterr().out)
    assert "--no-memory-check" in queued and build_parser().parse_args(queued).no_memory_check is True
    assert _only(tmp_path) == ["bin", "job.toml"]


def test_tune_takes_no_memory_check_as_its_refusal_says(tmp_path, monkeypatch, capsys):
    """A tune whose job exceeds the limit is refused naming --no-memory-check; tune and submit --command tune take
    the flag (they refused it: unrecognized arguments), the tune's trial then runs, and the environment is as
    before."""
    job, out = tmp_path / "tune.toml", tmp_path / "study"
    job.write_text(TUNE)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "1")  # 1 MiB: below any job's estimate
    monkeypatch.delenv(ENV_IGNORE, raising=False)
    tune = ["tune", str(job), "--trials", "1", "--out", str(out), "--quiet"]
    submit = ["submit", str(job), "--out", str(out), "--executor", "local", "--command", "tune", "--trials", "1",
              "--check"]
    for argv in (tune, submit):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "exceeds the 1 MiB" in err and "pass --no-memory-check" in err, err
    assert not out.exists()
    assert main([*submit, "--no-memory-check"]) == 0
    queued = _queued(capsys.readouterr().out)
    assert queued[0] == "tune" and build_parser().parse_args(queued).no_memory_check is True
    assert main([*tune, "--no-memory-check"]) == 0
    assert "1 complete" in capsys.readouterr().out
    assert ENV_IGNORE not in os.environ


@pytest.mark.parametrize("value", ["0", "yes"])
def test_no_memory_check_keeps_the_environment_checks(tmp_path, monkeypatch, capsys, value):
    """tune --no-memory-check leaves HPCFLOW_IGNORE_MEMORY_CHECK as it was, and one that is not 0 or 1 is still
    refused, naming it."""
    job = tmp_path / "tune.toml"
    job.write_text(TUNE)
    monkeypatch.setenv(ENV_IGNORE, value)
    rc = main(["tune", str(job), "--trials", "1", "--out", str(tmp_path / "study"), "--quiet", "--no-memory-check"])
    err = capsys.readouterr().err
    assert (rc, os.environ[ENV_IGNORE]) == ((2 if value == "yes" else 0), value), err
    if value == "yes":
        assert f"{ENV_IGNORE}='yes' must be 1" in err and err.count("\n") == 1


def test_a_network_job_whose_ntk_is_its_largest_part_is_told_the_ntk_keys_at_submission(tmp_path, monkeypatch, capsys):
    """The refusal against a node's memory (--mem, one rank per node) names the keys that size the largest part (the
    metric-NTK's points and epochs), not the network's width or batch, which do not lower it."""
    from hpcflow.resources import estimate_nn

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    job = os.path.join(root, "jobs", "nn_smoke.toml")
    sets = ["geometry.n_train=3000", "ntk.n_train_points=2500", "ntk.n_test_points=100"]
    _, cfg = registry.load(job, sets, memory_check=False)
    est = estimate_nn(cfg)
    assert est.largest() == "NTK"  # (the Θ of 2600 points, kept for every epoch)
    _stand_in_slurm(tmp_path / "bin", monkeypatch, "debug*|8|1|(null)|infinite|1-infinite|UNLIMITED|0")
    monkeypatch.delenv(ENV_IGNORE, raising=False)
    mem = int(0.5 * est.bytes / 2**20)
    args = ["submit", job, "--out", str(tmp_path / "out"), "--executor", "slurm", "--command", "nn", "--check",
            "--mem", f"{mem}M", *(x for s in sets for x in ("--set", s))]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "largest part: NTK" in err, err
    assert "[ntk].n_train_points" in err and "[training].epochs" in err and "[model].width" not in err, err


@pytest.mark.parametrize("per_node, node_per_rank, fit", [(2, 1.5, 1), (4, 2.5, 2), (2, 0.8, 0), (1, 0.8, 0)])
def test_a_network_jobs_refusal_at_submission_advises_what_fits(tmp_path, monkeypatch, capsys, per_node,
                                                                   node_per_rank, fit):
    """A network job's estimate per rank is the same on any ranks (data parallel): refused against a node of
    `node_per_rank` times it with `per_node` ranks, the advice is the ranks per node that fit (`fit`), which then
    pass, and where not even one fits, smaller sizes or a node with more memory, never fewer ranks per node or more
    nodes (with one rank per node, refused again, it said that these do not help)."""
    from hpcflow.resources import estimate_nn

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    job = os.path.join(root, "jobs", "nn_smoke.toml")
    _, cfg = registry.load(job, memory_check=False)
    node = int(node_per_rank * estimate_nn(cfg).bytes / 2**20)  # MiB
    _stand_in_slurm(tmp_path / "bin", monkeypatch, f"debug*|8|1|(null)|infinite|1-infinite|UNLIMITED|{node}")
    monkeypatch.delenv(ENV_IGNORE, raising=False)
    args = ["submit", job, "--out", str(tmp_path / "out"), "--executor", "slurm", "--check"]
    assert main([*args, "--ntasks-per-node", str(per_node)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("; reduce " in err or " or reduce " in err), err
    if fit:
        assert f"(--ntasks-per-node {fit}:" in err and "--nodes" not in err, err
        assert main([*args, "--ntasks-per-node", str(fit)]) == 0
        assert main([*args, "--ntasks-per-node", str(fit + 1)]) == 2
        return
    assert "--ntasks-per-node" not in err and "--nodes" not in err and "fewer ranks" not in err, err
    assert "pick a --partition whose nodes have more memory" in err, err
    assert main([*args, "--ntasks-per-node", "1"]) == 2  # (so it was right not to advise it)
    assert "(sinfo), one rank per node" in capsys.readouterr().err


@pytest.mark.parametrize("mem_share", [0.5, 1.0])
def test_raise_mem_is_advised_only_below_the_nodes_memory(tmp_path, monkeypatch, capsys, mem_share):
    """A network job refused against --mem: "raise --mem" while --mem is below the partition's node memory; --mem at
    the node's memory cannot be raised (a higher one is refused, as it could never start), so it is not advised."""
    from hpcflow.resources import estimate_nn

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    job = os.path.join(root, "jobs", "nn_smoke.toml")
    _, cfg = registry.load(job, memory_check=False)
    node = int(0.8 * estimate_nn(cfg).bytes / 2**20)  # MiB: not even one rank fits the node
    _stand_in_slurm(tmp_path / "bin", monkeypatch, f"debug*|8|1|(null)|infinite|1-infinite|UNLIMITED|{node}")
    monkeypatch.delenv(ENV_IGNORE, raising=False)
    mem = int(mem_share * node)
    args = ["submit", job, "--out", str(tmp_path / "out"), "--executor", "slurm", "--check", "--mem", f"{mem}M"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--mem {mem} MiB per node" in err, err
    assert ("raise --mem" in err) == (mem < node), err
    if mem == node:
        assert main([*args[:-1], f"{node + 1}M"]) == 2
        assert "could never start" in capsys.readouterr().err


@pytest.mark.parametrize("cpus, cpus_per_task, advised", [(2, 1, 2), (64, 1, 30), (2, 4, 0)])
def test_the_ranks_per_node_advised_fit_the_nodes_cpus(tmp_path, monkeypatch, capsys, cpus, cpus_per_task, advised):
    """A network job refused against the node's memory at --ntasks-per-node 64 is advised the ranks per node that
    fit its memory (30) and the partition's CPUs at its --cpus-per-task, so that following the advice passes (it
    advised 30 on a node of 2 CPUs, which the CPU check then refused); where not even one rank fits the CPUs, both
    refusals are said in one line."""
    from hpcflow.resources import estimate_nn

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    job = os.path.join(root, "jobs", "nn_smoke.toml")
    _, cfg = registry.load(job, memory_check=False)
    node = int(30.5 * estimate_nn(cfg).bytes / 2**20)  # MiB: 30 ranks' estimates fit, 31 do not
    _stand_in_slurm(tmp_path / "bin", monkeypatch, f"debug*|{cpus}|1|(null)|infinite|1-infinite|UNLIMITED|{node}")
    monkeypatch.delenv(ENV_IGNORE, raising=False)
    args = ["submit", job, "--out", str(tmp_path / "out"), "--executor", "slurm", "--check",
            "--cpus-per-task", str(cpus_per_task)]
    assert main([*args, "--ntasks-per-node", "64"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    if advised:
        assert f"(--ntasks-per-node {advised}:" in err, err
        assert main([*args, "--ntasks-per-node", str(advised)]) == 0, capsys.readouterr().err
        return
    assert "--ntasks-per-node 30" not in err and "estimated peak memory" in err, err
    assert f"--cpus-per-task {cpus_per_task} needs {cpus_per_task} CPUs per node" in err, err
