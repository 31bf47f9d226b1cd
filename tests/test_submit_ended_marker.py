"""The marker the batch shell of a submitit sbatch script touches as its step ends (`batch_shell_teardown`) is the
file `ended_file` looks for: ARRAYJOB_INDEX for an array task, JOBID for a plain job."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from hpcflow.submit.executor import batch_shell_teardown, ended_file


def _run_teardown(folder: Path, env: dict, status: int) -> int:
    script = "\n".join([f"(exit {status})", *batch_shell_teardown(os.fspath(folder))])
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    return subprocess.run(["bash", "-c", script], env={**clean, **env}, timeout=30).returncode


@pytest.mark.parametrize("env, job_id", [
    ({"SLURM_JOB_ID": "1199", "SLURM_ARRAY_JOB_ID": "1198", "SLURM_ARRAY_TASK_ID": "0"}, "1198_0"),
    ({"SLURM_JOB_ID": "1200", "SLURM_ARRAY_JOB_ID": "1198", "SLURM_ARRAY_TASK_ID": "1"}, "1198_1"),
    ({"SLURM_JOB_ID": "1201"}, "1201"),
])
def test_the_ended_marker_is_the_file_ended_file_names(tmp_path, env, job_id):
    folder = tmp_path / "logs dir"
    folder.mkdir()
    assert _run_teardown(folder, env, 3) == 3  # (srun's status stays the job's)
    assert os.listdir(folder) == [f"{job_id}_ended"]
    job = SimpleNamespace(job_id=job_id, paths=SimpleNamespace(folder=folder))
    assert os.path.isfile(ended_file(job))
