"""A rank killed inside MPI (kill -9, out of memory) leaves its 2 MiB /dev/shm/mpich_shm_H_N, H the FNV-1a hash of
the step's PMI name JOB.STEP: `hpcflow.submit.shm.remove_stale` removed it only when the same job id was requeued,
and `hpcflow submit ... --resume` runs as a new job. Now the job removes its own step's segments once the step ended
with a status other than 0: the batch shell of `hpcflow submit`'s jobs after its srun, each task of the templates'
step after its command. Segments of other jobs and steps, and those a live process uses, stay."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hpcflow.submit.executor import batch_shell_teardown
from hpcflow.submit.shm import remove_ended
from hpcflow.submit.step import SIGNALS_ENV


def _fnv1a(text: str) -> str:
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) % 2**32
    return format(h, "x")


def _segment(folder, name: str, node: int = 0, kind: str = "shm") -> str:
    path = os.path.join(folder, f"mpich_{kind}_{_fnv1a(name)}_{node}")
    with open(path, "wb") as fh:
        fh.write(b"\0" * 64)
    return path


def test_removes_the_ended_jobs_segments_only(tmp_path, capsys):
    ours = [_segment(tmp_path, "4242.0"), _segment(tmp_path, "4242.0", 1, "vci"),
            _segment(tmp_path, "slurm.pmix.4242.0")]
    other_job = _segment(tmp_path, "4243.0")
    held = _segment(tmp_path, "4242.1")
    with open(held, "rb"):  # a live step's: in use
        removed = remove_ended("hpcflow submit:", {"SLURM_JOB_ID": "4242"}, shm=str(tmp_path))
    assert sorted(removed) == sorted(ours)
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in (other_job, held))
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("hpcflow submit: removed ") and "4242" in line for line in err)


def test_a_task_removes_its_own_steps_only(tmp_path):
    mine = _segment(tmp_path, "77.3")
    sibling_step = _segment(tmp_path, "77.4")
    assert remove_ended("x:", {"SLURM_JOB_ID": "77", "PMI_JOBID": "77.3"}, shm=str(tmp_path)) == [mine]
    assert os.listdir(tmp_path) == [os.path.basename(sibling_step)]


def test_outside_slurm_nothing(tmp_path):
    _segment(tmp_path, "5.0")
    assert remove_ended("x:", {}, shm=str(tmp_path)) == []
    assert len(os.listdir(tmp_path)) == 1


def _job_id() -> str:
    return f"9{os.getpid()}{os.urandom(3).hex()}"  # (a name no real job has: its segment is this test's own)


@pytest.mark.parametrize("status, left", [(137, False), (0, True)])
def test_the_batch_shell_removes_them_after_a_failed_srun(tmp_path, status, left):
    job = _job_id()
    path = _segment("/dev/shm", f"{job}.0")
    try:
        script = "\n".join([f"(exit {status})", *batch_shell_teardown(os.fspath(tmp_path))])
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PMI_", "PMIX_"))}
        r = subprocess.run(["bash", "-c", script], env={**clean, "SLURM_JOB_ID": job}, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == status  # (srun's status stays the job's)
        assert os.path.exists(path) == left, r.stderr
    finally:
        if os.path.exists(path):
            os.unlink(path)


def test_a_templates_task_removes_its_segment_after_its_rank_was_killed():
    job = _job_id()
    path = f"/dev/shm/mpich_shm_{_fnv1a(job + '.0')}_0"
    rank = f"open({path!r}, 'wb').write(b'x'); import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "PMI_", "PMIX_")) and k != SIGNALS_ENV}
    try:
        r = subprocess.run([sys.executable, "-m", "hpcflow.submit.step", "--task", sys.executable, "-c", rank],
                           env={**clean, "SLURM_JOB_ID": job, "PMI_JOBID": f"{job}.0"}, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 137, r.stderr
        assert not os.path.exists(path), r.stderr
    finally:
        if os.path.exists(path):
            os.unlink(path)
