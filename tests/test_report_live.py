"""`hpcflow report` of a run still in progress: the lock on its directory is held, so its row says running and
names the holder (pid@host), in report.md and report.html; a SIGKILLed run (lock file, no holder) is interrupted.
The probe (a shared lock held for an instant) never refuses a run that starts meanwhile."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import h5py

from analysis_runs import ROOT, env, md_rows
from hpcflow.jobs import outlock
from test_outdir_lock import FLOW, _start


def _report(dirs, out):
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", *map(str, dirs), "--out", str(out)], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    return md_rows(md.split("## Runs")[1].split("\n## ")[0]), page, md


def test_a_live_run_is_running_with_its_pid_at_host_and_a_killed_one_interrupted(tmp_path):
    job, run = tmp_path / "flow.toml", tmp_path / "flow"
    job.write_text(FLOW.replace("steps = 20", "steps = 400"))
    proc = _start([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(run)], tmp_path / "run.log",
                  (run / "checkpoint.h5").exists)
    proc.send_signal(signal.SIGSTOP)  # mid-run, however fast the machine: the lock stays held
    try:
        rows, page, md = _report([run], tmp_path / "live")
        status = rows["flow"][2]
        assert status.startswith(f"running: hpcflow run, pid {proc.pid}@{socket.gethostname()}, since "), status
        assert f"running: hpcflow run, pid {proc.pid}@" in page
        assert "interrupted" not in page and "interrupted" not in md  # the sigma-history lines say running too
        legend = re.search(rf"flow \[gaussian\] \((running: hpcflow run, pid {proc.pid}@\S+, since \S+, at step "
                           r"(\d+))\): sigma train", md)
        assert legend, md
        with h5py.File(run / "checkpoint.h5", "r") as f:  # the stopped run's step on disk
            step = int(f.attrs["step"])
        assert legend[2] == str(step) and status == legend[1], (status, legend[1])  # how far, as the legend says
        assert f"{legend[1]}</td>" in page, page
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert (run / outlock.LOCK_NAME).exists()  # the killed run's lock file stays; its lock is gone
    rows, page, md = _report([run], tmp_path / "killed")
    job_toml = f"{run}/job.toml" if (run / "job.toml").exists() else "JOB"  # killed before it wrote job.toml: JOB
    assert re.fullmatch(rf"incomplete: no summary.json, interrupted at step \d+; continue it with hpcflow run "
                        rf"{re.escape(job_toml)} --out {re.escape(str(run))} --resume", rows["flow"][2]), rows["flow"]
    assert "flow [gaussian] (incomplete: no summary.json, interrupted at step " in md, md
    assert "running:" not in rows["flow"][2] and f"pid {proc.pid}" not in page


def test_a_run_before_its_first_checkpoint_is_named_running_and_a_released_lock_is_not(tmp_path):
    """A directory whose holder has written nothing yet is skipped as running, not as 'holds none of'; a lock file
    left without a holder is not a run."""
    held, left = tmp_path / "held", tmp_path / "left"
    lock = outlock.acquire(held, command="hpcflow run")
    try:
        left.mkdir()
        (left / outlock.LOCK_NAME).write_bytes((held / outlock.LOCK_NAME).read_bytes())  # as a killed run leaves it
        from hpcflow.report.detect import detect

        info = detect(held)
        assert info.kind is None and info.reason.startswith(
            f"running: hpcflow run, pid {os.getpid()}@{socket.gethostname()}, since ") and "nothing written yet" in \
            info.reason
        assert detect(left).reason.startswith("holds none of ") and not detect(left).running
    finally:
        lock.release()
    assert detect(held).reason.startswith("holds none of ") and not detect(held).running  # released


def test_a_probe_does_not_refuse_a_run_that_starts_meanwhile(tmp_path):
    """`held_by` (report, --check) holds the lock shared for an instant; a run taking it then waits that instant
    out instead of being refused as if a run held it. Here the probe is held for 0.1 s."""
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / outlock.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    timer = threading.Timer(0.1, lambda: os.close(fd))
    timer.start()
    t0 = time.monotonic()
    try:
        lock = outlock.acquire(out, command="hpcflow run")
    finally:
        timer.join()
    assert time.monotonic() - t0 < outlock.PROBE_WAIT + 0.2
    assert outlock.held_by(out) is not None
    lock.release()
    assert outlock.held_by(out) is None
