"""The lock of an output directory: one run (`hpcflow run`, `hpcflow nn`) writes into DIR at a time.

The run holds `flock(LOCK_EX | LOCK_NB)` on DIR/.hpcflow.lock from before its first look at DIR (so before --force
deletes anything) to its end, with its command, host, pid and start time written in the file for the refusal of
another run; `hpcflow tune` workers hold it shared (they write into one study directory together, and no run may).
The kernel drops a lock when its process ends, SIGKILL included: a killed run leaves the file, never a held lock,
and readers of DIR ignore the file. A holder removes the file while still holding the lock, and a new holder checks
that the file it locked is still the one named DIR/.hpcflow.lock, so two runs never hold two files.
On NFSv4, Linux maps flock to a POSIX lock held by the server (dropped when a dead client's lease expires, ~90 s);
a process loses its POSIX locks when it closes any descriptor of the file, so the holder never opens it again.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager

from hpcflow.errors import OutputPathError, RunStop

#: the lock file in an output directory (not a result: check_outdir and the readers of DIR ignore it)
LOCK_NAME = ".hpcflow.lock"
_OPEN = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
#: attempts at a lock file that another holder removes meanwhile (each a new file)
ATTEMPTS = 50


class OutdirBusy(OutputPathError):
    """Another live process holds --out's lock: nothing is done (exit 2); wait for it or choose another --out."""


class OutdirLock:
    """A held lock of directory `outdir` (fd None where the file system cannot lock); `release` ends it."""

    def __init__(self, outdir: str, fd: int | None, *, created: str | None, shared: bool, found: bytes = b""):
        self.outdir, self.fd, self.shared = outdir, fd, shared
        self.created = created  # the topmost directory `acquire` created for `outdir` (itself or a parent)
        self.path = os.path.join(outdir, LOCK_NAME)
        self.found = found  # a killed run's record that the lock file held when taken with `keep` (b"": none)

    def release(self, *, remove_dir: bool = False) -> None:
        """Remove the lock file (unless other shared holders remain) and unlock; with remove_dir, remove the directory
        and the parents this lock created for it, as far as they are empty (a run refused or failed before writing
        anything leaves nothing). A lock file that held a killed run's record when taken with `keep` (`found`) is
        left holding that record again, not removed."""
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                if not (self.found and _restored(fd, self.found)):
                    if self.shared:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the last shared holder removes the file
                    os.unlink(self.path)
            except OSError:
                pass
            finally:
                os.close(fd)
        self._remove_dirs(remove_dir)

    def _remove_dirs(self, remove_dir: bool) -> None:
        """With remove_dir, remove `outdir` and the parents this lock created for it, as far as they are empty."""
        path = os.path.abspath(self.outdir)
        while remove_dir and self.created is not None:
            try:
                os.rmdir(path)
            except OSError:
                return
            if path == self.created:
                return
            path = os.path.dirname(path)


#: the commands whose lock record tells a run's end where its process is gone (`acquire`'s keep)
RUN_COMMANDS = ("hpcflow run", "hpcflow nn", "hpcflow tune")


def _run_record(raw: bytes) -> bytes:
    """`raw`, a lock file's bytes, where they are a run's `record` (RUN_COMMANDS, a tune trial's too); b"" otherwise:
    none, or the record of a report or analysis script, which tells no run's end."""
    h = record(raw)
    if h is None or not any(h["command"] == c or h["command"].startswith(c + " ") for c in RUN_COMMANDS):
        return b""
    return raw


def _restored(fd: int, raw: bytes) -> bool:
    """Write `raw` back as the lock file's whole content (a killed run's record, as the holder found it); False where
    the file system refuses."""
    try:
        _overwrite(fd, raw)
    except OSError:
        return False
    return True


def _overwrite(fd: int, raw: bytes) -> None:
    """Make `raw` the file's whole content: written over the old bytes first, then cut to its length, so that a write
    the file system refuses (a full disk) leaves the old content (`_put_back`) rather than an emptied file."""
    if os.pwrite(fd, raw, 0) < len(raw):  # a short write: the disk filled up part way
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.ftruncate(fd, len(raw))
    os.fsync(fd)


def record(raw: bytes) -> dict | None:
    """The holder's command, pid (int), host, Slurm job (or None), start time and whether the run is the whole of its
    Slurm job (`own_job`; False where the record does not say) from its lock file's bytes `raw`;
    None while the holder has not yet written them (or they are not such a record)."""
    try:
        h = json.loads(raw.decode("utf-8"))
        return {"command": str(h["command"]), "pid": int(h["pid"]), "host": str(h["host"]),
                "slurm_job": h.get("slurm_job") or None, "since": str(h["since"]),
                "own_job": h.get("own_job") is True}
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


