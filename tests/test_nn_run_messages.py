"""What a network job says: the memory refusal's advice (its estimate does not shrink with more ranks), a batch
larger than the train set, a checkpoint.pt this process may not read or write, the prefix of `hpcflow run`'s lines
and, under several ranks, the launch a continue command needs."""

import errno
import json
import os
import re
import shlex
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

from hpcflow import resources
from hpcflow.cli import main
from hpcflow.errors import ConfigError
from jobtexts import NN_POINTS, SMALL_NET

HERE = os.path.dirname(os.path.abspath(__file__))
#: 200 train points (NN_POINTS), 2 epochs of the small network, no NTK
NN = NN_POINTS + SMALL_NET + "[training]\nepochs = 2\nbatch_size = 50\nlr = 3e-3\nthreads = 1\n[ntk]\nenabled = false\n"
#: the variables that say how many ranks share a node or what memory it has (`resources.memory_limit`)
NODE_VARS = ("OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "MPI_LOCAL_NRANKS", "SLURM_NTASKS_PER_NODE",
             "SLURM_TASKS_PER_NODE", "SLURM_MEM_PER_CPU", "SLURM_MEM_PER_NODE", resources.ENV_IGNORE)


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text(NN)
    return path


def _cfg(path):
    from hpcflow.jobs import registry

    return registry.load(str(path), memory_check=False)[1]


def _refusal(cfg, **kw) -> str:
    with pytest.raises(ConfigError) as info:
        resources.check_resources(cfg, **kw)
    return str(info.value)


