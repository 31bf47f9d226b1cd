"""Ranks started with different jobs (an MPMD launch, `mpiexec -n 1 hpcflow nn JOB --out D : -n 1 hpcflow nn JOB
--out D --set training.lr=1e-2`) are refused by every rank together, in one line naming the key and both values,
exit 2, before any work (--out is not created). They went on each with its own job into sampling and training and
failed late with a traceback (`TrainConfig.lr differs between ranks`, `steps differs between ranks`, exit 1): the
Python-API checks compare the arguments of each collective entry point, reached only after the work before it; the
job after its --set overrides was never compared. Jobs that read alike after the overrides are one job."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analysis_runs import env
from jobtexts import GAUSSIAN_KERNEL, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points
from test_parallel import RANK_STATUS, mpiexec, rank_statuses

NN = NN_POINTS + SMALL_NET + TINY_TRAINING
FLOW = flow_points(60, 40) + GAUSSIAN_KERNEL + "[flow]\ndt = 0.5\nsteps = 3\n"


def _mpmd(tmp_path, verb: str, first: list, second: list):
    """Rank 0 runs `hpcflow VERB` with `first`, rank 1 with `second`; (statuses, stdout, stderr)."""
    return _launch(tmp_path, [verb, *first], [verb, *second])


def _launch(tmp_path, first: list, second: list, *, second_env: tuple = (), first_env: tuple = (),
            second_program: tuple = ("-m", "hpcflow"), limit: int = 120):
    """Rank 0 runs `hpcflow *first`, rank 1 `python *second_program *second`, each with its own variables (NAME=VALUE
    for `env`) over the tests' environment; (statuses, stdout, stderr). A rank left waiting is ended after `limit`
    seconds (its status is then not 2)."""
    status = tmp_path / "status"
    status.mkdir()
    each = [[sys.executable, RANK_STATUS, str(status), "env", *variables, sys.executable, *program, *argv]
            for argv, variables, program in ((first, first_env, ("-m", "hpcflow")),
                                             (second, second_env, second_program))]
    proc = subprocess.run(["timeout", "-k", "5", str(limit), mpiexec(), "-n", "1", *each[0], ":", "-n", "1",
                           *each[1]], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=limit + 30)
    return rank_statuses(status, 2), proc.stdout, proc.stderr


@pytest.mark.parametrize("verb, text, extra, said", [
    ("nn", NN, ["--set", "training.lr=1e-2"], "[training].lr differs between ranks (0.003 on rank 0, 0.01 on rank 1)"),
    ("run", FLOW, ["--set", "flow.steps=6"], "[flow].steps differs between ranks (3 on rank 0, 6 on rank 1)"),
    ("nn", NN, ["--set", "ntk.enabled=true"], "[ntk].enabled differs between ranks (false on rank 0, true on rank 1)"),
])
def test_ranks_given_different_jobs_are_refused_together_before_any_work(tmp_path, verb, text, extra, said):
    (tmp_path / "job.toml").write_text(text)
    base = ["job.toml", "--out", "out"]
    statuses, out, err = _mpmd(tmp_path, verb, base, [*base, *extra])
    assert statuses == [2, 2], out + err
    assert err.count("\n") == 1 and said in err and "same job file, --set values and options" in err, err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "out").exists()  # refused before --out was looked into


def test_ranks_given_different_out_are_refused_together(tmp_path):
    (tmp_path / "job.toml").write_text(FLOW)
    statuses, out, err = _mpmd(tmp_path, "run", ["job.toml", "--out", "a"], ["job.toml", "--out", "b"])
    assert statuses == [2, 2], out + err
    assert err.count("\n") == 1 and '--out differs between ranks ("a" on rank 0, "b" on rank 1)' in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_jobs_that_read_alike_after_their_overrides_are_one_job(tmp_path):
    """A --set on one rank alone that gives a key the value the file has changes nothing: the ranks agree."""
    (tmp_path / "job.toml").write_text(FLOW)
    base = ["job.toml", "--out", "out", "--check"]
    statuses, out, err = _mpmd(tmp_path, "run", base, [*base, "--set", "flow.steps=3"])
    assert statuses == [0, 0], out + err
    assert out.count("\n") == 1 and "valid" in out and "nothing run" in out, out + err


TUNE = ["job.toml", "--out", "study", "--trials", "1", "--quiet", "--set", "geometry.n_train=60",
        "--set", "flow.steps=2"]


@pytest.mark.parametrize("extra, said", [
    (["--set", "flow.steps=3"], "[flow].steps differs between ranks (2 on rank 0, 3 on rank 1)"),
    (["--trials", "2"], "--trials differs between ranks (1 on rank 0, 2 on rank 1)"),
])
def test_tune_workers_given_different_studies_are_refused_together_before_any_trial(tmp_path, extra, said):
    """`hpcflow tune` under mpiexec runs each trial's flow on every rank: ranks given another job or options went
    on into the trial's collectives (or one rank's trial count alone counted), unsaid."""
    (tmp_path / "job.toml").write_text(open("jobs/tune_delta.toml").read())
    statuses, out, err = _mpmd(tmp_path, "tune", TUNE, [*TUNE, *extra])
    assert statuses == [2, 2], out + err
    assert err.count("\n") == 1 and said in err and "same job file, --set values and options" in err, err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "study").exists()  # refused before the study directory was made


@pytest.mark.parametrize("extra, said", [
    (["--n", "200", "--out", "a.h5"], "--n differs between ranks (100 on rank 0, 200 on rank 1)"),
    (["--n", "100", "--out", "b.h5"], '--out differs between ranks ("a.h5" on rank 0, "b.h5" on rank 1)'),
])
def test_sample_ranks_given_different_options_are_refused_together_before_any_work(tmp_path, extra, said):
    """`hpcflow sample` under mpiexec: ranks given another --n sampled into a traceback on every rank (exit 1), and
    another --out was found only by the write, after all the sampling."""
    statuses, out, err = _mpmd(tmp_path, "sample", ["--n", "100", "--out", "a.h5", "--quiet"], [*extra, "--quiet"])
    assert statuses == [2, 2], out + err
    assert err.count("\n") == 1 and said in err and "same options" in err, err
    assert "Traceback" not in err and out == ""
    assert not (tmp_path / "a.h5").exists() and not (tmp_path / "b.h5").exists()


#: the same start of every rank that the command's first exchange refuses (`hpcflow.cli.same_command`)
COMMANDS_FIX = "start every rank with the same command line (one command line after mpiexec -n R) from the same " \
               "hpcflow installation"


@pytest.mark.parametrize("first, second", [
    (["run", "job.toml", "--out", "a"], ["sample", "--n", "100", "--out", "p.h5", "--quiet"]),
    (["run", "job.toml", "--out", "a"], ["nn", "nn.toml", "--out", "b"]),
    (["run", "job.toml", "--out", "a"], ["info"]),
    (["info"], ["run", "job.toml", "--out", "a"]),
    (["run", "job.toml", "--out", "a"], ["report", "a", "--out", "r"]),
    (["sample", "--n", "100", "--out", "p.h5"], ["tune", "job.toml", "--trials", "1", "--out", "s"]),
])
def test_ranks_running_different_commands_are_refused_together_before_any_work(tmp_path, first, second):
    """An MPMD launch whose ranks run different hpcflow commands: the commands' collectives did not match, and the
    ranks waited in them for ever (`hpcflow run` against `hpcflow sample` spun for 11 minutes; SIGTERM did not end
    it). The ranks' first exchange compares the command: one line naming both, exit 2 on every rank, nothing
    written."""
    (tmp_path / "job.toml").write_text(FLOW)
    (tmp_path / "nn.toml").write_text(NN)
    statuses, out, err = _launch(tmp_path, first, second, limit=60)
    assert statuses == [2, 2], out + err
    assert err == (f'hpcflow {first[0]}: error: command differs between ranks ("hpcflow {first[0]}" on rank 0, '
                   f'"hpcflow {second[0]}" on rank 1); {COMMANDS_FIX}\n'), err
    assert out == "" and sorted(p.name for p in tmp_path.iterdir()) == ["job.toml", "nn.toml", "status"]


def test_ranks_running_different_hpcflow_versions_are_refused_together(tmp_path):
    """Rank 1's hpcflow says another version (a node whose environment holds another install)."""
    (tmp_path / "job.toml").write_text(FLOW)
    older = ("-c", "import sys, hpcflow; hpcflow.__version__ = '0.0.1'; from hpcflow.cli import main; "
             "sys.argv[0] = 'hpcflow'; sys.exit(main())")
    argv = ["run", "job.toml", "--out", "a"]
    statuses, out, err = _launch(tmp_path, argv, argv, second_program=older, limit=60)
    assert statuses == [2, 2], out + err
    from hpcflow import __version__

    assert err == (f'hpcflow run: error: hpcflow version differs between ranks ("{__version__}" on rank 0, "0.0.1" '
                   f'on rank 1); {COMMANDS_FIX}\n'), err
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("bad", [0, 1])
def test_a_command_line_refused_on_one_rank_alone_ends_every_rank(tmp_path, bad):
    """argparse refuses one rank's command line (an unknown option): that rank left, and the other went on alone
    into the command's collectives and waited for ever. Both now end with status 2; rank 0 says why in one line,
    which names argparse's refusal whichever rank it was (rank 1's was never shown)."""
    (tmp_path / "job.toml").write_text(FLOW)
    good, wrong = ["run", "job.toml", "--out", "a"], ["run", "job.toml", "--out", "a", "--bogus"]
    statuses, out, err = _launch(tmp_path, *((wrong, good) if bad == 0 else (good, wrong)), limit=60)
    assert statuses == [2, 2], out + err
    ended = ('"hpcflow run, ended by its argument parser (status 2): unrecognized arguments: --bogus (see '
             '\'hpcflow run --help\')"')
    said = (f"({ended} on rank 0, \"hpcflow run\" on rank 1)" if bad == 0 else
            f"(\"hpcflow run\" on rank 0, {ended} on rank 1)")
    assert err == f"hpcflow run: error: command differs between ranks {said}; {COMMANDS_FIX}\n", err
    assert out == "" and not (tmp_path / "a").exists()