#: the holder of a lock file that names none yet
UNNAMED = f"another process (which has not yet written its pid into {LOCK_NAME})"


def describe(raw: bytes) -> str:
    """The holder as its lock file's bytes `raw` record it: "hpcflow run (pid P on HOST, Slurm job J, since T)"."""
    h = record(raw)
    if h is None:
        return UNNAMED
    return f"{h['command']} (pid {h['pid']} on {h['host']}{_job(h)}, since {h['since']})"


def _job(h: dict) -> str:
    """", Slurm job J" of a holder's `record`, "" outside Slurm."""
    return f", Slurm job {h['slurm_job']}" if h["slurm_job"] else ""


def holder_line(outdir: str, raw: bytes) -> str:
    """The refusal of --out `outdir`, naming the holder as its lock file `raw` describes it, and how to stop it:
    `scancel J` of its Slurm job, else `kill -TERM PID` (on its host, where that is another)."""
    h = record(raw)
    stop = "" if h is None else f", stop it ({stop_command(h)})"
    return f"--out {outdir} is in use by {describe(raw)}; wait for it{stop}, or choose another --out"


def stop_command(h: dict) -> str:
    """The command that stops the holder of a lock file's `record`: "scancel J" of its Slurm job where the run is the
    job's own (`own_job`: the job, not the run alone, whose step Slurm would otherwise go on with), else "kill -TERM
    PID", with " on HOST" where its host is not this one (a run in salloc or in a batch script of the user's own,
    whose SLURM_JOB_ID is the allocation that scancel would end whole, or a record that does not say)."""
    if h["slurm_job"] and h["own_job"]:
        return f"scancel {h['slurm_job']}"
    return f"kill -TERM {h['pid']}" + ("" if h["host"] == socket.gethostname() else f" on {h['host']}")


def _created_dir(outdir: str) -> str | None:
    """Create `outdir` and its missing parents; the topmost directory this call created (None: it existed)."""
    if os.path.isdir(outdir):
        return None
    top = os.path.abspath(outdir)
    while not os.path.lexists(os.path.dirname(top)):
        top = os.path.dirname(top)
    try:
        os.makedirs(outdir)
    except FileExistsError:
        return None
    except OSError as exc:
        _refused_write(exc, outdir, creating=True)
        raise OutputPathError(f"cannot create --out {outdir} ({exc.strerror}); choose a writable path") from None
    return top


#: errnos of creating --out or its lock file that end the command with status 5 (a full disk, quota, I/O error);
#: any other (a read-only file system, permissions) is a --out path to choose again: OutputPathError, status 2
_CREATE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


def _refused_write(exc: OSError, path: str, creating: bool = False) -> None:
    """WriteFailed (exit status 5: one line naming `path`, nothing done) where the file system refused the lock's
    write for a reason outside the program (`hpcflow.atomic.write_failure`: a full disk, quota, I/O error,
    read-only); any other error is left to the caller. `creating`: the error of creating --out or the lock file,
    where only _CREATE_FAILURES are; a read-only file system or permissions are left to the caller's exit 2."""
    from hpcflow.atomic import write_failure
    from hpcflow.errors import WriteFailed

    if write_failure(exc) is None or (creating and exc.errno not in _CREATE_FAILURES):
        return
    failed = WriteFailed(exc.errno, exc.strerror or os.strerror(exc.errno), path)
    failed.advice = f"nothing was done; {failed.fix}, then run the same command"
    raise failed from None


def _open(outdir: str, path: str) -> int | None:
    """A descriptor of the lock file, created if missing; None when DIR itself went away meanwhile."""
    try:
        return os.open(path, _OPEN, 0o644)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _refused_write(exc, path, creating=True)
        raise OutputPathError(f"--out {outdir}: cannot open its lock file {LOCK_NAME} ({exc.strerror}); remove it "
                              "or choose another --out") from None


def _still_named(fd: int, path: str) -> bool:
    """Whether the locked file is still the one at `path` (an earlier holder removes it on release)."""
    try:
        mine, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
    except OSError:  # removed (ENOENT), or stale on NFS (ESTALE)
        return False
    return (mine.st_dev, mine.st_ino) == (named.st_dev, named.st_ino)


