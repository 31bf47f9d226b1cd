"""A --force run killed hard (SIGKILL) leaves the earlier run's files set aside in DIR/.hpcflow.replaced-*: the next
run on DIR settles them once it holds DIR's lock (so never a live run's): put back where the killed run wrote nothing
of its own, removed once a --resume of it has finished (not when it is preempted), named by a plain run and by the
report otherwise."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hpcflow.jobs import replaced
from hpcflow.report.detect import detect
from jobtexts import GAUSSIAN_KERNEL, flow_points

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1",
           PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
#: a Gaussian flow of 300 / 300 points checkpointed every 5 steps (1500 steps: ~10 s of flow on one core)
JOB = flow_points(300, 300) + GAUSSIAN_KERNEL + """[flow]
dt = 0.5
steps = {steps}
loss = "ultralocal"
weighted = true
[checkpoint]
every = 5
"""


@pytest.fixture()
def jobs(tmp_path):
    """(a short job, a long one: ~10 s of flow, checkpointed every 5 steps)."""
    short, long = tmp_path / "short.toml", tmp_path / "long.toml"
    short.write_text(JOB.format(steps=20))
    long.write_text(JOB.format(steps=1500))
    return short, long


def _hpcflow(*args, **kw):
    return subprocess.run([sys.executable, "-m", "hpcflow", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=300, **kw)


def _files(out) -> dict:
    """The files directly in `out` (name -> bytes), the lock file and debris of interrupted writes left out."""
    return {n: (out / n).read_bytes() for n in os.listdir(out)
            if (out / n).is_file() and n != ".hpcflow.lock" and not n.startswith(".")}


def _earlier_run(job, out) -> dict:
    done = _hpcflow("run", job, "--out", out)
    assert done.returncode == 0, done.stderr
    return _files(out)


def _wait_for(predicate, proc, what):
    deadline = time.monotonic() + 120
    while not predicate():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} in 120 s"
        time.sleep(0.02)


def _force_run_past_its_first_checkpoint(job, out) -> subprocess.Popen:
    """A --force run of `job` into `out`, once it has set the earlier run's checkpoint aside and written its own."""
    run = subprocess.Popen([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--force"],
                           env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def moved_and_written():  # the earlier checkpoint set aside, the killed run's own written
        left = replaced.leftovers(out)
        return left and (out / left[0] / "checkpoint.h5").exists() and (out / "checkpoint.h5").exists()

    try:
        _wait_for(moved_and_written, run, "checkpoint.h5 of the --force run")
    except BaseException:
        run.kill()
        run.wait(timeout=60)
        raise
    return run


def test_a_force_run_killed_before_its_first_file_is_undone_by_the_next_run(tmp_path, jobs):
    """A process holding DIR's lock as a --force run does, killed (SIGKILL) right after it set the earlier run's
    files aside: the next plain run puts them back, byte for byte, saying so in one line, then refuses DIR as it
    refuses any finished run's (exit 2)."""
    short, _ = jobs
    out = tmp_path / "D"
    earlier = _earlier_run(short, out)
    script = textwrap.dedent(f"""
        import os, signal
        from hpcflow.jobs import outlock, replaced
        outlock.acquire({str(out)!r}, command="hpcflow run")
        replaced.set_aside({str(out)!r})
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    killed = subprocess.run([sys.executable, "-c", script], env=ENV, timeout=120)
    assert killed.returncode == -signal.SIGKILL
    assert _files(out) == {} and len(replaced.leftovers(out)) == 1
    again = _hpcflow("run", short, "--out", out)
    assert again.returncode == 2
    assert "put the earlier run's files back" in again.stderr and "already holds results" in again.stderr
    assert replaced.leftovers(out) == [] and _files(out) == earlier


def test_a_force_run_killed_mid_run_is_named_then_its_completed_resume_removes_the_earlier_run(tmp_path, jobs):
    """A real --force run killed (SIGKILL) after its first checkpoint: while it ran, another run was refused and the
    set-aside files stayed; after the kill, a plain run is refused naming the folder, which stays whole; the report
    and an analysis script name it beside the killed run's data; a --resume completes the killed run and then
    removes the folder."""
    short, long = jobs
    out = tmp_path / "D"
    earlier = _earlier_run(short, out)
    run = _force_run_past_its_first_checkpoint(long, out)
    try:
        aside = out / replaced.leftovers(out)[0]
        busy = _hpcflow("run", short, "--out", out)  # a live run's folder: not touched
        assert busy.returncode == 2 and "is in use by" in busy.stderr
        assert _files(aside) == earlier
        assert "replaced" not in detect(str(out)).unreported  # a live run's folder is no killed run's
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert (out / "checkpoint.h5").exists() and not (out / "summary.json").exists()
    plain = _hpcflow("run", short, "--out", out)
    assert plain.returncode == 2 and str(aside) in plain.stderr and "removes that folder" in plain.stderr
    assert _files(aside) == earlier
    assert str(aside) in detect(str(out)).unreported
    history = subprocess.run([sys.executable, os.path.join(ROOT, "analysis", "sigma_history.py"), str(out), "--out",
                              str(tmp_path / "figs")], env=ENV, capture_output=True, text=True, timeout=300)
    assert history.returncode == 0, history.stderr
    assert f"sigma_history: warning: {aside} holds an earlier run's files" in history.stderr, history.stderr
    resumed = _hpcflow("run", long, "--out", out, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"removed {aside}" in resumed.stderr
    assert replaced.leftovers(out) == [] and (out / "summary.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["steps_taken"], summary["resumed"]) == ("finished", 1500, True)
    assert "replaced" not in _hpcflow("run", short, "--out", out).stderr


def test_a_preempted_resume_of_a_killed_force_run_keeps_the_earlier_run_until_one_finishes_it(tmp_path, jobs):
    """A --force run killed (SIGKILL) after its first checkpoint, then a --resume of it preempted (SIGUSR1, exit 4):
    its summary.json (status "preempted") is newer than the set-aside folder, but the run has not finished, so the
    next plain run, which is refused, leaves the earlier run's files where they are, byte for byte, and names them
    with the --resume that continues the killed run; the report names them too. The --resume that finishes the run
    removes them."""
    short, long = jobs
    out = tmp_path / "D"
    earlier = _earlier_run(short, out)
    run = _force_run_past_its_first_checkpoint(long, out)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=60)
    aside = out / replaced.leftovers(out)[0]
    assert _files(aside) == earlier and not (out / "summary.json").exists()
    killed_at = os.stat(out / "checkpoint.h5").st_mtime_ns
    resume = subprocess.Popen([sys.executable, "-m", "hpcflow", "run", str(long), "--out", str(out), "--resume"],
                              env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # preempted once it has written a checkpoint of its own
        _wait_for(lambda: os.stat(out / "checkpoint.h5").st_mtime_ns != killed_at, resume, "a checkpoint of the resume")
        resume.send_signal(signal.SIGUSR1)
        _, err = resume.communicate(timeout=120)
    finally:
        if resume.poll() is None:
            resume.kill()
            resume.wait(timeout=60)
    assert resume.returncode == 4, err
    assert f"{aside} holds an earlier run's files" in err and "hpcflow: removed" not in err, err
    assert json.loads((out / "summary.json").read_text())["status"] == "preempted"
    assert os.stat(out / "summary.json").st_mtime_ns >= os.stat(aside).st_mtime_ns
    assert _files(aside) == earlier
    plain = _hpcflow("run", short, "--out", out)
    assert plain.returncode == 2, plain.stderr
    said = plain.stderr
    assert "hpcflow: removed" not in said and str(aside) in said and "--resume" in said, said
    assert replaced.leftovers(out) == [aside.name] and _files(aside) == earlier
    check = _hpcflow("run", short, "--out", out, "--check")
    assert check.returncode == 2 and "removes it" not in check.stderr and "completed" not in check.stderr, check.stderr
    note = detect(str(out)).unreported
    assert str(aside) in note and "removes it" not in note and "completed" not in note, note
    assert _files(aside) == earlier
    finished = _hpcflow("run", long, "--out", out, "--resume")
    assert finished.returncode == 0, finished.stderr
    assert f"removed {aside}" in finished.stderr and replaced.leftovers(out) == []
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