def test_a_network_jobs_memory_refusal_advises_what_lowers_its_estimate_or_raises_its_limit(job, monkeypatch):
    """The estimate per rank is the same at 1 and 8 ranks (every rank counted with the whole network and points), so
    one rank per node is not helped by more nodes: the refusal names the sizes; 2 ranks on a node that holds one are
    told to put fewer on each node, and one per node then fits."""
    for var in NODE_VARS:
        monkeypatch.delenv(var, raising=False)
    cfg = _cfg(job)
    one = resources.estimate(cfg).bytes
    assert resources.estimate(cfg, ranks=8).bytes == one
    node_mib = int(1.5 * one / 2**20) + 1  # one rank fits, two do not
    assert one <= node_mib * 2**20 < 2 * one
    monkeypatch.setenv("SLURM_MEM_PER_NODE", str(node_mib))
    shared = _refusal(cfg, ranks=2)  # no local size said: both ranks on this node
    assert "put fewer of its 2 ranks on each node (the same ranks over more nodes)" in shared, shared
    assert resources.check_resources(cfg, ranks=2, per_node=1).bytes == one  # the advice taken: accepted
    monkeypatch.setenv("SLURM_MEM_PER_NODE", str(node_mib // 2))  # not even one rank fits
    for kw in ({"ranks": 1}, {"ranks": 8, "per_node": 1}):
        alone = _refusal(cfg, **kw)
        assert "use more nodes" not in alone and "fewer of its" not in alone, alone
        assert f"reduce {resources.NN_SIZES} (more ranks or nodes do not lower" in alone, alone


def test_the_refusal_of_a_too_big_network_job_says_it_on_the_command_line(job, tmp_path, monkeypatch, capsys):
    for var in NODE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "100")  # below the interpreter with torch alone
    out = tmp_path / "out"
    assert main(["nn", str(job), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hpcflow nn: error: ") and len(err.splitlines()) == 1, err
    assert "use more nodes" not in err and f"reduce {resources.NN_SIZES}" in err, err
    assert not out.exists()


#: 200 NTK points over 50 epochs: the tracker's Θ (9, 9, 200, 200) float64 of every epoch is the job's largest part
NTK_JOB = NN_POINTS + SMALL_NET + """[training]
epochs = 50
batch_size = 100
threads = 1
[ntk]
n_train_points = 100
n_test_points = 100
"""


def test_a_refusal_whose_largest_part_is_the_ntk_names_the_ntk_keys_and_no_unrelated_set(tmp_path, monkeypatch,
                                                                                           capsys):
    """The NTK part is sized by its points and [training].epochs (a Θ of 9 x 9 x N x N float64 kept for epoch 0 and
    each epoch, so one more epoch adds at least that much), not by the batch or the network: the refusal names those
    keys, and an unrelated --set training.batch_size is not cited as its cause (it was, as the advice named
    [training].batch_size whatever the largest part); a --set of training.epochs is."""
    for var in NODE_VARS:
        monkeypatch.delenv(var, raising=False)
    job = tmp_path / "ntk.toml"
    job.write_text(NTK_JOB)
    cfg = _cfg(job)
    theta = 9 * 9 * 200**2 * 8
    more = resources.estimate({**cfg, "training": {**cfg["training"], "epochs": 51}})
    assert more.parts["NTK"] - resources.estimate(cfg).parts["NTK"] >= theta
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "2000")  # the NTK's 51 epochs do not fit, the rest does
    out = tmp_path / "out"
    assert main(["nn", str(job), "--out", str(out), "--set", "training.batch_size=50"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "(largest part: NTK " in err, err
    for key in ("[ntk].n_train_points", "[ntk].n_test_points", "[training].epochs"):
        assert key in err, (key, err)
    assert "batch_size" not in err and "[model]" not in err and "from --set" not in err, err
    assert main(["nn", str(job), "--out", str(out), "--set", "training.epochs=60", "--set",
                 "training.batch_size=50"]) == 2
    assert capsys.readouterr().err.rstrip().endswith("(from --set training.epochs=60)")
    assert not out.exists()


def _lines(text: str) -> list:
    return text.splitlines()


def test_a_batch_larger_than_the_train_set_is_noted_and_trains_as_the_whole_set(job, tmp_path, capsys):
    """batch_size 1000 over 200 train points: one note on stderr naming both and the whole set; the run is that of
    batch_size = n_train (one full batch a step) to the bit. Run by `hpcflow run`, every line it prints (epochs,
    the note, the last) names `hpcflow run`, the command typed."""
    from h5data import NN_TIMINGS, datasets

    big, whole = tmp_path / "big", tmp_path / "whole"
    assert main(["run", str(job), "--out", str(big), "--quiet", "--set", "training.batch_size=1000"]) == 0
    said = capsys.readouterr()
    note = [line for line in _lines(said.err) if "note:" in line]
    assert note == ["hpcflow run: note: [training].batch_size = 1000 exceeds [geometry].n_train = 200: every step's "
                    "batch is the whole train set (200 points, one step per epoch)"], said.err
    assert _lines(said.out) and all(line.startswith("hpcflow run: ") for line in _lines(said.out)), said.out
    assert any(re.match(r"hpcflow run: epoch\s+2 ", line) for line in _lines(said.out)), said.out
    assert main(["nn", str(job), "--out", str(whole), "--quiet", "--set", "training.batch_size=200"]) == 0
    said = capsys.readouterr()
    assert "note:" not in said.err and all(line.startswith("hpcflow nn: ") for line in _lines(said.out)), said
    got, ref = datasets(big / "nn.h5"), datasets(whole / "nn.h5")
    assert got.keys() == ref.keys()
    for key in sorted(set(got) - NN_TIMINGS):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)
    assert json.loads((big / "summary.json").read_text())["epochs"] == 2


def test_a_checkpoint_this_process_may_not_read_is_refused_at_resume_as_such(job, tmp_path, monkeypatch, capsys):
    """--resume of checkpoint.pt that torch.load may not open (PermissionError, as under chmod 000): exit 2 before any
    work, one line that it cannot be read and the fix (not that it is no tensor-only file), nothing changed."""
    import torch

    out = tmp_path / "out"
    assert main(["nn", str(job), "--out", str(out), "--quiet", "--set", "training.epochs=1"]) == 0
    ckpt = out / "checkpoint.pt"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    load = torch.load

    def denied(path, *args, **kwargs):
        if os.fspath(path) == str(ckpt):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return load(path, *args, **kwargs)

    monkeypatch.setattr(torch, "load", denied)
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(out), "--quiet", "--resume"]) == 2
    said = capsys.readouterr()
    assert said.err == (f"hpcflow nn: error: {ckpt} cannot be read ({os.strerror(errno.EACCES)}); give this user read "
                        f"access to it (chmod u+r {ckpt}), then run again\n"), said.err
    assert said.out == ""
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_checkpoint_the_directory_refuses_ends_with_5_and_the_resume_finishes_the_run(job, tmp_path, monkeypatch,
                                                                                        capsys):
    """The second write of checkpoint.pt (epoch 2 of 3, one every epoch) refused for its permissions (EACCES, a
    directory made read-only mid-run): exit 5, one line naming the file, the kept checkpoint of epoch 1 and the fix,
    then the command line that continues; that command, the directory writable again, ends as the uninterrupted
    run."""
    from h5data import NN_TIMINGS, datasets
    from hpcflow.nn import checkpoint as ck

    text = NN.replace("epochs = 2", "epochs = 3") + "[checkpoint]\nevery = 1\n"
    job.write_text(text)
    cut, whole = tmp_path / "cut", tmp_path / "whole"
    atomic, writes = ck.atomic_file, []

    @contextmanager
    def refused(path, *args, **kwargs):
        if os.path.basename(path) == "checkpoint.pt":
            writes.append(path)
            if len(writes) == 2:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.path.join(cut, ".checkpoint.pt.tmp"))
        with atomic(path, *args, **kwargs) as fh:
            yield fh

    monkeypatch.setattr(ck, "atomic_file", refused)
    assert main(["nn", str(job), "--out", str(cut), "--quiet"]) == 5
    err = capsys.readouterr().err
    ckpt = cut / "checkpoint.pt"
    said = re.fullmatch(rf"hpcflow nn: error: cannot write {re.escape(str(ckpt))} \({os.strerror(errno.EACCES)}\); "
                        rf"the last complete checkpoint {re.escape(str(ckpt))} \(1 epoch done\) is intact: make "
                        rf"{re.escape(str(cut))} writable again \(its permissions\), then continue with: (.+)\n", err)
    assert said, err
    again = shlex.split(said.group(1))
    assert again == ["hpcflow", "nn", str(job), "--out", str(cut), "--quiet", "--resume"]
    assert ck.load_checkpoint(ckpt)["train"]["epoch"] == 1
    monkeypatch.setattr(ck, "atomic_file", atomic)
    assert main(again[1:]) == 0
    assert main(["nn", str(job), "--out", str(whole), "--quiet"]) == 0
    got, ref = datasets(cut / "nn.h5"), datasets(whole / "nn.h5")
    for key in sorted(set(ref) - NN_TIMINGS):
        np.testing.assert_array_equal(got[key], ref[key], err_msg=key)