def own_job(environ=None) -> bool:
    """Whether this process runs as the whole of its Slurm job, which scancel of SLURM_JOB_ID stops: the task of a
    `hpcflow submit` job (submitit's Slurm executor exports SUBMITIT_EXECUTOR=slurm into its script) or the run of an
    sbatch template's step (`hpcflow.submit.step` sets SIGNALS_ENV for it). Not a run started in salloc or in a
    batch script of the user's own, whose SLURM_JOB_ID is an allocation that may hold more."""
    from hpcflow.submit.step import SIGNALS_ENV

    env = os.environ if environ is None else environ
    return bool(env.get("SLURM_JOB_ID")) and (env.get("SUBMITIT_EXECUTOR") == "slurm" or SIGNALS_ENV in env)


def _stamp(fd: int, command: str) -> None:
    """Write the holder's command, host, pid, Slurm job and start time into the lock file (for another run's
    refusal)."""
    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    text = json.dumps({"command": command, "pid": os.getpid(), "host": socket.gethostname(),
                       "slurm_job": os.environ.get("SLURM_JOB_ID"), "since": since, "own_job": own_job()})
    _overwrite(fd, (text + "\n").encode("utf-8"))


#: seconds a run waits for a lock held shared meanwhile: a probe (`held_by`: report, --check, submit) holds it so an
#: instant, a run or tune worker for good
PROBE_WAIT = 0.5


def _lock(fd: int, shared: bool) -> None:
    """flock `fd` without blocking; an exclusive lock that a shared holder keeps is tried again for PROBE_WAIT s
    (a probe lets go at once), then OSError EWOULDBLOCK as for a holder."""
    deadline = time.monotonic() + PROBE_WAIT
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if shared or exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() > deadline:
                raise
        try:  # an exclusive holder: no wait
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            raise OSError(errno.EWOULDBLOCK, os.strerror(errno.EWOULDBLOCK)) from None
        time.sleep(0.01)


#: seconds a refused call waits for the holder to write its record into the lock file (it does so right after it
#: locks it: two calls started together would otherwise name "another process" only)
STAMP_WAIT = 0.5


def _holder_record(fd: int) -> bytes:
    """The lock file's bytes once they are the holder's `record` (or after STAMP_WAIT s, as they are then)."""
    deadline = time.monotonic() + STAMP_WAIT
    while True:
        raw = os.pread(fd, 4096, 0)
        if record(raw) is not None or time.monotonic() > deadline:
            return raw
        time.sleep(0.01)


def acquire(outdir, *, command: str, shared: bool = False, resume: bool = False, keep: bool = False) -> OutdirLock:
    """Lock directory `outdir` (created when missing) for this process: exclusively, or `shared` with other
    holders that are shared too. OutdirBusy (exit 2, nothing changed) when another process holds it; where the file
    system cannot lock, one warning line and an unlocked OutdirLock. `resume`: for a --resume of the run there, which
    an unwritable `outdir` is refused as (`output.writable_dir`). `keep`: for a writer that does not take the
    directory over from the run there (an analysis script, a report): the lock file's record of a killed run
    (`_run_record`) is kept in `OutdirLock.found` and written back on release, so that its directory still tells that
    run's end."""
    from hpcflow.jobs.output import writable_dir

    outdir = writable_dir(outdir, resume=resume)  # refused before anything is created: empty, NUL, /proc, a file
    path = os.path.join(outdir, LOCK_NAME)
    created = _created_dir(outdir)
    for _ in range(ATTEMPTS):
        fd = _open(outdir, path)
        if fd is None:  # the directory was removed by a holder that created it: create it again
            created = _created_dir(outdir) or created
            continue
        try:
            _lock(fd, shared)
        except OSError as exc:
            busy = exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
            raw = _holder_record(fd) if busy else b""
            if not busy and exc.errno != errno.ESTALE and os.fstat(fd).st_size == 0:
                os.unlink(path)  # the empty file this call created: no lock means no lock file
            os.close(fd)
            if busy:
                raise OutdirBusy(holder_line(outdir, raw)) from None
            if exc.errno == errno.ESTALE:
                continue
            # a file system that cannot lock (ENOLCK: NFS without lockd; ENOSYS: Lustre without -o flock): unlocked
            print(f"{command}: warning: cannot lock --out {outdir} ({exc.strerror}: a file system without flock, "
                  "e.g. Lustre without -o flock); nothing stops another run from writing there too",
                  file=sys.stderr, flush=True)
            return OutdirLock(outdir, None, created=created, shared=shared)
        if _still_named(fd, path):
            before = os.pread(fd, 4096, 0)
            found = _run_record(before) if keep and not shared else b""
            try:
                _stamp(fd, command)
            except OSError as exc:  # a full disk: the file as it was (removed where this call created it empty)
                OutdirLock(outdir, fd, created=created, shared=shared, found=before).release(remove_dir=True)
                _refused_write(exc, path)
                raise
            return OutdirLock(outdir, fd, created=created, shared=shared, found=found)
        os.close(fd)  # a file its holder removed on release: lock the one named now
    raise OutputPathError(f"--out {outdir}: its lock file {LOCK_NAME} kept changing under this run; retry, or choose "
                          "another --out")