def test_a_command_line_refused_alike_on_every_rank_is_said_once(tmp_path):
    """Every rank's argparse refuses the same command line: rank 0 prints argparse's own line alone, exit 2."""
    argv = ["run", "job.toml", "--out", "a", "--bogus"]
    statuses, out, err = _launch(tmp_path, argv, argv, limit=60)
    assert statuses == [2, 2], out + err
    assert err == "hpcflow run: error: unrecognized arguments: --bogus (see 'hpcflow run --help')\n", err


MEMORY_FIX = ("pass --no-memory-check, or set HPCFLOW_IGNORE_MEMORY_CHECK=1, on every rank or on none (one command "
              "line after mpiexec -n R)")


@pytest.mark.parametrize("second, second_env", [
    (["--no-memory-check"], ()),
    ([], ("HPCFLOW_IGNORE_MEMORY_CHECK=1",)),
])
def test_the_memory_check_skipped_on_one_rank_alone_is_refused(tmp_path, second, second_env):
    """A job over the memory limit (SLURM_MEM_PER_NODE=64 MiB here) with the check skipped on rank 1 alone: rank 0's
    check refused it, telling the user to pass --no-memory-check, which rank 1 had been given. Refused together
    before any check, naming the difference."""
    (tmp_path / "job.toml").write_text(FLOW)
    argv = ["run", "job.toml", "--out", "a", "--check"]
    statuses, out, err = _launch(tmp_path, argv, [*argv, *second], first_env=("SLURM_MEM_PER_NODE=64",),
                                 second_env=("SLURM_MEM_PER_NODE=64", *second_env), limit=60)
    assert statuses == [2, 2], out + err
    assert err == ("hpcflow run: error: whether the memory check is skipped (--no-memory-check, "
                   "HPCFLOW_IGNORE_MEMORY_CHECK=1) differs between ranks (false on rank 0, true on rank 1); "
                   f"{MEMORY_FIX}\n"), err


