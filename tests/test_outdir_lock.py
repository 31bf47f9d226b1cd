"""One run writes into an --out at a time: a second `hpcflow run` or `hpcflow nn` into a directory a live run holds
(DIR/.hpcflow.lock, flock) is refused in one line naming the holder's pid, exit 2, with --force too, and changes
nothing there; the holder finishes as if alone. A finished or SIGKILLed holder leaves no lock (the kernel drops it):
the next run proceeds. The holder is frozen with SIGSTOP once it has written its first checkpoint, so the second
command meets it mid-run whatever the machine's speed."""

import errno
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
import tomllib

import pytest

from hpcflow.jobs import outlock
from hpcflow.jobs.output import check_outdir
from jobtexts import GAUSSIAN_KERNEL, NN_POINTS, SMALL_NET, TINY_TRAINING

FLOW = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 300
n_test = 100
seed = 2
""" + GAUSSIAN_KERNEL + """[flow]
dt = 6.5
steps = 20
loss = "ultralocal"
[checkpoint]
every = 1
"""
NN = NN_POINTS + SMALL_NET + TINY_TRAINING + """[checkpoint]
every = 1
"""
ENV = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")
MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
TIMEOUT = 300


def _hpcflow(*args) -> list:
    return [sys.executable, "-m", "hpcflow", *map(str, args)]


def _files(out) -> dict:
    """Every entry of `out` (hidden ones too) with its bytes: what a refused run must leave as it was."""
    return {name: (out / name).read_bytes() for name in sorted(os.listdir(out))}


def _start(cmd, log, ready):
    """Start `cmd` (output to `log`); return it once `ready()` (e.g. its first checkpoint exists)."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, env=ENV, stdout=fh, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        assert proc.poll() is None, open(log).read()
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.005)
    return proc


def _job_seed(out) -> int | None:
    """[geometry].seed of DIR/job.toml, None while there is none."""
    try:
        return tomllib.loads((out / "job.toml").read_text())["geometry"]["seed"]
    except (OSError, ValueError, KeyError):
        return None


def _refused(cmds, out) -> list:
    """Run `cmds` together: each exits 2 with one line naming --out, a holder's pid and the fix; the pids named."""
    procs = [subprocess.Popen(c, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in cmds]
    pids = []
    for cmd, p in zip(cmds, procs):
        stdout, stderr = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 2, (cmd, stdout, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and f"--out {out} is in use by hpcflow " in lines[0], stderr
        pids.append(int(re.search(r"\(pid (\d+) on ", lines[0]).group(1)))
        assert f"wait for it, stop it (kill -TERM {pids[-1]}), or choose another --out" in lines[0], stderr
    return pids


def _finish(proc, log) -> None:
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(timeout=TIMEOUT) == 0, open(log).read()


def _seed(out) -> int:
    summary = json.loads((out / "summary.json").read_text())
    assert tomllib.loads((out / "job.toml").read_text())["geometry"]["seed"] == summary["config"]["geometry"]["seed"]
    return summary["config"]["geometry"]["seed"]


def test_a_run_into_a_busy_out_is_refused_and_the_holder_finishes(tmp_path, monkeypatch):
    job, out = tmp_path / "flow.toml", tmp_path / "out"
    job.write_text(FLOW)
    holder = _start(_hpcflow("run", job, "--out", out, "--set", "geometry.seed=1"), tmp_path / "a.log",
                    (out / "checkpoint.h5").exists)
    holder.send_signal(signal.SIGSTOP)
    try:
        before = _files(out)
        other = ("--set", "geometry.seed=7", "--set", "flow.steps=3")
        assert _refused([_hpcflow("run", job, "--out", out, *other),
                         _hpcflow("run", job, "--out", out, "--force", *other),
                         _hpcflow("run", job, "--out", out, "--resume", "--set", "geometry.seed=1"),
                         _hpcflow("run", job, "--out", out, "--force", "--check", *other)], out) == [holder.pid] * 4
        assert _files(out) == before  # bytes and names: the holder's checkpoint, job.toml and lock as they were
    finally:
        _finish(holder, tmp_path / "a.log")
    summary = json.loads((out / "summary.json").read_text())
    assert _seed(out) == 1 and summary["status"] == "finished" and summary["checkpoint_step"] == 20
    assert not (out / outlock.LOCK_NAME).exists()

    # the holder gone, the next run proceeds; killed (SIGKILL: no handler runs) it leaves the file, not the lock
    second = _start(_hpcflow("run", job, "--out", out, "--force", "--set", "geometry.seed=7"), tmp_path / "b.log",
                    lambda: _job_seed(out) == 7)  # its own, written beside its first checkpoint
    second.kill()
    second.wait(timeout=TIMEOUT)
    assert (out / outlock.LOCK_NAME).exists() and not (out / "summary.json").exists()
    from hpcflow.cli import main  # the resume in this process (the environment of the subprocesses)

    for name in ("HPCFLOW_THREADS", "HPCFLOW_QUIET"):
        monkeypatch.setenv(name, ENV[name])
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "geometry.seed=7"]) == 0
    assert _seed(out) == 7 and json.loads((out / "summary.json").read_text())["checkpoint_step"] == 20
    assert not (out / outlock.LOCK_NAME).exists()