def held_by(outdir) -> bytes | None:
    """The lock file's record (bytes, see `describe`) when a live process holds `outdir`'s lock exclusively (a run),
    else None: no lock file, one that a killed or finished run left (the kernel dropped its lock), or tune workers'
    shared lock. Nothing is created or written: the probe is a shared lock held for an instant (a run that starts
    in it waits for it, `acquire`). Another host's lock is seen where the file system passes flock to the server
    (NFSv4; Lustre with -o flock); where flock is local to each host (NFS mounted local_lock=flock, Lustre
    -o localflock) a run on another host is not seen, and refuses others itself only on its own host."""
    path = os.path.join(os.fspath(outdir), LOCK_NAME)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None  # no lock file (nobody holds it), or one that `acquire` names when the run starts
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return os.pread(fd, 4096, 0)
    finally:
        os.close(fd)
    return None


def live_holder(outdir) -> str:
    """The live run that holds `outdir`'s lock (`held_by`) as its lock file names it: "hpcflow run, pid P@HOST,
    Slurm job J, since T"; "" when none holds it (a killed run's lock file names a dead one)."""
    raw = held_by(outdir)
    h = None if raw is None else record(raw)
    if h is None:
        return "" if raw is None else UNNAMED
    return f"{h['command']}, pid {h['pid']}@{h['host']}{_job(h)}, since {h['since']}"


def refuse_held(outdir) -> None:
    """OutdirBusy when another process holds `outdir`'s lock exclusively (`--check`: nothing created or written;
    `held_by`)."""
    raw = held_by(outdir)
    if raw is not None:
        raise OutdirBusy(holder_line(os.fspath(outdir), raw))


def _settled(lock: OutdirLock, settle: bool) -> OutdirLock:
    """`lock`, after `hpcflow.jobs.replaced.settle` of its directory where `settle` and the lock is held exclusively:
    a set-aside folder there is then a killed run's, never a live run's (one on a file system that cannot lock is not
    told from a live one, and is left as it is)."""
    if settle and lock.fd is not None and not lock.shared:
        from hpcflow.jobs.replaced import settle as settle_dir

        try:
            settle_dir(lock.outdir)
        except BaseException:
            lock.release()
            raise
    return lock


@contextmanager
def holding(outdir, *, command: str, shared: bool = False, comm=None, resume: bool = False, settle: bool = False):
    """Hold `outdir`'s lock for a block: rank 0 of `comm` takes it (only rank 0 writes shared files), every rank
    refuses together when another process holds it (one line from rank 0, exit 2); released when the block ends.
    `resume`: the block is a --resume of the run in `outdir` (`acquire`). `settle`: rank 0 settles the set-aside
    folders that killed --force runs left there (`hpcflow.jobs.replaced.settle`) once it holds the lock, before any
    rank looks into the directory, and again when the block ends without an exception (a --resume that completed the
    killed run).
    A block ended by an exception other than RunStop (a refusal, a failure) leaves no directory that the lock created
    and nothing was written into; a run stopped early (RunStop: preempted) keeps it, for its rerun."""
    from hpcflow.parallel.comm import rank, refuse_together
    from hpcflow.resources import work_began
    from hpcflow.stop_signals import defer, deliver

    deferred = defer()  # a stop request while the lock is taken comes once the block below would release it
    try:
        lock = refuse_together(lambda: _settled(acquire(outdir, command=command, shared=shared, resume=resume), settle)
                               if rank(comm) == 0 else None, comm)
    except BaseException:
        deliver(deferred, held=False)  # refused: the command ends with that
        raise
    failed = True
    try:
        deliver(deferred)
        work_began()  # memory that runs out from here on is the run's, not the start-up's
        yield lock
        failed = False
        if lock is not None:
            _settled(lock, settle)
    except RunStop:
        failed = False
        raise
    finally:
        if lock is not None:
            lock.release(remove_dir=failed)
