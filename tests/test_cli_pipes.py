"""A command whose output's reader goes away (`hpcflow run ... | head -1`) finishes its work with exit 0: log lines
are not the product, and a run stopped half-way by a broken pipe would leave only a checkpoint."""

import json
import os
import subprocess
import sys

import pytest

JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "table1_delta.toml")
SMALL = ["--set", "geometry.n_train=1500", "--set", "geometry.n_test=300", "--set", "flow.steps=40"]


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_run_whose_reader_closed_the_pipe_finishes(tmp_path, unbuffered):
    out = tmp_path / "out"
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONUNBUFFERED=unbuffered)
    for stream in ("stdout", "stderr"):
        target = out / stream
        proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "run", JOB, "--out", str(target), *SMALL],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE if stream == "stderr" else None,
                                env=env)
        getattr(proc, stream).close()  # the reader is gone before the first line
        assert proc.wait(timeout=300) == 0
        if proc.stdout and not proc.stdout.closed:
            proc.stdout.close()
        summary = json.loads((target / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["steps_taken"] == 40


def test_sample_whose_reader_closed_the_pipe_writes_its_file(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "sample", "--n", "500", "--out", str(tmp_path / "p.h5")],
                            stdout=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED=""))
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0 and (tmp_path / "p.h5").is_file()
