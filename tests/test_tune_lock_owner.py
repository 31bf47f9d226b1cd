"""The journal's lock records its holder (host, boot and PID namespace, pid, process start): a waiter of the same
host never takes over a live holder's lock, a stopped one's included, and takes a gone one's at once; a holder of
another host is taken over after the grace period, said honestly; a holder whose lock was taken over leaves the new
holder's lock in place, says so in one line and goes on, unless its journal is damaged (LockLost)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hpcflow.tune import storage
from hpcflow.tune.storage import file_lock

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import os, signal, sys\nfrom hpcflow.tune.storage import file_lock\n"
        "lock = file_lock(sys.argv[1])\nlock.acquire()\nos.kill(os.getpid(), getattr(signal, sys.argv[2]))\n"
        "lock.release()\nprint('released')\n")


def _holder(journal: Path, sig: str) -> subprocess.Popen:
    """A process that takes `journal`'s lock and sends itself `sig` while holding it (SIGSTOP: it releases the lock
    once continued)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(journal), sig], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    if sig == "SIGSTOP":
        _, status = os.waitpid(p.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
    else:
        p.wait(timeout=60)
    assert os.path.islink(str(journal) + ".lock")
    return p


def _waiter(lock):
    done = threading.Event()
    t = threading.Thread(target=lambda: lock.acquire() and done.set(), daemon=True)
    t.start()
    return t, done


def _takes_over_gone(journal: Path, pid: int, grace: float) -> None:
    """A waiter for `journal`'s lock, held by gone process `pid` of this host, takes it over at once (says so in one
    line) and releases it: nothing is left beside the journal (the gone holder's owner file removed too)."""
    said: list[str] = []
    lock = file_lock(str(journal), grace=grace, log=said.append)
    t, done = _waiter(lock)
    t.join(timeout=20)
    assert done.is_set(), said
    assert said == [f"hpcflow: lock {journal}.lock was held by pid {pid} of this host, which is gone (its "
                    "process ended: killed while holding it); taking it over"], said
    lock.release()
    assert sorted(os.listdir(journal.parent)) == ["study.journal"]


def test_a_stopped_holder_of_this_host_keeps_its_lock_and_releases_it_when_continued(tmp_path):
    """A holder paused (SIGSTOP, a suspended job) past the grace period is alive: the waiter waits, says once on
    which pid, and gets the lock when the holder, continued, releases it without an error."""
    journal = tmp_path / "study.journal"
    journal.write_text("")
    holder = _holder(journal, "SIGSTOP")
    try:
        said: list[str] = []
        lock = file_lock(str(journal), grace=0.3, log=said.append)
        t, done = _waiter(lock)
        time.sleep(2.5)  # eight grace periods
        assert not done.is_set(), said
        assert said == [f"hpcflow: waiting for lock {journal}.lock: held by pid {holder.pid} of this host, which is "
                        "alive (stopped: SIGSTOP, Ctrl-Z or a suspended job); a live holder's lock is never taken "
                        "over"], said
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    out, err = holder.communicate(timeout=60)
    assert holder.returncode == 0 and out == "released\n" and err == "", err
    t.join(timeout=30)
    assert done.is_set() and len(said) == 1, said
    lock.release()
    assert sorted(os.listdir(tmp_path)) == ["study.journal"]  # no link, no owner file left


def test_a_lock_whose_holder_of_this_host_is_gone_is_taken_over_without_the_grace_period(tmp_path):
    journal = tmp_path / "study.journal"
    journal.write_text("")
    holder = _holder(journal, "SIGKILL")
    assert holder.returncode == -signal.SIGKILL
    _takes_over_gone(journal, holder.pid, 600)


def _hold_as(monkeypatch, lock, host: str) -> None:
    """`lock` acquired as a process of host `host` would record it."""
    real = socket.gethostname
    monkeypatch.setattr(storage, "_ME", [], raising=False)
    monkeypatch.setattr(socket, "gethostname", lambda: host)
    try:
        assert lock.acquire()
    finally:
        monkeypatch.setattr(socket, "gethostname", real)
        monkeypatch.setattr(storage, "_ME", [], raising=False)


@pytest.mark.parametrize("damaged", [False, True])
def test_a_holder_of_another_host_loses_its_lock_after_the_grace_period_and_keeps_the_new_holders(
        tmp_path, monkeypatch, damaged):
    """Another host's holder cannot be looked at: taken over after the grace period, the line saying it may be alive
    but paused. That holder's release, once it resumes, leaves the new holder's lock in place, says so in one line and
    goes on; where the journal is damaged meanwhile (appends from two hosts to an NFS file), LockLost names it."""
    from hpcflow.tune.storage import LockLost, journal_problem

    journal = tmp_path / "study.journal"
    journal.write_text('{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}\n')
    lost: list[str] = []

    def lost_said(line: str) -> None:
        lost.append(line)
        if "was taken over" in line:
            second.release()  # the new holder ends its hold once the first has found it: the check then runs

    first = file_lock(str(journal), log=lost_said, check=journal_problem)
    _hold_as(monkeypatch, first, "node-b")
    said: list[str] = []
    second = file_lock(str(journal), grace=0.5, log=said.append)
    t, done = _waiter(second)
    t.join(timeout=30)
    assert done.is_set(), said
    assert len(said) == 1 and said[0] == (
        f"hpcflow: lock {journal}.lock unchanged for 0.5 s, held by pid {os.getpid()} of host node-b, which cannot be "
        "looked at from here: killed while holding it, or alive but paused that long (SIGSTOP, a suspended job, a "
        "stalled file system); taking it over"), said
    taken = os.readlink(str(journal) + ".lock")
    assert "~node-b~" not in taken and (tmp_path / taken).is_file()
    if damaged:
        with open(journal, "ab") as fh:
            fh.write(b'{"op_code": 0, "wor')  # another host's append cut into
    if damaged:
        with pytest.raises(LockLost) as caught:
            first.release()
        assert "\n" not in str(caught.value) and "line 2 is incomplete" in str(caught.value)
    else:
        first.release()  # checks the journal under the lock, once the new holder has released it
    assert len(lost) == 1 and lost[0].startswith(f"hpcflow: lock {journal}.lock was taken over by pid {os.getpid()} "
                                                 "of this host while this process held it"), lost
    assert "its new holder's lock is left in place" in lost[0]
    assert sorted(os.listdir(tmp_path)) == ["study.journal"]


@pytest.mark.parametrize("name", [None, "ci-runner-7f9c8d6b5-x2kqz"])
def test_a_release_after_a_takeover_does_not_remove_the_new_holders_lock(tmp_path, monkeypatch, name):
    """Without a check (best.toml's lock): the holder's release leaves the new holder's link as it is, at once, and
    names the new holder, a process of this host whatever its host name's length (a Kubernetes pod's: 25
    characters)."""
    if name is not None:
        monkeypatch.setattr(socket, "gethostname", lambda: name)
        monkeypatch.setattr(storage, "_ME", [], raising=False)
    target = tmp_path / "best.toml"
    target.write_text("")
    lost: list[str] = []
    first = file_lock(str(target), log=lost.append)
    _hold_as(monkeypatch, first, "node-b")
    second = file_lock(str(target), grace=0.3, log=lambda line: None)
    t, done = _waiter(second)
    t.join(timeout=30)
    assert done.is_set()
    taken = os.readlink(str(target) + ".lock")
    first.release()
    assert os.readlink(str(target) + ".lock") == taken and len(lost) == 1
    assert lost[0].startswith(f"hpcflow: lock {target}.lock was taken over by pid {os.getpid()} of this host while "
                              "this process held it"), lost
    second.release()
    assert sorted(os.listdir(tmp_path)) == ["best.toml"]


def test_a_killed_holder_not_yet_reaped_by_its_parent_is_gone(tmp_path):
    """A holder SIGKILLed whose parent has not waited for it yet (a zombie: a launcher waiting on its workers in
    turn) holds nothing: its lock is taken over at once, not waited for."""
    journal = tmp_path / "study.journal"
    journal.write_text("")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(journal), "SIGKILL"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while storage._proc_fields(holder.pid)[0] != b"Z":  # killed, not reaped: no wait() until the end
            assert time.monotonic() < deadline
            time.sleep(0.01)
        _takes_over_gone(journal, holder.pid, 600)
    finally:
        holder.wait(timeout=60)


WAIT = ("import sys\nfrom hpcflow.tune.storage import file_lock\n"
        "file_lock(sys.argv[1], grace=600, log=lambda line: print(line, flush=True)).acquire()\n")


def test_a_waiter_killed_while_it_waits_leaves_no_owner_file_and_a_new_study_takes_the_directory(tmp_path):
    """A worker SIGKILLed while waiting for the lock leaves nothing beside the journal; a lock's owner file (one
    left by an older hpcflow's killed waiter) is not a foreign file that makes a new study refuse its directory."""
    from hpcflow.tune.study import refuse_foreign_files

    journal = tmp_path / "study.journal"
    journal.write_text("")
    lock = file_lock(str(journal), log=lambda line: None)
    assert lock.acquire()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    waiter = subprocess.Popen([sys.executable, "-c", WAIT, str(journal)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert waiter.stdout.readline().startswith("hpcflow: waiting for lock")  # after a second of waiting
    finally:
        waiter.kill()
        waiter.wait(timeout=60)
    lock.release()
    assert sorted(os.listdir(tmp_path)) == ["study.journal"]
    journal.unlink()
    (tmp_path / f"{storage.OWNER_PREFIX}host~1a~2b~3c~0").write_text("")
    (tmp_path / "study.journal.lock.takeover").write_text("")  # left by a worker killed while taking a lock over
    refuse_foreign_files(str(tmp_path), None)  # no OutputPathError


@pytest.mark.parametrize("unseen", ["no /proc", "hidepid"])
def test_a_holder_of_this_host_name_that_cannot_be_looked_at_is_taken_over_after_the_grace_period(
        tmp_path, monkeypatch, unseen):
    """Without /proc every machine's pid space is "-": a holder recorded so may be another machine's of the same
    host name, and /proc mounted hidepid hides another user's process (its start cannot be read): neither is waited
    for forever, but taken over after the grace period, as a holder of another host is."""
    journal = tmp_path / "study.journal"
    journal.write_text("")
    if unseen == "no /proc":
        monkeypatch.setattr(storage, "_pid_space", lambda: "-")
    first = file_lock(str(journal), log=lambda line: None)
    _hold_as(monkeypatch, first, socket.gethostname())  # alive: this very process
    if unseen == "hidepid":
        monkeypatch.setattr(storage, "_proc_fields", lambda pid: None)
    said: list[str] = []
    second = file_lock(str(journal), grace=1.5, log=said.append)
    t, done = _waiter(second)
    t.join(timeout=30)
    assert done.is_set(), said
    where = "this host" if unseen == "hidepid" else \
        "this host name (without /proc, which tells this machine from another of that name)"
    assert said[-1] == (
        f"hpcflow: lock {journal}.lock unchanged for 1.5 s, held by pid {os.getpid()} of {where}, which cannot be "
        "looked at from here: killed while holding it, or alive but paused that long (SIGSTOP, a suspended job, a "
        "stalled file system); taking it over"), said
    first.release()
    second.release()
    assert sorted(os.listdir(tmp_path)) == ["study.journal"]


def test_a_stale_takeover_does_not_remove_the_lock_of_a_holder_that_took_it_meanwhile(tmp_path, monkeypatch):
    """A waiter that saw a gone holder's link goes to take it over after the link was released and taken by a live
    worker, while a third worker takes the lock at the same moment: exactly one worker holds the lock afterwards,
    and it is the live holder's."""
    journal = tmp_path / "study.journal"
    journal.write_text("")
    holder, late, taker = (file_lock(str(journal), log=lambda line: None) for _ in range(3))
    assert holder.acquire()
    real_link, real_rename = os.link, os.rename
    lock_path = str(journal) + ".lock"

    def rename(src, dst, *args, **kwargs):
        real_rename(src, dst, *args, **kwargs)
        if src == lock_path and not getattr(late._held, "owner", None):
            late.acquire()  # lands while the link is moved away

    monkeypatch.setattr(os, "rename", rename)
    taker._take_over((1, 1), ".lock~gone~1a~2b~3c~0", "taking it over")
    monkeypatch.setattr(os, "rename", real_rename)
    assert os.link is real_link
    found = os.readlink(lock_path)
    holders = [lock for lock in (holder, late) if getattr(lock._held, "owner", None) == found]
    assert holders == [holder] and getattr(late._held, "owner", None) is None, (found, late._held.__dict__)
    holder.release()
    assert sorted(os.listdir(tmp_path)) == ["study.journal"]


def test_a_takeover_file_left_by_a_killed_taker_does_not_block_the_takeover_for_good(tmp_path):
    """A takeover is made under `<lock>.takeover`; one left by a taker killed while taking over (older than the
    grace period) is removed and the gone holder's lock is taken over; none is left after."""
    journal = tmp_path / "study.journal"
    journal.write_text("")
    holder = _holder(journal, "SIGKILL")
    guard = tmp_path / "study.journal.lock.takeover"
    guard.write_text("")
    os.utime(guard, (time.time() - 60, time.time() - 60))
    _takes_over_gone(journal, holder.pid, 5)


def test_a_lock_released_between_the_failed_link_and_the_look_at_it_is_taken(tmp_path, monkeypatch):
    """The holder releases the lock after this waiter's link was refused (EEXIST) and before it looked at the link
    (None, as on a first look): the waiter takes the lock on its next try, with nothing said (a race of two workers
    that stopped their trials with an error)."""
    journal = tmp_path / "study.journal"
    journal.touch()
    link = str(journal) + ".lock"
    os.symlink("held-by-another", link)
    looks = []
    seen = storage.FileLock._seen

    def released_first(self):
        if not looks and os.path.islink(link):
            os.unlink(link)  # the holder's release, just before this look
        looks.append(1)
        return seen(self)

    monkeypatch.setattr(storage.FileLock, "_seen", released_first)
    said: list[str] = []
    lock = file_lock(str(journal), grace=5.0, log=said.append)
    assert lock.acquire()
    assert os.path.islink(link) and said == []
    lock.release()
    assert not os.path.lexists(link)