class _Comm:
    def __init__(self, rank, size):
        self.rank, self.size = rank, size

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size


@pytest.mark.parametrize("env, rank, size, said", [
    ({}, 0, 1, ""),
    ({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0"}, 0, 1, ""),
    ({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3", "PMI_SIZE": "4"}, 3, 4, "srun"),  # srun --mpi=pmi2
    ({"PMI_SIZE": "2", "PMI_RANK": "1", "HYDI_CONTROL_FD": "7"}, 1, 2, "mpiexec"),  # MPICH's Hydra
    # Hydra's proxies started by srun, one per node: the step's tasks are the nodes, not the ranks
    ({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0", "HYDI_CONTROL_FD": "7", "PMI_SIZE": "4"}, 2, 4, "mpiexec"),
    # ... one rank per node: as many tasks as ranks, yet Hydra's
    ({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0", "HYDI_CONTROL_FD": "7"}, 0, 2, "mpiexec"),
    ({"OMPI_COMM_WORLD_SIZE": "2", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1"}, 1, 2, "mpiexec"),
])
def test_the_launch_note_names_the_ranks_and_the_launcher_that_started_them(env, rank, size, said):
    """The launcher and the rank count the run had, without asking for that count: a flow continues at any R as it
    would have gone on, a network bit for bit at the same R and to rounding at another (it said "with the same
    launcher and R ranks", as if another R could not continue it)."""
    from hpcflow.commands.run import launch_note

    for verb, counts in (("run", f"{size} ranks, or any other number"),
                         ("nn", f"{size} ranks continue it bit for bit, another number to rounding")):
        note = launch_note(env, comm=_Comm(rank, size), verb=verb)
        assert note == (f"under {said} ({counts}), " if said else "")


@pytest.mark.slow
def test_a_network_run_stopped_on_2_ranks_names_their_launch_before_its_continue_command(job, tmp_path):
    """mpiexec -n 2 `hpcflow nn` stopped by a SIGTERM to rank 1 after step 2 (tests/mpi/nn_step_stop_driver.py):
    exit 4, one line whose continue command is preceded by the launch it needs (2 ranks, mpiexec); that command on
    2 ranks finishes the run."""
    from test_parallel import mpiexec

    out = tmp_path / "out"
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.path.dirname(HERE))
    driver = os.path.join(HERE, "mpi", "nn_step_stop_driver.py")
    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, driver, "0", "2", "1", "nn", str(job), "--out",
                        str(out), "--quiet"], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 4, r.stderr[-2000:]
    # (besides rank 0's note on the batch's few rows per rank, on stderr like every note)
    lines = [line for line in r.stderr.splitlines() if line.startswith("hpcflow") and ": note: " not in line]
    again = shlex.join(["hpcflow", "nn", str(job), "--out", str(out), "--quiet", "--resume"])
    assert len(lines) == 1 and lines[0].endswith(f"; under mpiexec (2 ranks continue it bit for bit, another number to rounding), continue with: "
                                                 f"{again}"), r.stderr[-2000:]
    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", *shlex.split(again)], capture_output=True,
                       text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["ranks"] == 2 and summary["epochs"] == 2


def test_the_readme_says_that_run_runs_a_network_job_but_only_nn_continues_it(job, tmp_path, capsys):
    """README's command list says `hpcflow run` runs network jobs too; `hpcflow run --resume` of one is refused (it
    continues with `hpcflow nn --resume`), and the same line of the README says so."""
    out = tmp_path / "net"
    assert main(["run", str(job), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "training.epochs=3"]) == 2
    assert "continues with 'hpcflow nn'" in capsys.readouterr().err
    with open(os.path.join(HERE, os.pardir, "README.md"), encoding="utf-8") as fh:
        line = next(s for s in fh if s.lstrip().startswith("hpcflow nn JOB.toml"))
    assert "run runs them too" in line and "only nn --resume continues" in line, line


def test_a_batch_of_one_row_per_rank_is_said_in_the_singular(job, tmp_path):
    """mpiexec -n 2 `hpcflow nn` at batch_size = 2: rank 0's note says "1 row per rank and step", once."""
    from test_parallel import mpiexec

    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.path.dirname(HERE))
    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "nn", str(job), "--out",
                        str(tmp_path / "out"), "--quiet", "--set", "training.batch_size=2", "--set",
                        "training.epochs=1"], capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    notes = [line for line in r.stderr.splitlines() if "per rank and step" in line]
    assert len(notes) == 1 and notes[0].startswith("hpcflow nn: note: batch_size = 2 over 2 ranks is 1 row per rank "
                                                   "and step; "), r.stderr


@pytest.mark.parametrize("batch,ranks,said", [(3, 2, "1.5 rows"), (2, 3, "0.667 rows"), (4, 2, "2 rows"),
                                               (511, 2, "256 rows"), (3, 3, "1 row")])
def test_the_few_rows_note_says_the_mean_rows_per_rank(batch, ranks, said):
    from hpcflow.nn.job import few_rows_note

    assert f"batch_size = {batch} over {ranks} ranks is {said} per rank and step;" in few_rows_note(batch, ranks)


@pytest.mark.parametrize("batch,ranks", [(2, 1), (100, 1), (512, 2), (768, 3)])
def test_one_rank_or_enough_rows_per_rank_is_not_noted(batch, ranks):
    from hpcflow.nn.job import few_rows_note

    assert few_rows_note(batch, ranks) is None
