"""Two back-to-back `hpcflow submit ... --out DIR` were both queued, and the second failed as it started, on the
lock of the first one's run. A run or network run submitted into the --out of a queued or running job of
`hpcflow submit` (a local job's controller on this host, a Slurm job that squeue lists with its comment) is refused
at submission (exit 2, --check too), naming the job and how to stop it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from hpcflow.cli import main
from hpcflow.submit import queued
from test_checkpoint import RESUME_JOB
from test_submit import JOB, ROOT, _script, _stand_in_slurm


def test_a_local_job_queued_into_the_same_out_refuses_the_second_submission(tmp_path, capsys):
    """A stand-in for a local job's controller (its command line: `-m hpcflow.submit.local FOLDER OUT`), live and of
    this user: the submission into OUT is refused naming it; into another --out, or once it has ended, it passes."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "-m", "hpcflow.submit.local",
                                 str(tmp_path / "out_logs"), str(out)])
    try:
        deadline = time.monotonic() + 30  # (its exec may have closed Popen's pipe before the kernel set its argv)
        while not queued.local_jobs(str(out)) and time.monotonic() < deadline:
            time.sleep(0.05)
        base = ["submit", str(job), "--executor", "local", "--check"]
        assert main([*base, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"local job {stand_in.pid}, queued or running" in err, err
        assert f"kill -TERM {stand_in.pid}" in err
        assert main([*base, "--out", str(tmp_path / "other")]) == 0, capsys.readouterr().err
        assert main([*base, "--command", "tune", "--trials", "1", "--out", str(out)]) != 2 or \
            "queued or running" not in capsys.readouterr().err  # (a tune's workers share their --out)
    finally:
        stand_in.kill()
        stand_in.wait()
    capsys.readouterr()
    assert main([*base, "--out", str(out)]) == 0, capsys.readouterr().err


def test_a_submitted_local_jobs_controller_names_its_out(tmp_path):
    """The real controller of a queued local job is what the refusal finds."""
    (tmp_path / "job.toml").write_text(RESUME_JOB)  # (a flow of steps that it takes time to run)
    said = tmp_path / "said"
    with open(said, "w") as f:  # (not a pipe: the job's controller keeps submit's output open while it runs)
        r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "o", "--executor", "local",
                            "--quiet", "--set", "flow.steps=1000000"], cwd=tmp_path, stdout=f, stderr=f, timeout=120,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, said.read_text()
    job = re.search(r"local job (\d+):", said.read_text()).group(1)
    try:
        while not (tmp_path / "o" / "checkpoint.h5").exists():  # (its run takes SIGTERM from then on)
            assert os.path.exists(f"/proc/{job}"), said.read_text()
            time.sleep(0.2)
        assert queued.local_jobs(str(tmp_path / "o")) == [job]
        again = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "o", "--executor",
                                "local", "--check"], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert again.returncode == 2, again.stdout  # (its own words, or the lock's once its run has started)
    finally:
        os.kill(int(job), signal.SIGTERM)  # (its run stops with its checkpoint)
        while os.path.exists(f"/proc/{job}") and queued.local_jobs(str(tmp_path / "o")):
            time.sleep(0.2)


def test_a_slurm_job_queued_into_the_same_out_refuses_the_second_submission(tmp_path, monkeypatch, capsys):
    """The sbatch script of a run carries the --out's mark as its comment; squeue listing a job with it: refused."""
    from hpcflow.submit import executor

    job, out = tmp_path / "job.toml", tmp_path / "out dir"
    job.write_text(JOB)
    bin_dir = tmp_path / "bin"
    _stand_in_slurm(bin_dir, monkeypatch, "debug*|8|4|(null)|infinite|1-infinite|UNLIMITED")
    ex = executor.make_executor("slurm", str(tmp_path / "logs"), executor.Resources(), name="x", out=str(out))
    text = ex._make_submission_file_text(ex._submitit_command_str, "uid")
    comment = re.search(r"^#SBATCH --comment=(\S+)$", text, re.MULTILINE).group(1)
    (bin_dir / "squeue.out").write_text(f"41|other\n4242|{comment}\n")
    _script(bin_dir / "squeue", f'cat "{bin_dir}/squeue.out"')
    argv = ["submit", str(job), "--out", str(out), "--executor", "slurm", "--check"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "slurm job 4242, queued or running" in err and "scancel 4242" in err, err
    (bin_dir / "squeue.out").write_text("41|other\n")
    assert main(argv) == 0, capsys.readouterr().err
