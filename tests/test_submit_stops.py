"""`hpcflow submit` stopped by Ctrl-C (SIGINT to its process group, as a terminal sends it), SIGTERM or SIGUSR1, while
it validates or waits: one line and 130 / 128 + the signal, as the other commands; a local job it waits for is stopped
with its checkpoint, and the line that continues it is said; a local job whose process a signal killed is said so."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from test_checkpoint import RESUME_JOB
from test_submit import ROOT, _script

LONG = ["--set", "flow.steps=1000000"]


@pytest.fixture(autouse=True)
def _no_job_left(tmp_path):
    """After the test, a local job of its own still running (the test failed) is stopped (its controller, whose pid
    is the job id, named with the test's folder on its command line)."""
    yield
    for log in (tmp_path / "out_logs").glob("*_0_log.out"):
        job = log.name.split("_")[0]
        try:
            with open(f"/proc/{job}/cmdline", "rb") as f:
                ours = str(tmp_path).encode() in f.read()
        except OSError:
            continue
        if ours:
            os.kill(int(job), signal.SIGTERM)


def _start(tmp_path, *args, env=None) -> subprocess.Popen:
    """`hpcflow submit job.toml --out out ARGS` in tmp_path, in its own process group (its process group is a
    terminal's foreground job's)."""
    (tmp_path / "job.toml").write_text(RESUME_JOB)
    return subprocess.Popen([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "out", *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))


def _until(path, proc) -> None:
    """Until `path` exists (the run's first checkpoint, a stand-in's mark), `proc` still running."""
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)


def _continue_line(out: str) -> str:
    line = next((x for x in out.splitlines() if "continue it with: hpcflow submit " in x), None)
    assert line is not None and "ended with exit status 4" in line and line.endswith(" --resume"), out
    return line


def test_ctrl_c_on_submit_wait_stops_the_local_job_with_its_checkpoint_in_lines_not_a_traceback(tmp_path):
    """The job's controller got the terminal's SIGINT too, and printed a KeyboardInterrupt traceback on submit's
    stderr; submit said `interrupted` only. The job is stopped by submit (its run writes its checkpoint, status 4) and
    the line that continues it is said, with no traceback."""
    proc = _start(tmp_path, "--executor", "local", "--wait", "--quiet", *LONG)
    _until(tmp_path / "out" / "checkpoint.h5", proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert err.splitlines()[-1] == "hpcflow submit: interrupted", err
    _continue_line(out)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["status"] == "preempted", summary


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1], ids=lambda s: s.name)
def test_a_stop_signal_on_submit_wait_ends_it_in_its_lines_and_stops_the_local_job(tmp_path, sig):
    """SIGTERM or SIGUSR1 to submit alone ended it silently by the signal's default action, the job left running.
    Now: the job stopped with its checkpoint, the line that continues it, `stopped by SIG...`, 128 + the signal."""
    proc = _start(tmp_path, "--executor", "local", "--wait", "--quiet", *LONG)
    _until(tmp_path / "out" / "checkpoint.h5", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + sig, (out, err)
    assert err.splitlines()[-1] == f"hpcflow submit: stopped by {sig.name}", err
    assert "Traceback" not in err, err
    _continue_line(out)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1], ids=lambda s: s.name)
def test_a_stop_signal_while_submit_validates_ends_it_in_one_line(tmp_path, sig):
    """While submit asks Slurm (a stand-in sinfo that does not answer yet): one line, 128 + the signal."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "sinfo", f"touch {bin_dir}/asked; sleep 60")
    for name in ("sbatch", "srun", "squeue"):
        _script(bin_dir / name, "exit 0")
    proc = _start(tmp_path, "--executor", "slurm", "--check", env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    _until(bin_dir / "asked", proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, (out, err)
    assert err.splitlines() == [f"hpcflow submit: stopped by {sig.name}"], err


def _task_of(controller: int) -> int:
    """The job's task: the controller's child process (Linux /proc)."""
    while True:
        children = open(f"/proc/{controller}/task/{controller}/children").read().split()
        if children:
            return int(children[0])
        time.sleep(0.1)


def test_a_local_job_whose_process_is_killed_is_said_killed_by_that_signal(tmp_path):
    """The task of a local job killed by SIGKILL (the out-of-memory killer, kill -9): `--wait` said "ended without a
    result (state FINISHED); see LOG" (an empty log), after submitit's 15 s wait for a result file. Now it names the
    signal, with the status a shell gives (128 + 9)."""
    proc = _start(tmp_path, "--executor", "local", "--wait", "--quiet", *LONG)
    _until(tmp_path / "out" / "checkpoint.h5", proc)
    first = (tmp_path / "out_logs").glob("*_0_log.out")
    job = int(next(first).name.split("_")[0])
    os.kill(_task_of(job), signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGKILL, (out, err)
    line = next(x for x in out.splitlines() if "without a result" in x)
    assert re.search(rf"local job {job} ended without a result: its process was killed by signal 9 \(SIGKILL\)",
                     line), line


@pytest.mark.parametrize("sig, line", [(signal.SIGTERM, "stopped by SIGTERM"), (signal.SIGINT, "interrupted")])
def test_a_stop_while_waiting_for_a_slurm_job_is_said_in_one_line(tmp_path, sig, line):
    """SIGTERM (or Ctrl-C) to `submit --executor slurm --wait` (stand-ins of Slurm here): it said that the job goes on
    and how to stop it, then the CLI's `hpcflow submit: stopped by SIGTERM` again, two lines for one stop. One line,
    the one that names the job and its scancel, and 128 + the signal."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir / "sinfo", "echo 'debug*|2|1|(null)|infinite|1-infinite|UNLIMITED|4000'")
    _script(bin_dir / "sbatch", "echo 'Submitted batch job 1789'")
    _script(bin_dir / "srun", "exit 0")
    _script(bin_dir / "sacct", "echo 'Slurm accounting storage is disabled' >&2; exit 1")
    # (asked for the user's jobs into the same --out: none; asked for the job's state: running, said in bin/asked)
    _script(bin_dir / "squeue", f'if [[ "$*" == *"-t all"* ]]; then touch {bin_dir}/asked; '
                                'echo "1789|RUNNING|vm|None"; fi')
    proc = _start(tmp_path, "--executor", "slurm", "--wait", "--quiet",
                  env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    _until(bin_dir / "asked", proc)
    (os.killpg if sig == signal.SIGINT else os.kill)(proc.pid, sig)  # (Ctrl-C: the terminal's process group)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, (out, err)
    assert err.splitlines() == [f"hpcflow submit: {line}: the wait ends; slurm job 1789 goes on (scancel 1789 stops "
                                "it)"], err
