"""--quiet silences progress only (README: progress bars and their plain lines): the notes of `hpcflow nn` and
`hpcflow run` that warn of a likely mistake are said with it alike, under mpiexec as in one process. A network job
with a key in a switched-off section (the unused-keys note, stdout) split into few rows per rank (the few-rows note,
stderr) at 2 ranks: with --quiet, and with HPCFLOW_QUIET=1, both notes are said, by `hpcflow nn` and by `hpcflow run`
of that job; before, --quiet hid the first and kept the second."""

import os
import subprocess
import sys

from jobtexts import NN_POINTS, SMALL_NET, TINY_TRAINING
from test_nn_mpi import mpiexec

#: 200 train points in batches of 100 over 2 ranks (50 rows per rank), one epoch; [kernel_flow] off with steps given
JOB = NN_POINTS + SMALL_NET + TINY_TRAINING.replace("epochs = 4", "epochs = 1") + "[kernel_flow]\nsteps = 7\n"


def _notes(text: str, words: str) -> list:
    return [line for line in text.splitlines() if words in line]


def test_quiet_keeps_the_warning_notes_of_nn_and_run_alike(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.getcwd())
    env.pop("HPCFLOW_QUIET", None)
    for prog, quiet, extra in (("nn", ["--quiet"], {}), ("run", ["--quiet"], {}), ("nn", [], {"HPCFLOW_QUIET": "1"})):
        out = tmp_path / f"{prog}{len(quiet)}"
        p = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", prog, str(job), "--out", str(out),
                            *quiet], capture_output=True, text=True, timeout=300, env={**env, **extra})
        assert p.returncode == 0, p.stderr[-3000:]
        assert _notes(p.stdout, "is not used") == [
            f"hpcflow {prog}: note: [kernel_flow] steps = 7 is not used: [kernel_flow].enabled = false"], p.stdout
        few = _notes(p.stderr, "rows per rank")
        assert len(few) == 1 and "batch_size = 100 over 2 ranks is 50 rows per rank and step" in few[0], p.stderr
        assert (out / "summary.json").is_file()