def test_the_memory_check_skipped_on_every_rank_either_way_is_one_setting(tmp_path):
    """--no-memory-check on rank 0, HPCFLOW_IGNORE_MEMORY_CHECK=1 on rank 1: both skip it, and the job runs."""
    (tmp_path / "job.toml").write_text(FLOW)
    argv = ["run", "job.toml", "--out", "a", "--check"]
    statuses, out, err = _launch(tmp_path, [*argv, "--no-memory-check"], argv,
                                 first_env=("SLURM_MEM_PER_NODE=64",),
                                 second_env=("SLURM_MEM_PER_NODE=64", "HPCFLOW_IGNORE_MEMORY_CHECK=1"), limit=60)
    assert statuses == [0, 0], out + err
    assert out.count("\n") == 1 and "valid" in out and "nothing run" in out, out + err


def test_the_memory_check_skipped_on_one_rank_alone_does_not_matter_to_a_command_that_makes_none(tmp_path):
    """hpcflow info checks no job's memory: HPCFLOW_IGNORE_MEMORY_CHECK=1 on rank 1 alone does not refuse it."""
    statuses, out, err = _launch(tmp_path, ["info"], ["info"], second_env=("HPCFLOW_IGNORE_MEMORY_CHECK=1",), limit=60)
    assert statuses == [0, 0], out + err
    assert "memory check" not in err and "error" not in err and "hpcflow" in out, out + err