def test_a_network_run_into_a_busy_out_is_refused(tmp_path):
    job, out = tmp_path / "nn.toml", tmp_path / "nn"
    job.write_text(NN)
    holder = _start(_hpcflow("nn", job, "--out", out), tmp_path / "a.log", (out / "checkpoint.pt").exists)
    holder.send_signal(signal.SIGSTOP)
    try:
        before = _files(out)
        assert _refused([_hpcflow("nn", job, "--out", out, "--force", "--set", "geometry.seed=8")], out) == [holder.pid]
        assert _files(out) == before
    finally:
        _finish(holder, tmp_path / "a.log")
    summary = json.loads((out / "summary.json").read_text())
    assert _seed(out) == 3 and summary["status"] == "finished" and summary["checkpoint_step"] == 4
    assert not (out / outlock.LOCK_NAME).exists()


def _descendants(pid: int) -> list:
    """The processes below `pid` (mpiexec's proxies and ranks), from /proc."""
    parent = {}
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as fh:
                parent[int(name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [pid]
    while todo:
        above = todo.pop()
        kids = [p for p, pp in parent.items() if pp == above]
        found += kids
        todo += kids
    return found


def _rank_of(pid: int) -> str | None:
    """The MPI rank the launcher gave process `pid` (PMI_RANK in its environment)."""
    with open(f"/proc/{pid}/environ", "rb") as fh:
        env = dict(v.split(b"=", 1) for v in fh.read().split(b"\0") if b"=" in v)
    return env.get(b"PMI_RANK", b"").decode() or None


def test_two_ranks_rank_0_holds_the_lock_and_every_rank_refuses_together(tmp_path):
    job, out = tmp_path / "flow.toml", tmp_path / "out"
    job.write_text(FLOW)
    holder = _start([MPIEXEC, "-n", "2", *_hpcflow("run", job, "--out", out, "--set", "geometry.seed=1")],
                    tmp_path / "a.log", (out / "checkpoint.h5").exists)
    ranks = []
    try:
        ranks = _descendants(holder.pid)
        for p in ranks:
            os.kill(p, signal.SIGSTOP)
        before = _files(out)
        second = [MPIEXEC, "-n", "2", *_hpcflow("run", job, "--out", out, "--force", "--set", "geometry.seed=7")]
        pid, = _refused([second], out)  # one line for the world
        assert pid in ranks and _rank_of(pid) == "0"  # rank 0, not the launcher nor rank 1
        assert _files(out) == before
    finally:
        for p in ranks:
            os.kill(p, signal.SIGCONT)
        assert holder.wait(timeout=TIMEOUT) == 0, open(tmp_path / "a.log").read()
    summary = json.loads((out / "summary.json").read_text())
    assert _seed(out) == 1 and summary["ranks"] == 2 and summary["checkpoint_step"] == 20
    assert not (out / outlock.LOCK_NAME).exists()


def test_a_lock_is_exclusive_until_released_and_its_file_goes_with_it(tmp_path):
    """flock locks belong to an open file: a second acquire in this process conflicts as another process would."""
    out = tmp_path / "out"
    first = outlock.acquire(out, command="hpcflow run")
    assert first.created and (out / outlock.LOCK_NAME).is_file()
    with pytest.raises(outlock.OutdirBusy, match=rf"in use by hpcflow run \(pid {os.getpid()} on "):
        outlock.acquire(out, command="hpcflow nn")
    with pytest.raises(outlock.OutdirBusy, match=rf"pid {os.getpid()} "):
        outlock.refuse_held(out)
    check_outdir(out)  # the lock file is not a result
    first.release()
    assert os.listdir(out) == []
    outlock.refuse_held(out)
    second = outlock.acquire(out, command="hpcflow nn")
    assert not second.created
    second.release(remove_dir=True)  # a directory it did not create stays
    assert out.is_dir()


def test_a_holder_that_has_not_yet_written_its_record_is_named_once_it_has(tmp_path, monkeypatch):
    """Two calls started together: the second met the first's lock before the first had written its pid into the
    file, and named only "another process"; it reads the file again for a moment, and names the holder."""
    import types

    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / outlock.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # locked, its record not yet written
    record = json.dumps({"command": "table1.py", "pid": 4242, "host": "elsewhere", "since": "T"}).encode()

    def meanwhile(seconds):  # the holder writes its record while the refused call waits
        os.pwrite(fd, record, 0)

    monkeypatch.setattr(outlock, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=meanwhile))
    try:
        with pytest.raises(outlock.OutdirBusy, match=r"in use by table1\.py \(pid 4242 on elsewhere, since T\); "):
            outlock.acquire(out, command="hpcflow run")
    finally:
        os.close(fd)


def test_a_stale_lock_file_is_no_result_and_no_lock(tmp_path):
    """A SIGKILLed run before its first checkpoint leaves DIR/.hpcflow.lock alone: the directory counts as empty."""
    out = tmp_path / "out"
    out.mkdir()
    (out / outlock.LOCK_NAME).write_text(json.dumps({"command": "hpcflow run", "pid": 1, "host": "gone",
                                                     "since": "then"}))
    check_outdir(out)
    outlock.refuse_held(out)
    lock = outlock.acquire(out, command="hpcflow run")
    assert json.loads((out / outlock.LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert os.listdir(out) == []


def test_shared_holders_exclude_a_run_and_the_last_removes_the_file(tmp_path):
    out = tmp_path / "study"
    a = outlock.acquire(out, command="hpcflow tune", shared=True)
    b = outlock.acquire(out, command="hpcflow tune", shared=True)
    with pytest.raises(outlock.OutdirBusy, match="in use by hpcflow tune"):
        outlock.acquire(out, command="hpcflow run")
    a.release()
    assert (out / outlock.LOCK_NAME).exists()  # b holds it still
    with pytest.raises(outlock.OutdirBusy):
        outlock.acquire(out, command="hpcflow run")
    b.release()
    assert os.listdir(out) == []
    outlock.acquire(out, command="hpcflow run").release()


def test_a_file_system_without_flock_runs_unlocked_with_a_warning(tmp_path, monkeypatch, capsys):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    out = tmp_path / "out"
    lock = outlock.acquire(out, command="hpcflow run")
    assert lock.fd is None and os.listdir(out) == []
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"cannot lock --out {out}" in err
    lock.release(remove_dir=True)
    assert not out.exists()


def test_a_refused_run_leaves_no_directory_its_lock_created(tmp_path):
    """Refused after taking the lock (here: --resume without a checkpoint), the run removes the directories the lock
    created: nothing on disk changed."""
    job, out = tmp_path / "flow.toml", tmp_path / "new" / "out"
    job.write_text(FLOW)
    from hpcflow.cli import main

    assert main(["run", str(job), "--out", str(out), "--resume"]) == 2
    assert not (tmp_path / "new").exists()  # nor the missing parent it created


def test_a_run_does_not_write_into_a_study_directory(tmp_path):
    """A study directory (study.json) is refused to a run with --force too: --force would not remove the study, so
    the run's summary.json would sit among its trials and end `hpcflow tune` on it."""
    from hpcflow.errors import OutputPathError

    (tmp_path / "study.json").write_text('{"study": "s"}')
    with pytest.raises(OutputPathError, match="study directory of 'hpcflow tune'"):
        check_outdir(tmp_path, force=True)


def test_a_study_is_not_started_in_a_directory_a_run_holds(tmp_path):
    from hpcflow.tune.study import optimize

    out = tmp_path / "study"
    lock = outlock.acquire(out, command="hpcflow run")
    try:
        job = os.path.join(os.path.dirname(__file__), "..", "jobs", "tune_gaussian.toml")
        with pytest.raises(outlock.OutdirBusy, match=rf"in use by hpcflow run \(pid {os.getpid()} "):
            optimize(job, trials=1, out=str(out))
        assert os.listdir(out) == [outlock.LOCK_NAME]  # no study.json, journal or trial written
    finally:
        lock.release()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_request_while_the_lock_is_taken_leaves_no_lock_nor_the_directory_it_created(tmp_path, monkeypatch,
                                                                                           sig):
    """A stop request that arrives while `holding` takes the lock (here: just after the lock file is made, before
    the block) is honoured once the block runs, where its end releases the lock: the lock file and the directory
    the lock created are gone, as for a request inside the block."""
    from hpcflow.stop_signals import Stopped, interrupts_end_the_job

    take = outlock.acquire

    def acquire_then_signalled(*args, **kwargs):
        lock = take(*args, **kwargs)
        signal.raise_signal(sig)
        return lock

    monkeypatch.setattr(outlock, "acquire", acquire_then_signalled)
    out = tmp_path / "new" / "out"
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    entered = []
    with pytest.raises(KeyboardInterrupt) as stop, interrupts_end_the_job("hpcflow run"):
        with outlock.holding(str(out), command="hpcflow run"):
            entered.append(True)
            time.sleep(5)  # not reached: the request held back is taken when the block begins
    assert isinstance(stop.value, Stopped) == (sig == signal.SIGTERM) and not entered
    assert not (tmp_path / "new").exists()
    assert {s: signal.getsignal(s) for s in before} == before  # the command's handlers go with it
