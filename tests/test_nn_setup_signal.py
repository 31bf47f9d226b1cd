"""A SIGTERM or SIGUSR1 while `hpcflow nn` starts up (its job validated, --out's lock taken, torch imported), before
the job's own stop handling, ends it with one line "hpcflow nn: stopped by SIG..." and the status a shell gives a
process that signal ended (143, 138), at 1 rank and under `mpiexec -n 2` (where it used to end with MPICH's banner
and the bare signal number), no traceback; nothing of the run's is left in --out. From the points' sampling on, the
job's own handling takes a request: honoured at the training's first step boundary (checkpoint, exit 4), as a flow
honours one in its set-up (tests/test_flow_setup_signal.py). The signal reaches one rank alone
(tests/mpi/nn_setup_signal_driver.py)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from hpcflow.jobs.output import is_result
from jobtexts import NN_POINTS, SMALL_NET
from test_parallel import mpiexec

pytest.importorskip("torch")

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi", "nn_setup_signal_driver.py")
JOB = NN_POINTS + SMALL_NET + """[training]
epochs = 2
batch_size = 100
threads = 1
"""


@pytest.mark.parametrize("ranks, rank, sig, where", [
    (1, 0, "SIGTERM", "hpcflow.jobs.registry:load"), (1, 0, "SIGUSR1", "hpcflow.jobs.outlock:holding"),
    (2, 1, "SIGTERM", "hpcflow.jobs.registry:load"), (2, 0, "SIGUSR1", "hpcflow.jobs.outlock:holding"),
    (2, 1, "SIGUSR1", "hpcflow.nn._torch:require_torch")])
def test_a_stop_signal_in_start_up_ends_the_command_in_one_line_with_128_plus_the_signal(tmp_path, ranks, rank, sig,
                                                                                        where):
    r, out = _run(tmp_path, ranks, rank, sig, where)
    assert r.returncode == 128 + getattr(signal, sig), (r.returncode, r.stderr)
    ours = [line for line in r.stderr.splitlines() if line.startswith("hpcflow")]
    tag = f" (rank {rank})" if rank else ""
    assert ours == [f"hpcflow nn: stopped by {sig}{tag}"], r.stderr
    assert "Traceback" not in r.stderr and "BAD TERMINATION" not in r.stderr and "EXIT STRING" not in r.stderr
    assert not [name for name in (os.listdir(out) if out.is_dir() else []) if is_result(name)]


@pytest.mark.parametrize("ranks, rank", [(1, 0), (2, 1)])
def test_a_stop_signal_while_the_points_are_sampled_is_honoured_at_the_first_step(tmp_path, ranks, rank):
    r, out = _run(tmp_path, ranks, rank, "SIGTERM", "hpcflow.nn.experiment:sample_shards")
    assert r.returncode == 4, (r.returncode, r.stderr)
    # (at 2 ranks rank 0's note on the batch's few rows per rank comes before, on stderr like every note)
    ours = [line for line in r.stderr.splitlines() if line.startswith("hpcflow") and ": note: " not in line]
    assert len(ours) == 1 and ours[0].startswith("hpcflow nn: stopped: signal received: checkpoint written after "
                                                 "epoch 0 + 1 batches;"), r.stderr
    assert (out / "checkpoint.pt").is_file() and json.loads((out / "summary.json").read_text())["status"] == "preempted"


def test_the_readme_says_what_a_stop_in_start_up_leaves_and_what_a_resume_then_says(tmp_path):
    """A SIGTERM once --out's lock has made the directory (torch's import) removes it again, and a --resume then finds
    no checkpoint.pt (exit 2): the README's network section says both, and the line and status (it promised only a
    checkpoint at the next step boundary and exit status 4)."""
    r, out = _run(tmp_path, 1, 0, "SIGTERM", "hpcflow.nn._torch:require_torch")
    assert r.returncode == 143 and not out.exists(), (r.returncode, r.stderr)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(DRIVER))))
    again = subprocess.run([sys.executable, "-m", "hpcflow", "nn", str(tmp_path / "job.toml"), "--out", str(out),
                            "--resume"], capture_output=True, text=True, timeout=120, env=env)
    assert again.returncode == 2 and f"{out}/checkpoint.pt does not exist" in again.stderr, again.stderr
    with open(os.path.join(os.path.dirname(os.path.dirname(DRIVER)), os.pardir, "README.md"), encoding="utf-8") as fh:
        readme = fh.read()
    section = " ".join(readme.split("\n## Finite networks")[1].split("\n## ")[0].split())
    for words in ("`hpcflow nn: stopped by SIGTERM` (SIGUSR1), with status 143 (138)",
                  "under `mpiexec` the status is the same and the line is one rank's (rank 0's unless it waits in a "
                  "collective): where every rank got the request (mpiexec forwards it to each) they leave together "
                  "after MPI's Finalize; where one waits in a collective, the line is followed by MPICH's own line for "
                  "the job's MPI_Abort, `Abort(143) on node 0",
                  "an --out it created is removed",
                  "the checkpoint under `--resume`", "its checkpoint.pt does not exist, exit 2",
                  "honoured after the first step (checkpoint \"after epoch 0 + 1 batches\", exit 4)"):
        assert words in section, words


def _run(tmp_path, ranks, rank, sig, where):
    """The driver's `hpcflow nn JOB --out OUT --quiet` at `ranks` ranks: (the CompletedProcess, OUT)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(DRIVER))))
    return subprocess.run(["timeout", "30", *launch, sys.executable, DRIVER, str(rank), sig, where, "nn", str(job),
                           "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=60, env=env), out