@pytest.mark.parametrize("variable, said", [
    ("HPCFLOW_THREADS=abc", "HPCFLOW_THREADS='abc' must be an integer in [1, "),
    ("HPCFLOW_BACKEND=bogus", "HPCFLOW_BACKEND='bogus' is not one of numpy, cupy, auto"),
    ("OMP_NUM_THREADS=0", "OMP_NUM_THREADS='0' is not a positive integer"),
    ("HPCFLOW_QUIET=yes", "HPCFLOW_QUIET='yes' must be 1 (no progress bars) or 0 (off)"),
])
def test_a_variable_bad_on_one_rank_alone_is_refused_naming_that_rank(tmp_path, variable, said):
    """Each rank checks its own environment; the one line is the refusing rank's, and says which rank that is (rank 0,
    whose environment the user sees, had passed)."""
    (tmp_path / "job.toml").write_text(FLOW)
    argv = ["run", "job.toml", "--out", "a", "--check"]
    statuses, out, err = _launch(tmp_path, argv, argv, second_env=(variable,), limit=60)
    assert statuses == [2, 2], out + err
    assert err.startswith(f"hpcflow run: error: {said}") and err.count("\n") == 1, err
    assert err.endswith(" (on rank 1; 1 of 2 ranks refused)\n"), err


def test_ranks_that_run_different_thread_counts_are_said_once(tmp_path):
    """HPCFLOW_THREADS=1 on rank 0, 2 on rank 1: the flow runs (each rank's threads are its own), and rank 0 says in
    one line that the counts differ, listing them, and that the run records rank 0's (legs[].threads = 1)."""
    import json

    (tmp_path / "job.toml").write_text(FLOW)
    argv = ["run", "job.toml", "--out", "a", "--quiet"]
    statuses, out, err = _launch(tmp_path, argv, argv, first_env=("HPCFLOW_THREADS=1",),
                                 second_env=("HPCFLOW_THREADS=2",), limit=120)
    assert statuses == [0, 0], out + err
    notes = [line for line in err.splitlines() if "thread counts" in line]
    assert len(notes) == 1 and notes[0].startswith(
        "hpcflow: note: the ranks run different thread counts ($HPCFLOW_THREADS, else the CPUs each owns: 1 on rank "
        "0; 2 on rank 1): "), err
    assert "record" in notes[0] and "rank 0's (1)" in notes[0], notes
    legs = json.loads((tmp_path / "a" / "summary.json").read_text())["legs"]
    assert [leg["threads"] for leg in legs] == [1], legs
