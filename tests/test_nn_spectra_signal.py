"""A stop request (SIGTERM) while `hpcflow nn` computes the NTK's spectra after its training, where no width sweep or
kernel flow follows, has nothing left to stop: the run finishes (exit 0, status "finished") and says so in one line on
stderr, once per run however often the request comes, from rank 0 alone (it used to go on without a word, so a
scancel seemed ignored for the tens of seconds the spectra of many NTK points take). The signals are real ones sent
by the process itself at fixed points (tests/mpi/nn_spectra_signal_driver.py), at 1 rank and under `mpiexec -n 2`
(where the other rank gets one too)."""

import json
import os
import re
import subprocess
import sys

import pytest

from test_nn_setup_signal import JOB  # 2 epochs of the small network, the NTK on 10 + 10 points (the default)
from test_parallel import mpiexec

pytest.importorskip("torch")

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi", "nn_spectra_signal_driver.py")
SAID = re.compile(r"hpcflow nn: stop request after the last training step: nothing left to stop; writing the outputs "
                  r"\(about \d+ s\)")


@pytest.mark.parametrize("ranks", [1, 2])
def test_a_stop_request_during_the_spectra_is_said_once_and_the_run_finishes(tmp_path, ranks):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    env = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1",
               PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(DRIVER))))
    r = subprocess.run(["timeout", "120", *launch, sys.executable, DRIVER, "nn", str(job), "--out", str(out)],
                       capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    said = [line for line in r.stderr.splitlines() if "stop request" in line]
    assert len(said) == 1 and SAID.fullmatch(said[0]), r.stderr
    assert "--resume" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2 and summary["ranks"] == ranks
    assert f"wrote {out}/summary.json" in r.stdout, r.stdout


def test_the_readme_quotes_the_line():
    with open(os.path.join(os.path.dirname(DRIVER), os.pardir, os.pardir, "README.md"), encoding="utf-8") as fh:
        section = " ".join(fh.read().split("\n## Finite networks")[1].split("\n## ")[0].split())
    assert ("`hpcflow nn: stop request after the last training step: nothing left to stop; writing the outputs "
            "(about N s)`") in section
