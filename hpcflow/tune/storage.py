"""Where a study lives: an Optuna journal file (default `DIR/study.journal`) or any SQLAlchemy URL.

A journal needs no server and is safe for several processes on a shared filesystem, but Optuna keeps no
heartbeat in it: the worker running a trial writes one (user attribute `heartbeat`, seconds since the epoch, every
`[tune] heartbeat_seconds`), and `recover_stale` marks a RUNNING trial failed only when its worker is gone: its pid
is gone or belongs to another process now (a worker on this host; `process_start`), it ran in an earlier run of
this worker's own Slurm job (requeued), or its last heartbeat is older than a grace period (a worker on another
host; never by the trial's age alone). It optionally
queues their parameters again. RDB URLs keep Optuna's own heartbeat, which fails a trial of a worker on another
host (`[tune].heartbeat_seconds`, grace period twice that); the pid and Slurm requeue checks apply to them too.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
import uuid
import warnings
from contextlib import contextmanager

from hpcflow.errors import EXIT_PREEMPTED, UserError
from hpcflow.stop_signals import SIGNALS, Stopped


class StorageError(UserError):
    """The --storage URL or journal path cannot be opened."""


def open_storage(url: str | None, out: str, *, heartbeat: int = 60, retries: int = 0):
    """An Optuna storage: JournalStorage on `url` (a path; default out/study.journal) or RDBStorage (a URL)."""
    import optuna
    from optuna.storages import JournalStorage, RDBStorage

    url = url or os.path.join(out, "study.journal")
    with opening(url):
        if "://" in url:
            db = sqlite_path(url)
            if db is not None and not os.path.exists(db) and inside_out(db, out):
                os.makedirs(os.path.dirname(os.path.abspath(db)), exist_ok=True)  # (`check_file_place`)
            with warnings.catch_warnings():  # the heartbeat arguments are marked experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                try:
                    return RDBStorage(url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                                      **stale_retry(retries))
                except Exception as exc:  # noqa: BLE001 - SQLAlchemy's own errors
                    if not created_meanwhile(exc):
                        raise
                # another worker created the tables between this one's look and its CREATE: they are there now
                return RDBStorage(url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                                  **stale_retry(retries))
        check_journal(url)
        check_journal_place(url, out)
        os.makedirs(os.path.dirname(os.path.abspath(url)), exist_ok=True)  # within --out (`check_journal_place`)
        return JournalStorage(journal_backend(url))


def created_meanwhile(exc) -> bool:
    """Whether SQLAlchemy error `exc` of creating Optuna's tables says another process created them first: a table
    that "already exists" (SQLite, PostgreSQL, MySQL) or a row of version_info inserted twice (IntegrityError)."""
    name = type(exc).__name__
    return name == "IntegrityError" or (name in ("OperationalError", "ProgrammingError")
                                        and "already exists" in str(exc))


def stale_retry(retries: int) -> dict:
    """RDBStorage's keyword argument that queues a heartbeat-stale trial again (at most `retries` times; None for
    0) under the names of the installed Optuna: RetryHeartbeatStaleTrialCallback as heartbeat_stale_trial_callback
    since Optuna 4.9, which deprecated RetryFailedTrialCallback and failed_trial_callback (removed in 6.0)."""
    import inspect

    from optuna import storages

    retry = getattr(storages, "RetryHeartbeatStaleTrialCallback", None) or storages.RetryFailedTrialCallback
    keyword = "heartbeat_stale_trial_callback"
    if keyword not in inspect.signature(storages.RDBStorage.__init__).parameters:
        keyword = "failed_trial_callback"
    return {keyword: retry(max_retry=retries) if retries else None}


def check_journal_place(url: str | None, out: str) -> None:
    """Refuse (StorageError) a journal path whose directory does not exist, as a SQLite file's is: only a directory
    inside --out (the default journal's, out/study.journal) is created for it; a path ending with '/' (a directory,
    not a file) or whose directory is reached through a file (`a.h5/../j.journal`: the directory is taken as written,
    not as os.path.abspath's, which drops `NAME/..`); and a new one named as an SQLite file (`check_journal_name`).
    Nothing is written here."""
    if url is None:
        return
    check_storage_form(url)
    if "://" in url:
        check_database_file(url)
        return
    if os.path.isdir(url):
        raise StorageError(f"--storage {url} is a directory; pass the name of the journal file, e.g. --storage "
                           f"{os.path.join(url, 'study.journal')}")
    special = special_file(url)
    if special is not None:
        raise StorageError(f"--storage {url} is {special}, not a regular file, so no journal can be appended to and "
                           "read back from it; give a regular file path (a new one is created), e.g. --storage "
                           "study.journal")
    if url.endswith(os.sep):  # the OS reads NAME/ as a directory: no journal file is written there
        raise StorageError(f"--storage {url} ends with '{os.sep}', which names a directory; pass the name of the "
                           f"journal file without it, e.g. --storage {url.rstrip(os.sep) or os.sep}")
    check_journal_name(url, out)
    check_file_place(url, url, out)


def check_database_file(url: str) -> None:
    """Refuse (StorageError) an SQLite URL whose database file is a device, a FIFO or a socket (`special_file`: read
    from os.stat, never opened; SQLite's open of a FIFO blocks until a writer comes, /dev/null gives a disk I/O error
    at the first write). Other URLs, and a file that does not exist yet, pass."""
    if not url.startswith("sqlite"):
        return
    db = sqlite_path(url)
    special = None if db is None else special_file(db)
    if special is not None:
        raise StorageError(f"--storage {masked(url)}: database file {db} is {special}, not a regular file, so no "
                           "SQLite database can be written to and read back from it; give a regular file path (a new "
                           "one is created), e.g. --storage sqlite:///study.db")


#: what a file of each type other than a regular file or a directory is, as a refusal names it (`special_file`)
_SPECIAL_TYPES = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"))


def special_file(path: str) -> str | None:
    """What file `path` is where it exists and is neither a regular file nor a directory (a device such as /dev/null,
    a FIFO, a socket; through a symbolic link too), or None: read from os.stat alone, never opened (opening a FIFO
    blocks until a writer comes). A path that does not exist, or whose type cannot be read, is None."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return next((what for test, what in _SPECIAL_TYPES if test(mode)), "a special file")


#: a malformed SQLite URL given as a path (no "://"): `sqlite:/x.db`, `sqlite:x.db`, `sqlite//x.db`, any case
_LOOSE_SQLITE = re.compile(r"^(sqlite(?:\+\w+)?)(?::/*|//+)(?=[^/])", re.IGNORECASE)
#: SQLAlchemy's own database schemes (dialect names, lower case), which a misspelt scheme is matched against
KNOWN_SCHEMES = ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql")
#: other names of those databases, which a string's likeness would match to another (psql -> mysql)
SCHEME_ALIASES = {"psql": "postgresql", "postgres": "postgresql", "pg": "postgresql", "pgsql": "postgresql",
                  "sqlite3": "sqlite"}


def check_storage_form(url: str) -> None:
    """Refuse (StorageError) a --storage that is an SQLite URL written wrongly: `sqlite:/x.db`, `sqlite:x.db`,
    `sqlite//x.db` (taken as a path otherwise, no file of which exists), an upper-case scheme (`SQLITE:///x.db`:
    SQLAlchemy's dialect names are lower case) or a misspelt one that SQLAlchemy does not know (`sqlit:///x.db`),
    naming the URL meant. Nothing is read or written."""
    if re.fullmatch(r"sqlite(\+\w+)?:/*", url, re.IGNORECASE) and not os.path.lexists(url):
        raise StorageError(f"--storage {url} names no database file; pass --storage sqlite:///NAME.db (a file in the "
                           "working directory; sqlite:////ABS for an absolute path)")
    if url.lower().startswith("file://"):
        from urllib.parse import unquote, urlsplit

        path = unquote(urlsplit(url).path) or "PATH"
        raise StorageError(f"--storage {url}: a journal file is given as its path, not a file:// URL; pass --storage "
                           f"{path}")
    if "://" not in url:
        loose = _LOOSE_SQLITE.match(url)
        if loose is None or os.path.lexists(url) or (":" not in loose.group(0) and not _sqlite_name(url)):
            return  # a file of that name, or a directory sqlite/ (sqlite//x.journal)
        meant = f"{loose.group(1).lower()}:///{_as_url_path(url[loose.end():], loose.group(0).endswith('/'))}"
        raise StorageError(f"--storage {url} is not a well-formed SQLite URL (SQLAlchemy's is sqlite:/// and the "
                           f"file's path, sqlite:////ABS for an absolute one); pass --storage {meant}")
    scheme, _, rest = url.partition("://")
    base, plus, driver = scheme.partition("+")
    if base == "sqlite" and rest and not rest.startswith("/") and "?" not in rest:  # sqlite://x.db: x.db a host
        raise StorageError(f"--storage {url} is not a well-formed SQLite URL (SQLAlchemy's is sqlite:/// and the "
                           f"file's path, sqlite:////ABS for an absolute one); pass --storage {base}{plus}{driver}:///"
                           f"{rest}")
    if _in_memory(url):
        raise StorageError(f"--storage {masked(url)} names an in-memory database, which ends with this worker (no "
                           "other worker sees it, and the study could never be continued); pass --storage "
                           "sqlite:///NAME.db (a file in the working directory; sqlite:////ABS for an absolute path)")
    if base.lower() in KNOWN_SCHEMES and base != base.lower():
        raise StorageError(f"--storage {masked(url)}: SQLAlchemy's database schemes are lower case; pass --storage "
                           f"{masked(base.lower() + plus + driver + '://' + rest)}")
    if not re.fullmatch(r"[A-Za-z][\w.-]*", base) or _known_dialect(base):
        return
    import difflib

    close = [SCHEME_ALIASES[base.lower()]] if base.lower() in SCHEME_ALIASES else \
        difflib.get_close_matches(base.lower(), KNOWN_SCHEMES, n=1, cutoff=0.6)
    if close:
        raise StorageError(f"--storage {masked(url)}: unknown storage scheme {base!r}; did you mean "
                           f"{masked(close[0] + plus + driver + '://' + rest)}?")


def _in_memory(url: str) -> bool:
    """Whether `url` is an SQLite URL that SQLAlchemy opens as an in-memory database (sqlite:///:memory:, SQLite's
    file: URI with mode=memory)."""
    if not url.startswith("sqlite"):
        return False
    from sqlalchemy.engine import make_url

    try:
        if make_url(url).get_backend_name() != "sqlite":
            return False
    except Exception:  # noqa: BLE001 - not an SQLAlchemy URL: refused where it is opened
        return False
    return sqlite_path(url) is None


def _sqlite_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in SQLITE_SUFFIXES


def _as_url_path(rel: str, slash: bool) -> str:
    """The path `rel` of a loose SQLite URL (`check_storage_form`: after `sqlite:/`, `sqlite:`, ...; `slash`: a "/"
    came before it) as it goes after sqlite:///: relative, unless only the absolute path's directory exists."""
    if slash and not os.path.isdir(os.path.dirname(rel) or os.curdir) and os.path.isdir(os.path.dirname("/" + rel)):
        return _url_escaped("/" + rel)
    return _url_escaped(rel)


def _known_dialect(name: str) -> bool:
    """Whether SQLAlchemy has a dialect of scheme `name` (installed or not: its driver is refused where it is
    opened)."""
    from sqlalchemy.dialects import registry

    try:
        registry.load(name)
    except Exception as exc:  # noqa: BLE001 - NoSuchModuleError; a dialect whose driver import fails is known
        return type(exc).__name__ != "NoSuchModuleError"
    return True


#: errnos with which a file system refuses a write whoever asks: permissions or an ACL (EACCES), chattr +i (EPERM), a
#: read-only mount (EROFS)
REFUSING = (errno.EACCES, errno.EPERM, errno.EROFS)


def dir_refusal(directory: str) -> OSError | None:
    """The OSError with which the file system refuses a new file in existing directory `directory` (errno of
    `REFUSING`), found by creating and removing one (`hpcflow.jobs.output.write_probe`): os.access answers yes to
    root whatever a read-only mount or chattr +i says, and reads no ACL. None where the file is created, or refused
    for another reason (a full disk: left to the write itself to say)."""
    from hpcflow.jobs.output import write_probe

    failed = write_probe(directory or os.curdir)
    return failed if failed is not None and failed.errno in REFUSING else None


def file_refusal(path: str) -> OSError | None:
    """The OSError with which the file system refuses writes to existing file `path` (errno of `REFUSING`), found
    by opening it for appending (nothing is written, its times stay); None where it opens, or fails otherwise, and
    where this process holds a lock on the file (`_locked_here`): no probe is made then."""
    # Closing any descriptor of a file releases every POSIX (fcntl) lock this process holds on it, as SQLite warns:
    # an SQLite database this process has open (its storage) in a transaction would lose its locks to the probe's
    # close, and another worker could write it meanwhile. The probe runs before the storage is opened; where the
    # file is locked here all the same, it is not made (the storage's own writes then say a refusal).
    if _locked_here(path):
        return None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return exc if exc.errno in REFUSING else None
    os.close(fd)
    return None


#: inode flags (FS_IOC_GETFLAGS, `lsattr`) with which no process, root included, may rename over or unlink a file:
#: chattr +i (immutable) and chattr +a (append only), with the letter that `chattr -X` clears
_FIXED_FLAGS = ((0x00000010, "i"), (0x00000020, "a"))
_FS_IOC_GETFLAGS = 0x80086601  # _IOR('f', 1, long) on Linux


def _inode_flags(path: str) -> int | None:
    """The inode flags of file `path` (`lsattr`), None where they cannot be read (another system, a file system
    without them, a file this process may not open)."""
    import array
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        buf = array.array("l", [0])
        fcntl.ioctl(fd, _FS_IOC_GETFLAGS, buf, True)
        return buf[0] & 0xFFFFFFFF
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


def replace_refusal(path: str) -> tuple[OSError, str] | None:
    """(the OSError, the `chattr` letter to clear) where existing file `path` may not be replaced by a rename over
    it whoever asks: it is immutable (chattr +i) or append-only (chattr +a), read from its inode flags, or, where
    those cannot be read, its open for appending refused with EPERM (an immutable file's refusal; a plain read-only
    file says EACCES and is replaced all the same). Nothing is renamed or written; None for a symbolic link, a
    missing file, one that may be replaced, and where this process holds a lock on it (`_locked_here`)."""
    if not os.path.isfile(path) or os.path.islink(path) or _locked_here(path):
        return None
    flags = _inode_flags(path)
    if flags is not None:
        for bit, letter in _FIXED_FLAGS:
            if flags & bit:
                return PermissionError(errno.EPERM, os.strerror(errno.EPERM), path), letter
        return None
    failed = file_refusal(path)
    return (failed, "i") if failed is not None and failed.errno == errno.EPERM else None


def _locked_here(path: str) -> bool:
    """Whether this process holds a POSIX lock on file `path` (its device and inode in Linux's /proc/locks); False
    where that cannot be known (another system: the probe is made, as before)."""
    try:
        st = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    pid, inode = str(os.getpid()), f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in lines:
        words = line.split()  # "1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (a blocked waiter: "1: -> POSIX")
        if "POSIX" in words[:3]:
            at = words.index("POSIX")
            if words[at + 3:at + 5] == [pid, inode]:
                return True
    return False


def refused_reason(exc: OSError) -> str:
    """Why a probe (`dir_refusal`, `file_refusal`) was refused, as a message says it."""
    return exc.strerror or os.strerror(exc.errno)


def make_writable(exc: OSError) -> str:
    """The fix of a probe's refusal `exc`: a read-only mount's is the administrators'; permissions (an ACL too) and
    chattr +i the user's."""
    if exc.errno == errno.EROFS:
        return "make it writable (its file system is mounted read-only: have it remounted read-write)"
    return "make it writable (chmod u+w, chattr -i)"


def check_file_place(shown: str, path: str, out: str, *, what: str = "journal file",
                     instead: str = "a journal path") -> None:
    """Refuse (StorageError) storage file `path` (a journal, an SQLite database; `--storage shown`) whose directory
    does not exist, but for one inside --out (`out`: created for it, `open_storage`): one line saying why (missing,
    or not a directory), the same for both kinds of file. Nothing is written here."""
    from hpcflow.jobs.output import not_a_directory

    parent = os.path.dirname(path) or os.curdir
    refused = dir_refusal(parent) if os.path.isdir(parent) and not os.path.lexists(path) else None
    if refused is not None:
        raise StorageError(f"--storage {shown}: cannot open it (cannot create {what} {path}: {parent} is not a "
                           f"writable directory: {refused_reason(refused)}); {make_writable(refused)}, or pass "
                           f"{instead} in a writable directory")
    if os.path.isdir(parent) or inside_out(path, out):
        return
    why = not_a_directory(parent)
    fix = (f"create that directory first, or pass {instead} in an existing directory or inside --out"
           if why.startswith("is missing") else f"pass {instead} in an existing directory or inside --out")
    raise StorageError(f"--storage {shown}: cannot open it (cannot create {what} {path}: {parent} {why}); {fix}")


def inside_out(path: str, out: str) -> bool:
    """Whether storage file `path` lies in a directory inside --out `out` that can be created (no file in the way):
    `open_storage` makes it."""
    from hpcflow.jobs.output import blocking_entry

    parent, home = os.path.dirname(path) or os.curdir, os.path.abspath(out)
    return blocking_entry(parent) is None and os.path.commonpath([os.path.abspath(parent), home]) == home


#: the file name endings of SQLite databases, which a journal path (a new file) must not have
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def check_journal_name(path: str, out: str | None = None) -> None:
    """Refuse (StorageError) a journal path to a new file whose name ends like an SQLite database's
    (`SQLITE_SUFFIXES`): Optuna would create it as a journal (JSON lines), not the database its name promises; a
    directory of it that is missing (but for one inside --out `out`, created for it) is said in the same line, as
    either fix needs it. A file that exists is read for what it is (`journal_problem` names an SQLite database's
    URL)."""
    from hpcflow.jobs.output import not_a_directory

    stem, suffix = os.path.splitext(path)
    if suffix.lower() not in SQLITE_SUFFIXES or os.path.lexists(path):
        return
    parent, first = os.path.dirname(path) or os.curdir, "pass"
    if not os.path.isdir(parent) and (out is None or not inside_out(path, out)):
        why = not_a_directory(parent)
        if not why.startswith("is missing"):
            raise StorageError(f"--storage {path}: a path is taken as an Optuna journal (JSON lines), not the SQLite "
                               f"database its name ({suffix}) says, and {parent} {why}; pass --storage "
                               "sqlite:///DIR/NAME.db for an SQLite database, or a journal path, in an existing "
                               "directory")
        first = f"{parent} {why}: create it, then pass"
    raise StorageError(f"--storage {path}: a path is taken as an Optuna journal (JSON lines), so this new file would "
                       f"be a journal, not the SQLite database its name ({suffix}) says; {first} --storage "
                       f"sqlite:///{_url_escaped(path)} for an SQLite database, or a journal name such as "
                       f"{stem}.journal")


#: seconds a journal's (or best.toml's) lock may stay unchanged before a waiting worker takes it over where its
#: holder's liveness cannot be checked (a holder on another host, or one that recorded none: Optuna's own lock, an
#: older hpcflow's): its holder was killed between taking it and releasing it (an append takes milliseconds), or
#: was paused that long; Optuna's own grace period
LOCK_GRACE = 30.0
#: seconds a wait for a lock held by a process of this host lasts before that process is looked at (`FileLock`)
LOCAL_LOOK = 1.0
#: seconds, all waits together, that a process asked to stop waits for locks held by live processes of this host
#: (a stopped one never releases it by itself) before it gives up its writes (`LockAbandoned`); at most the grace
STOP_WAIT = 10.0


def file_lock(path: str, *, grace: float = LOCK_GRACE, log=None, check=None):
    """Optuna's symlink lock of file `path` (`path`.lock), as `FileLock`: made with absolute paths, so the link
    resolves wherever the caller's working directory is."""
    return FileLock(os.path.abspath(path), grace=grace, log=log, check=check)


def journal_backend(path: str):
    """Optuna's JournalFileBackend of journal `path` with its lock (`file_lock`), both on the absolute path; a write
    made after the lock was taken over has the journal checked (`journal_problem`)."""
    from optuna.storages.journal import JournalFileBackend

    path = os.path.abspath(path)
    return JournalFileBackend(path, lock_obj=file_lock(path, check=journal_problem))


class LockLost(StorageError):
    """A journal's lock was taken over while this worker held it, and the journal was found damaged after its
    write (`FileLock.release`)."""


class LockAbandoned(Exception):
    """A wait for a lock held by live process `pid` of this host (`state`: "stopped: ...", "running"), given up
    without taking it over because this process was asked to stop (signal `signum`) `STOP_WAIT` s before: nothing
    is written. An Exception, so that Optuna's and the worker's handlers of a failed write give up that write and go
    on leaving; the worker ends with `stopped` (its trial's number), a KeyboardInterrupt. `preempted`: the request
    was one that a stop handler had taken before the waits (`hpcflow.stop_signals.taken`), which a tune worker
    honours as a preemption (its trial's checkpoint written, or between trials: exit status 4), not one received
    while it waited (or a Ctrl-C taken by its stop handler)."""

    def __init__(self, signum: int, path: str, pid: int, state: str, *, preempted: bool = False) -> None:
        super().__init__(f"lock {path} held by pid {pid} of this host ({state}) while this process stops")
        self.signum, self.path, self.pid, self.state, self.preempted = signum, path, pid, state, preempted

    def stopped(self, trial: int | None) -> "LockStop":
        return LockStop(self, trial)


class LockStop(Stopped):
    """A stop (`LockAbandoned`) that left the journal unwritten: the command ends with one line and the stop's
    status: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM, 138 for SIGUSR1) for a request received while it
    waited or a Ctrl-C, EXIT_PREEMPTED (4) for a request honoured before the waits (`LockAbandoned.preempted`), as
    the worker preempted by it ends otherwise (so that `hpcflow submit` requeues it)."""

    def __init__(self, cause: LockAbandoned, trial: int | None) -> None:
        super().__init__(cause.signum)
        self.cause, self.trial = cause, trial
        if cause.preempted:
            self.exit_status = EXIT_PREEMPTED

    def __str__(self) -> str:
        c = self.cause
        what = "nothing more was written to the journal" if self.trial is None else \
            f"trial {self.trial} was left RUNNING in the journal"
        after = "" if self.trial is None else (
            f"; once pid {c.pid} is continued or has ended, the next worker fails that trial (its worker gone) and "
            "queues it again as the job's retries allow")
        return (f"{super().__str__()}; {what}: pid {c.pid} of this host holds the journal's lock {c.path} while "
                f"{c.state.split(':')[0]} and a live holder's lock is never taken over{after}")


#: the counter that makes each hold's owner file name (`FileLock`) unique in its process
_HOLDS = itertools.count()
#: (pid, "HOST~SPACE~PID~TICKS") of this process, as an owner file's name holds it (`_me`)
_ME: list = []
#: how an owner file's name begins (`FileLock`): a hidden file beside the lock link
OWNER_PREFIX = ".lock~"
#: what the file that lets one waiter at a time take a lock over (`FileLock._take_over`) adds to the link's name
TAKEOVER_SUFFIX = ".takeover"
#: the longest host name an owner file's name holds as it is (a longer one, or one with other characters, as a hash)
_HOST_CHARS = 16


def lock_file_entry(name: str) -> bool:
    """Whether directory entry `name` is a journal lock's own file (`FileLock`): an owner file, or the takeover file
    a taker killed while taking a lock over left."""
    return lock_holder(name) is not None or name.endswith(".lock" + TAKEOVER_SUFFIX)


def _b36(n: int) -> str:
    digits, out = "0123456789abcdefghijklmnopqrstuvwxyz", ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if not n:
            return out


def _proc_fields(pid) -> list | None:
    """The fields of /proc/PID/stat after the command name (field 3, the state, first), None where /proc does not
    say (not Linux, the process gone)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            line = fh.read()
        return line[line.rindex(b")") + 2:].split()  # after the command name, which may hold spaces and ")"
    except (OSError, ValueError):
        return None


def _start_ticks(pid) -> str:
    """Process `pid`'s start in clock ticks since boot (field 22 of /proc/PID/stat) in base 36; "-" where unknown."""
    fields = _proc_fields(pid)
    try:
        return _b36(int(fields[19]))
    except (TypeError, ValueError, IndexError):
        return "-"


def _pid_space() -> str:
    """Where this process's pids are looked up: a hash (base 36) of the kernel's boot id and this process's PID
    namespace (the inode of /proc/self/ns/pid, the same on every machine's host namespace), so that a machine of the
    same host name, a reboot or a container is another space; "-" where neither can be read."""
    import zlib

    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = ""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
    except OSError:
        boot = ""
    return _b36(zlib.crc32(f"{boot}:{ns}".encode("ascii", "replace"))) if boot or ns else "-"


def _host_token(host: str) -> str:
    """Host name `host` as an owner file's name holds it: as it is where short, else "#" and a hash of it."""
    if len(host) <= _HOST_CHARS and re.fullmatch(r"[A-Za-z0-9.-]+", host):
        return host
    import zlib

    return "#" + _b36(zlib.crc32(host.encode("utf-8", "surrogateescape")))


def _me() -> str:
    """This process as an owner file's name holds it: host (`_host_token`), pid space (`_pid_space`), pid and start
    ticks (made
    once; again in a forked child). Short, so that the link naming the owner file is a fast symlink (its target held
    in its inode: ext4 frees a longer one's block at every release, milliseconds)."""
    pid = os.getpid()
    if not _ME or _ME[0] != pid:
        _ME[:] = [pid, "~".join((_host_token(socket.gethostname()), _pid_space(), _b36(pid), _start_ticks(pid)))]
    return _ME[1]


def lock_holder(target: str | None) -> tuple[str, str, int, str] | None:
    """(host token, pid space, pid, start ticks) of the process that made a lock link whose target is `target`
    (its owner file OWNER_PREFIX HOST~SPACE~PID~TICKS~N, `FileLock`); None for another target (the locked file itself:
    Optuna's own lock, an older hpcflow's)."""
    if not target or not target.startswith(OWNER_PREFIX) or os.sep in target:
        return None
    parts = target[len(OWNER_PREFIX):].split("~")
    try:
        host, ns, pid, ticks, _ = parts
        return host, ns, int(pid, 36), ticks
    except ValueError:
        return None


def _holder_gone(pid: int, ticks: str) -> str | None:
    """Why lock holder `pid` of this host (pid space), started at `ticks` (`_start_ticks`), is gone, or None while
    it is alive (stopped, too): its pid ended, or is another process's now."""
    if _pid_ended(pid):
        return "its process ended"
    now = _start_ticks(pid)
    if ticks != "-" and now not in ("-", ticks):
        return f"its process ended; pid {pid} is another process's now"
    return None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


class FileLock:
    """Optuna's JournalFileSymlinkLock of file `filepath` (the same link, `filepath`.lock, made and released the same
    way, so Optuna's own writers and hpcflow's exclude each other) that records its holder and never takes a live
    holder's lock. The link names an empty owner file made for the hold beside it, `OWNER_PREFIX`HOST~SPACE~PID~TICKS~N
    (`_me`: the holder's host, pid space: boot and PID namespace, pid, start and a count), removed with the link; so
    the link resolves, as Optuna's wait needs. A waiter takes a held lock over:

    - held by a process of this host (same boot and PID namespace): only once that process is gone (`_holder_gone`:
      its pid ended, or is another process's now), looked at after `LOCAL_LOOK` s; a live holder, a stopped one
      (SIGSTOP, Ctrl-Z, a suspended job) included, is waited for however long, said once, unless this process was
      asked to stop (a request received during a wait, or a Ctrl-C taken by a stop handler): its waits for live
      holders then last min(`STOP_WAIT`, `grace`) s in all, after which it gives up (LockAbandoned), neither taking
      the lock over nor writing; a request that a stop handler took at any time before (`stop_signals.taken`: a
      trial's checkpoint writer that honoured it, the worker's own between trials) bounds so its waits for stopped
      holders only (a running one releases the lock by itself), and that give-up is a preempted one
      (LockAbandoned.preempted);
    - held by a process of another host (or namespace), of this host name where /proc does not tell machines apart
      (pid space "-"), of this host but hidden (/proc mounted hidepid), or by a holder that recorded none (Optuna's
      own lock, an older hpcflow's), whose liveness cannot be looked at: once its link (its inode and time,
      `os.lstat`: also a link whose target is gone, on which Optuna's wait spins forever) stayed unchanged for
      `grace` seconds, as Optuna does; the line says that the holder may be alive but paused.

    One line on stderr (`log`) when a wait passes a second and when it takes the lock over. A holder whose lock was
    taken over meanwhile (it was paused past the grace period) leaves the new holder's link in place, says so in one
    line and goes on: its write was one append of whole lines (Optuna's JournalFileBackend), which a local file system
    never interleaves with another's; `check(filepath)` (a journal's: `journal_problem`), run under the lock, then
    tells whether it stayed whole (appends from two hosts to an NFS file may not), and a problem ends the worker
    (LockLost, one line).

    While the main thread holds it, stop requests are held back (`hpcflow.stop_signals.defer`) and delivered when it
    is released, so that one that ends the command never leaves the link behind (nor a write cut in two)."""

    def __init__(self, filepath: str, *, grace: float = LOCK_GRACE, log=None, check=None) -> None:
        self._lock_target_file, self._lock_file = filepath, filepath + ".lock"
        self.grace = float(grace)
        self.log = log if log is not None else (lambda line: print(line, file=sys.stderr, flush=True))
        self.check = check
        self._held = threading.local()  # `deferred`: stop requests held back; `owner`: the link's target, when held
        self._last = None  # the owner file of the last hold taken (a release from another thread than the acquire)

    def _seen(self):
        """The lock link's identity (inode, mtime), or None when there is none."""
        try:
            st = os.lstat(self._lock_file)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def _new_owner(self) -> str:
        """Make this hold's owner file (empty), returned as the link's target; the locked file itself where it cannot
        be made (the directory refuses it: the link's own creation then says why)."""
        owner = f"{OWNER_PREFIX}{_me()}~{_b36(next(_HOLDS))}"  # relative: the link resolves beside itself
        try:
            os.close(os.open(self._beside(owner), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                             0o644))
        except OSError:
            return self._lock_target_file
        return owner

    def _beside(self, name: str) -> str:
        """The path of owner file `name`, which lies beside the lock link."""
        return os.path.join(os.path.dirname(self._lock_file), name)

    def _drop_owner(self, owner: str | None) -> None:
        if lock_holder(owner) is not None:
            try:
                os.unlink(self._beside(owner))
            except OSError:
                pass

    def acquire(self) -> bool:
        """Take the lock, waiting as the class says. The owner file is made for each try and removed when the try
        fails, so a waiter killed while it waits leaves none behind. From its first refused try the stop requests'
        handlers are wrapped (`_StopNotes`), so that one received during the wait bounds it."""
        notes = []
        try:
            return self._acquire(notes)
        finally:
            for each in notes:
                each.close()

    def _acquire(self, notes_in: list) -> bool:
        from hpcflow.stop_signals import defer, deliver

        pause, seen, since, said, holder, target = 0.001, None, time.monotonic(), False, None, None
        host, ns, hidden = _host_token(socket.gethostname()), None, False
        while True:
            owner = self._new_owner()
            deferred = defer()  # from before the link is made: a request cannot come between the two
            try:
                os.symlink(owner, self._lock_file)
            except BaseException as err:
                deliver(deferred)  # not held: a request meanwhile acts at once (a wait may be long)
                self._drop_owner(owner)
                if not isinstance(err, OSError) or err.errno != errno.EEXIST:
                    raise
            else:
                if notes_in:  # the handlers this hold's release puts back: the originals
                    deferred = (notes_in[0].original(deferred[0]), deferred[1])
                self._held.deferred, self._held.owner, self._last = deferred, owner, owner
                return True
            if not notes_in:
                notes_in.append(_StopNotes())
            now = self._seen()
            if now != seen:  # another holder (or the first look): its grace period starts now
                seen, since, hidden = now, time.monotonic(), False
                target = _readlink(self._lock_file) if now is not None else None
                holder = lock_holder(target)
            waited = time.monotonic() - since
            # a holder of this host's pid space, unless the space is unknown ("-": no /proc, machines of one name
            # alike) or the holder's process cannot be looked at (hidden: /proc mounted hidepid): the age rule then
            if not hidden and holder is not None and holder[0] == host and holder[1] != "-" \
                    and holder[1] == (ns or (ns := _pid_space())):
                if waited > min(LOCAL_LOOK, self.grace):
                    gone = _holder_gone(holder[2], holder[3])
                    hidden = gone is None and _start_ticks(holder[2]) == "-"
                    if gone is not None and self._seen() == seen and self._take_over(
                            seen, target, f"hpcflow: lock {self._lock_file} was held by pid {holder[2]} of this host, "
                            f"which is gone ({gone}: killed while holding it); taking it over"):
                        pause, seen = 0.001, None
                        continue
                    state = "stopped: SIGSTOP, Ctrl-Z or a suspended job" if gone is None and not hidden and \
                        process_stopped(holder[2]) else "running"
                    over = _stop_wait_over(self.grace, state.startswith("stopped")) if gone is None and \
                        not hidden else None
                    if over is not None:
                        raise LockAbandoned(over[0], self._lock_file, holder[2], state, preempted=over[1])
                    if gone is None and not hidden and not said:
                        said = True
                        self.log(f"hpcflow: waiting for lock {self._lock_file}: held by pid {holder[2]} of this "
                                 f"host, which is alive ({state}); a live holder's lock is never taken over")
            elif now is not None and waited > self.grace and self._seen() == seen:
                if self._take_over(
                        seen, target, f"hpcflow: lock {self._lock_file} unchanged for {self.grace:g} s, held by "
                        f"{self._holder_shown(holder, host, ns)}, which cannot be looked at from here: killed while "
                        "holding it, or alive but paused that long (SIGSTOP, a suspended job, a stalled file "
                        "system); taking it over"):
                    pause, seen = 0.001, None
                    continue
            elif not said and waited > 1.0:
                said = True
                shown = self._holder_shown(holder, host, ns)
                self.log(f"hpcflow: waiting for lock {self._lock_file} (held by {shown}: "
                         f"taken over after {self.grace:g} s unchanged, its liveness cannot be looked at from here)")
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    @staticmethod
    def _holder_shown(holder, host: str, ns: str | None = None) -> str:
        """Lock holder `holder` (`lock_holder`) as a line names it, seen from host token `host` (`_host_token`) and,
        where given, pid space `ns` (`_pid_space`)."""
        if holder is None:
            return "a worker that recorded no identity (Optuna's own lock, an older hpcflow's)"
        where = ("this host" if holder[0] == host and holder[1] == ns != "-" else
                 "this host name (without /proc, which tells this machine from another of that name)"
                 if holder[0] == host and "-" in (holder[1], ns) else
                 "this host name, in another boot or PID namespace (a container, another machine of that name)"
                 if holder[0] == host else
                 f"host {holder[0]}" if not holder[0].startswith("#") else "another host")
        return f"pid {holder[2]} of {where}"

    def _take_over(self, seen, target: str | None, line: str) -> bool:
        """Remove the lock link last seen as `seen` (`_seen`) naming `target`, and its owner file, saying `line`;
        False (nothing done) while another waiter takes it over. Takeovers are made one at a time, under the file
        `filepath`.lock.takeover (made exclusively; one left by a taker killed meanwhile is removed once older than
        the grace period), and the link is looked at again under it: one released or taken over meanwhile is left as
        it is, so that two waiters of a gone holder never both take its lock, nor remove a third's new link. A link
        made between that look and its removal (its holder, paused, released it and another worker took the lock)
        is put back."""
        guard = self._lock_file + TAKEOVER_SUFFIX
        try:
            os.close(os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644))
        except FileExistsError:
            try:
                if time.time() - os.stat(guard).st_mtime > self.grace:
                    os.unlink(guard)
            except OSError:
                pass
            return False
        except OSError:
            guard = None  # a directory that refuses it refuses the link too
        try:
            if self._seen() != seen or _readlink(self._lock_file) != target:
                return True  # released or taken over meanwhile: looked at again
            self.log(line)
            renamed = f"{self._lock_file}{uuid.uuid4()}.rename"
            try:
                os.rename(self._lock_file, renamed)
            except OSError:
                return True  # removed meanwhile
            try:
                st = os.lstat(renamed)
                same = (st.st_ino, st.st_mtime_ns) == seen and _readlink(renamed) == target
            except OSError:
                same = False
            if not same:
                self._put_back(renamed)
                return True
            try:
                os.unlink(renamed)
            except OSError:
                pass
            self._drop_owner(target)
            return True
        finally:
            if guard is not None:
                try:
                    os.unlink(guard)
                except OSError:
                    pass

    def _put_back(self, renamed: str) -> None:
        """Give another holder's link, renamed to `renamed`, its name back (a hard link of the link, which fails
        rather than replace one made meanwhile)."""
        try:
            os.link(renamed, self._lock_file, follow_symlinks=False)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links of a symbolic link
            if not os.path.lexists(self._lock_file):
                os.rename(renamed, self._lock_file)
                return
        try:
            os.unlink(renamed)
        except OSError:
            pass

    def release(self) -> None:
        """Remove the link as Optuna does (renamed first, so two releases cannot both remove it), and this hold's owner
        file; RuntimeError when none is held (by this thread, else the last taken by another). Where the link is gone
        or is another holder's (taken over while this one was paused), it is left as it is (`_lost`). Then the stop
        requests held back since this thread took it are delivered."""
        from hpcflow.stop_signals import deliver

        deferred, self._held.deferred = getattr(self._held, "deferred", None), None
        owner, self._held.owner = getattr(self._held, "owner", None) or self._last, None
        if owner == self._last:
            self._last = None
        try:
            if owner is None:
                raise RuntimeError(f"lock {self._lock_file} is not held")
            found = _readlink(self._lock_file)
            if found != owner:
                self._lost(found)
                return
            renamed = f"{self._lock_file}{uuid.uuid4()}.rename"
            try:
                os.rename(self._lock_file, renamed)
            except OSError:
                self._lost(None)
                return
            found = _readlink(renamed)
            if found != owner:  # taken over between the look and the rename: its new holder's, put back
                self._put_back(renamed)
                self._lost(found)
                return
            os.unlink(renamed)
        finally:
            self._drop_owner(owner)
            if deferred is not None:
                deliver(deferred)

    def _lost(self, found: str | None) -> None:
        """Say that this hold's lock was taken over (its link gone, or `found`, another holder's), and check the
        locked file (`check`) under the lock: LockLost where it is damaged."""
        holder = lock_holder(found)
        who = "another worker" if holder is None else \
            self._holder_shown(holder, _host_token(socket.gethostname()), _pid_space())
        checked = "; the journal is checked" if self.check is not None else ""
        self.log(f"hpcflow: lock {self._lock_file} was taken over by {who} while this process held it (paused past "
                 f"the {self.grace:g} s takeover: SIGSTOP, a suspended job, a stalled file system); its new holder's "
                 f"lock is left in place and this process goes on{checked}")
        if self.check is None:
            return
        self.acquire()
        try:
            problem = self.check(self._lock_target_file)
        finally:
            self.release()
        if problem:
            raise LockLost(f"study journal {self._lock_target_file}: its lock was taken over while this worker wrote "
                           f"to it, and it is damaged now: {problem}")


#: [the signal of the first stop request this process was seen to receive, the time its waits for live local
#: holders end (None until one begins)] (`_stop_wait_over`); empty before any
_STOP = []
#: [the signal of the request a stop handler took before (`hpcflow.stop_signals.taken`), the time its waits for
#: stopped local holders end] (`_stop_wait_over`); empty until such a wait begins
_EARLIER = []


def _stop_asked() -> bool:
    """Whether this process was asked to stop: a request noted while it waited for a lock (`_StopNotes`), or a
    Ctrl-C taken by an installed stop handler (`hpcflow.stop_signals`)."""
    from hpcflow import stop_signals

    if not _STOP and stop_signals._asked and getattr(signal.getsignal(signal.SIGINT), "stop_request", False):
        _STOP[:] = [int(signal.SIGINT), None]  # (a handler of the running command's: not an earlier command's)
    return bool(_STOP)


def forget_stops() -> None:
    """Forget the stop requests noted (`_STOP`, `hpcflow.stop_signals.taken`): a command run in this process after
    another starts afresh."""
    from hpcflow.stop_signals import forget_taken

    _STOP.clear()
    _EARLIER.clear()
    forget_taken()


def _stop_wait_over(grace: float, stopped: bool) -> tuple[int, bool] | None:
    """(the signal, whether it is a preempted give-up: `LockAbandoned.preempted`) where a wait for a live holder of
    this host (`stopped`: one in state T, SIGSTOP) is to be given up, else None: this process was asked to stop
    (`_stop_asked`), and its waits for such holders since have lasted min(STOP_WAIT, `grace`) s (counted from the
    first); or a stop handler took a request before (`hpcflow.stop_signals.taken`), the holder is stopped, and its
    waits for stopped holders since have lasted as long (whichever ends first). A running holder releases the lock
    by itself: waited for after such an earlier request (a busy worker's write), so that the preempted worker still
    leaves with its status."""
    from hpcflow.stop_signals import taken

    if _stop_asked():
        if _STOP[1] is None:
            _STOP[1] = time.monotonic() + min(STOP_WAIT, grace)
        if time.monotonic() >= _STOP[1]:
            return _STOP[0], False
    if not stopped or taken() is None:
        return None
    if not _EARLIER:
        _EARLIER[:] = [taken(), time.monotonic() + min(STOP_WAIT, grace)]
    return (_EARLIER[0], True) if time.monotonic() >= _EARLIER[1] else None


class _StopNotes:
    """While a lock is waited for (from its first refused try to its end), a stop request (SIGNALS) received by a
    handler of Python's is noted (`_STOP`) before that handler runs as it would have: each is wrapped (main thread;
    elsewhere nothing is). `close` puts back those still in place; `original` gives a try's `defer`red handlers
    unwrapped, so that a release puts the originals back."""

    def __init__(self) -> None:
        self.wrapped = {}  # signal: (the handler, its wrapper)
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNALS:
            old = signal.getsignal(sig)
            if callable(old):
                self.wrapped[sig] = (old, self._noting(old))
                signal.signal(sig, self.wrapped[sig][1])

    @staticmethod
    def _noting(old):
        def note(signum, frame):
            if not _STOP:
                _STOP[:] = [int(signum), None]
            return old(signum, frame)

        try:
            note.__dict__.update(vars(old))  # its marks (`stop_request`, `default_action`), which others look at
        except TypeError:
            pass
        return note

    def original(self, handlers: dict) -> dict:
        return {sig: self.wrapped[sig][0] if sig in self.wrapped and h is self.wrapped[sig][1] else h
                for sig, h in handlers.items()}

    def close(self) -> None:
        for sig, (old, note) in self.wrapped.items():
            if signal.getsignal(sig) is note:  # (a handler that ran may have set another: kept)
                signal.signal(sig, old)
        self.wrapped = {}


def remove_dangling_lock(path: str, *, watch: float = 1.0, log=None) -> bool:
    """Remove `path`.lock when it is a symlink whose target does not exist and that stays unchanged for `watch`
    seconds: a lock made with a relative path (by an older hpcflow), or whose study directory was moved since, left
    by a worker killed while writing; no worker of this hpcflow makes such a link, and an append holds its lock for
    milliseconds. One line on stderr says so. Whether it was removed."""
    lock = os.path.abspath(path) + ".lock"

    def seen():
        try:
            st = os.lstat(lock)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns) if os.path.islink(lock) and not os.path.exists(lock) else None

    first, end = seen(), time.monotonic() + watch
    while first is not None and time.monotonic() < end:
        time.sleep(0.05)
        if seen() != first:
            return False
    if first is None:
        return False
    try:
        target = os.readlink(lock)
        os.unlink(lock)
    except OSError:
        return False
    (log or (lambda line: print(line, file=sys.stderr, flush=True)))(
        f"hpcflow: removed stale lock {lock} (a link to {target}, which does not exist: left by a worker killed "
        "while writing)")
    return True


@contextmanager
def opening(url: str):
    """A failure to open storage `url` in the block as StorageError (one line naming it and the fix)."""
    import optuna

    try:
        yield
    except StorageError:
        raise
    except (OSError, ImportError, ValueError, optuna.exceptions.OptunaError) as exc:
        raise StorageError(f"--storage {masked(url)}: cannot open it ({_masked_error(exc, url, 200)}); pass a "
                           "writable journal path or an SQLAlchemy URL such as sqlite:///study.db") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's own errors (bad dialect, no server)
        if created_meanwhile(exc):  # two workers created the database's tables at once (`open_storage` retried)
            raise StorageError(f"--storage {masked(url)}: another worker created the database's tables at the same "
                               f"time ({type(exc).__name__}: {_masked_error(exc, url, 120)}); nothing was recorded: "
                               "run this worker again (it finds the tables made and continues the study)") from None
        raise StorageError(f"--storage {masked(url)}: cannot open it ({type(exc).__name__}: "
                           f"{_masked_error(exc, url, 200)}); check the URL and that the server answers") from None


def existing_storage(url: str | None, out: str, *, heartbeat: int = 60, retries: int = 0):
    """`open_storage` of a storage that exists already (a journal file; a database holding Optuna's tables), None
    where it does not yet; nothing is created or written, so checks made before any work can read it. A URL that
    cannot be opened is refused (StorageError) either way."""
    url = url or os.path.join(out, "study.journal")
    if "://" not in url:
        return open_storage(url, out, heartbeat=heartbeat, retries=retries) if os.path.exists(url) else None
    with opening(url):
        db = sqlite_path(url)
        if db is not None and not os.path.exists(db):  # its directory: missing, or made inside --out, as a journal's
            check_file_place(masked(url), db, out, what="database file", instead="an SQLite file")
            if not os.path.isdir(os.path.dirname(os.path.abspath(db))):
                return None  # inside --out, made there (`open_storage`)
        exists = _holds_tables(url)
    return open_storage(url, out, heartbeat=heartbeat, retries=retries) if exists else None


def close_storage(store) -> None:
    """Close the database connections of `store` (an RDBStorage, Optuna's cache around one, or a study of either;
    None and a journal, which holds no file open between its writes, are left as they are): the current thread's
    session is removed and the SQLAlchemy engine's pool disposed, so no file handle on an SQLite database (nor its
    -journal) outlives the study, whichever way it ended. The storage stays usable: a later query connects again."""
    store = getattr(store, "_storage", store)  # a study's
    backend = getattr(store, "_backend", store)  # Optuna wraps a database storage in a cache
    engine = getattr(backend, "engine", None)
    if engine is None:
        return
    remove = getattr(backend, "remove_session", None)
    if remove is not None:
        remove()
    engine.dispose()


@contextmanager
def storages_closed():
    """A block whose storages are closed (`close_storage`) when it ends, also by an exception (a refusal, Ctrl-C, a
    stop request): `with storages_closed() as closing: study = closing(open(...))`; closing(x) returns x."""
    held = []

    def closing(store):
        held.append(store)
        return store

    try:
        yield closing
    finally:
        for store in reversed(held):
            close_storage(store)


def _holds_tables(url: str) -> bool:
    """Whether database `url` holds Optuna's tables; an SQLite file that does not exist is not created (its
    directory must be one to create it in: `existing_storage` refuses a missing one first, `check_file_place`)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)  # an unknown dialect or a missing driver is refused here
    try:
        if engine.dialect.name == "sqlite":
            db = sqlite_path(url)  # (SQLite's own file: URI too, and a file named file:...)
            if db is None:
                return False
            parent = os.path.dirname(os.path.abspath(db))
            if not os.path.exists(db):
                if not os.path.isdir(parent) or dir_refusal(parent) is not None:
                    raise OSError(f"cannot create database file {db}: {parent} is not a writable directory")
                return False
            if not is_sqlite_file(db) and os.path.getsize(db) and journal_problem(db) is None:
                raise StorageError(f"--storage {masked(url)}: {db} is an Optuna journal file, not an SQLite database; "
                                   f"pass it as a path, --storage {db}")
            if not is_sqlite_file(db) and os.path.getsize(db):
                raise StorageError(f"--storage {masked(url)}: {db} is not an SQLite database; pass another --storage")
            refused = file_refusal(db)
            if refused is not None:
                raise StorageError(f"--storage {masked(url)}: database file {db}: {not_writable(refused)}")
            refused = dir_refusal(parent)  # SQLite writes its rollback journal beside the database
            if refused is not None:
                raise StorageError(f"--storage {masked(url)}: database file {db}: {not_writable(refused, parent)}")
        return sqlalchemy.inspect(engine).has_table("studies")
    finally:
        engine.dispose()


#: a storage URL's password, as SQLAlchemy parses one: after `SCHEME://USER:` (a user ends at ":" or "/") up to the
#: "@" before the host, the last one (a password may hold "/", ":", "@" or a space); a URL inside a message: up to
#: the last "@" before a space
_URL_PASSWORD = re.compile(r"^([A-Za-z][\w+.-]*://[^:/]*:).*@", re.DOTALL)
_TEXT_PASSWORD = re.compile(r"([A-Za-z][\w+.-]*://[^:/\s]*:)\S*@")
#: a password given as a query parameter (`?password=...`, which SQLAlchemy hands to the driver); a quote after it
#: closes a shell-quoted URL and stays
_QUERY_PASSWORD = re.compile(r"([?&;]password=)[^&;\s'\"]*", re.IGNORECASE)


def masked(url) -> str:
    """A storage URL (or a path, or a message that holds storage URLs) as study.json and messages show it: each
    password in it (`SCHEME://USER:PASSWORD@HOST`, a `password=` query parameter) replaced by ***."""
    text = _URL_PASSWORD.sub(r"\1***@", os.fspath(url))
    return _QUERY_PASSWORD.sub(r"\1***", _TEXT_PASSWORD.sub(r"\1***@", text))


def _masked_error(exc: BaseException, url: str, limit: int) -> str:
    """Exception `exc`'s text in one line of at most `limit` characters, storage `url` and any other URL in it shown
    without its password (`masked`: before the text is cut, so that no cut leaves part of a password)."""
    text = " ".join(str(exc).split())
    return masked(text.replace(" ".join(url.split()), masked(url)) if url.strip() else text)[:limit]


def storage_label(url: str | None, out: str) -> str:
    """How study.json records a storage: a journal or an SQLite file inside DIR relative to it ("study.journal" by
    default; "sqlite:///study.db" for DIR/study.db), so that a moved or copied DIR keeps its own; another journal as
    an absolute path, another URL without its password (an SQLite file outside DIR, and one named as SQLite's own
    file: URI, by its absolute path: `absolute_storage`; a file's path %XX-escaped as the URL decodes it)."""
    url = url or os.path.join(out, "study.journal")
    if "://" not in url:
        path, base = os.path.abspath(url), os.path.abspath(out)
        return os.path.relpath(path, base) if path.startswith(base + os.sep) else path
    url = masked(url)  # never write a password to disk
    parts = sqlite_file(url)
    if parts is None:  # another database as it is; SQLite's own file: URI by its absolute path
        return absolute_storage(url)
    head, path, query = parts
    file, base = os.path.abspath(sqlite_path(url) or path), os.path.abspath(out)
    if file.startswith(base + os.sep):
        return f"{head}:///{_url_escaped(os.path.relpath(file, base))}{query}"
    return absolute_storage(url)


def sqlite_file(url: str) -> tuple[str, str, str] | None:
    """(scheme "sqlite" or "sqlite+DRIVER", the database file's path as written, "?QUERY" or "") of an SQLite URL
    that names a file (not an in-memory database, not SQLite's own file: URI); None for any other storage."""
    head, sep, tail = url.partition(":///")
    if not sep or head.split("+")[0] != "sqlite":
        return None
    path, mark, query = tail.partition("?")
    if not path or path.startswith((":memory", "file:")):
        return None
    return head, path, mark + query


def sqlite_path(url: str) -> str | None:
    """The file that SQLite URL `url` opens, as SQLAlchemy opens it: its database as make_url decodes it (%XX),
    and where uri=true names SQLite's own URI (file:PATH) the path in it as SQLite reads that (%XX decoded again;
    file:PATH without uri=true is a file of that name); relative to the working directory where relative. None for
    an in-memory database and for a URL that is not an SQLite one."""
    from urllib.parse import parse_qs, unquote, urlsplit

    from sqlalchemy.engine import make_url
    from sqlalchemy.util import asbool

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not an SQLAlchemy URL: refused where it is opened
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    db, query = parsed.database or "", parsed.query
    last = {k: v[-1] if isinstance(v, tuple) else v for k, v in query.items()}
    try:
        uri = asbool(last.get("uri", False))
    except ValueError:
        uri = False  # (SQLAlchemy refuses it when it opens the URL)
    if uri and db.startswith("file:"):
        own = urlsplit(db)  # SQLite's URI: its query (after a decoded %3F) and SQLAlchemy's other keys go to SQLite
        if "memory" in (last.get("mode"), *parse_qs(own.query).get("mode", ())):
            return None
        db = unquote(own.path)
    return None if db in ("", ":memory:") else db


#: the values of an SQLAlchemy URL's uri=... that it reads as true (sqlalchemy.util.asbool)
_TRUE = ("true", "yes", "on", "y", "t", "1")


def absolute_storage(url: str) -> str:
    """--storage `url` naming the same storage from any working directory: a journal's path made absolute, and an
    SQLite URL's file (`sqlite:///REL` is relative to the working directory: `sqlite:////ABS`), also one given as
    SQLite's own URI (`sqlite:///file:REL?uri=true`: `sqlite:///file:/ABS?uri=true`) and one named `file:...` without
    uri=true (SQLAlchemy opens the file of that name); an in-memory database and another database's URL as they are,
    and so is a scheme SQLAlchemy does not know (SQLITE:///, which it refuses: its dialect names are lower case)."""
    if "://" not in url:
        return os.path.abspath(url)
    parts = sqlite_file(url)
    if parts is not None:
        head, path, query = parts
        return f"{head}:///{_in_cwd(path, _url_escaped(os.getcwd()))}{query}"
    head, sep, tail = url.partition(":///")
    path, mark, query = tail.partition("?")
    if not sep or head.split("+")[0] != "sqlite" or not path.startswith("file:"):
        return url
    params = [p.partition("=")[::2] for p in query.split("&")]
    if not any(k == "uri" and v.strip().lower() in _TRUE for k, v in params):  # a file named file:...
        return f"{head}:///{_in_cwd(path, _url_escaped(os.getcwd()))}{mark}{query}"
    rest = path[len("file:"):]  # SQLite's URI: file:/ABS, file:///ABS and file://HOST/ABS are absolute
    if not rest or rest.startswith(("/", ":memory:")) or ("mode", "memory") in params:
        return url
    cwd = os.getcwd().replace("%", "%25").replace("?", "%3F").replace("#", "%23")  # as a path in SQLite's URI
    return f"{head}:///file:{_in_cwd(rest, _url_escaped(cwd))}{mark}{query}"


def _url_escaped(path: str) -> str:
    """Directory `path` as a part of an SQLAlchemy URL, which decodes %XX in its database and ends it at ?."""
    return path.replace("%", "%25").replace("?", "%3F")


def _in_cwd(path: str, cwd: str) -> str:
    """URL path `path` (as written, relative or absolute) made absolute in working directory `cwd` (as written in the
    URL: `_url_escaped`)."""
    return os.path.normpath(os.path.join(cwd, path))


def recorded_storage(label: str, out: str) -> str:
    """Storage `label` as study.json of DIR `out` records it, read for DIR as it is now (`storage_label`'s form). An
    SQLite file was recorded by its absolute path before a file inside DIR was recorded relative to it: such a
    record that names a file inside DIR, or inside the place DIR was moved or copied from (`_moved_part`), is DIR's
    own file, relative to DIR; any other label is returned as is."""
    parts = sqlite_file(label)
    if parts is None or not os.path.isabs(parts[1]):
        return label
    head, path, query = parts
    rel = _moved_part(os.path.normpath(sqlite_path(label) or path), os.path.abspath(out))  # (%XX decoded)
    return label if rel is None else f"{head}:///{_url_escaped(rel)}{query}"


def _moved_part(path: str, base: str) -> str | None:
    """REL where absolute `path` is ORIG/REL and ORIG is study directory `base`, or the place it was moved or copied
    from: `base`/REL is a file and `path` is gone (moved) or ORIG is another study directory (holds study.json: a
    copy's original). The shortest such REL; None where `path` lies elsewhere."""
    if path.startswith(base + os.sep):
        return os.path.relpath(path, base)
    names = path.split(os.sep)
    for k in range(1, len(names) - 1):
        rel, orig = os.path.join(*names[-k:]), os.sep.join(names[:-k]) or os.sep
        if not os.path.isfile(os.path.join(base, rel)):
            continue
        other = os.path.isfile(os.path.join(orig, "study.json")) and not _same_path(orig, base)
        return rel if not os.path.exists(path) or other else None
    return None


def _same_path(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def storage_file(label: str, out: str) -> str | None:
    """The file that storage `label` (`storage_label`'s form) of study directory `out` lives in, as a path (a relative
    one joined to `out`): a journal, an SQLite database; None for another database."""
    if "://" in label:
        parts = sqlite_file(label)
        if parts is None:  # SQLite's own file: URI and a file named file:...: recorded absolute (`storage_label`)
            file = sqlite_path(label)
            return None if file is None else os.path.abspath(file)
        label = sqlite_path(label) or parts[1]
    return label if os.path.isabs(label) else os.path.join(out, label)


def same_storage(known: str, label: str, out: str) -> bool:
    """Whether storage labels `known` and `label` (`storage_label`'s form) of study directory `out` name one file
    (a journal, an SQLite database: however the URL spells it, relative or absolute, %XX-encoded or not)."""
    if ("://" in known) != ("://" in label):
        return False
    a, b = storage_file(known, out), storage_file(label, out)
    if a is None or b is None:
        return False
    return os.path.abspath(a) == os.path.abspath(b) or _same_path(a, b)


def storage_shown(label: str, out: str) -> str:
    """A recorded storage as a user passes it: a relative journal path, or an SQLite URL's relative file, joined to
    DIR."""
    parts = sqlite_file(label) if "://" in label else None
    if parts is not None and not os.path.isabs(parts[1]):
        head, path, query = parts
        return f"{head}:///{os.path.join(_url_escaped(out), path)}{query}"
    return label if "://" in label or os.path.isabs(label) else os.path.join(out, label)


def storage_option(label: str, out: str) -> str:
    """The --storage option that opens the storage study.json records as `label` (for messages)."""
    if label == "study.journal":
        return f"no --storage (it is {os.path.join(out, label)})"
    return f"--storage {storage_shown(label, out)}"


#: the other way out that a journal's problem names (`journal_problem`), for tune's own --storage option
OTHER_STORAGE = "pass another --storage"


#: the first 16 bytes of every SQLite database file
SQLITE_HEADER = b"SQLite format 3\0"


def is_sqlite_file(path) -> bool:
    """Whether file `path` is an SQLite database (its header, `SQLITE_HEADER`)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def journal_problem(path: str, *, instead: str = OTHER_STORAGE) -> str | None:
    """What makes file `path` unreadable as an Optuna journal (one JSON operation with an op_code a line, every line
    ended by a newline), or None; each problem names its fix, `instead` the other way out. An unended last line
    is a problem: read the file under its lock (`locked_journal_problem`), which a write in progress holds."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(SQLITE_HEADER):
        return (f"not an Optuna journal (an SQLite database: give it as the URL sqlite:///{os.path.abspath(path)}); "
                f"{instead}")
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    first = _operation(lines[0] if lines else tail)
    if first is None and _binary(data):  # an HDF5 file; a journal's damaged tail is said below (its lines kept)
        return f"not an Optuna journal (binary content, not UTF-8 text); {instead}"
    if data and first is None:  # before its last line: another kind of file
        if not any(_operation(line) for line in lines[1:]):  # no line is one: not a journal at all
            return (f"line 1 is not an Optuna journal operation (the file is not an Optuna journal); no line of it "
                    f"is one: it is another kind of file, not a damaged journal; {instead}")
        return (f"line 1 is not an Optuna journal operation (the file is not an Optuna journal, or a damaged one: "
                f"later lines are operations); restore it from a copy, or {instead}")
    replay = _replay()
    for i, line in enumerate(lines, start=1):
        op = _operation(line)
        what = "not an Optuna journal" if i == 1 else "damaged"
        if op is None:
            if tail and not any(_operation(later) for later in lines[i:]):  # from here to the end: a damaged end
                return _damaged_end(lines[i - 1:], tail, i, instead)
            return (f"line {i} is not an Optuna journal operation (the file is {what}); restore it from a copy, "
                    f"or {instead}")
        try:  # Optuna's own reader, a line at a time: an operation it cannot apply is named by its line
            replay is None or replay.apply_logs([op])
        except Exception as exc:  # noqa: BLE001 - KeyError, AssertionError, TypeError ... of a malformed operation
            why = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
            return (f"line {i} is an operation Optuna cannot apply ({why}), so the file is {what}; restore it from "
                    f"a copy, or {instead}")
    if tail:
        return _damaged_end([], tail, len(lines) + 1, instead)
    return None


def _damaged_end(whole: list, tail: bytes, first: int, instead: str) -> str:
    """A journal's damaged end: its lines `whole` (ended by a newline, none an operation) and then `tail` (no
    newline), from line `first` on; the lines before it are whole operations, to keep."""
    last = first + len(whole)
    binary = _binary(tail) or any(_binary(line) for line in whole)
    text, why = ((" and not UTF-8 text", "bytes after the last whole operation: a damaged write") if binary else
                 ("", "a write was cut off, e.g. by a full disk"))
    if not whole:  # binary bytes too (NULs a crash left, bytes appended to the file): the lines before them are kept
        return (f"line {last} is incomplete{text} ({why}), so the file is damaged; remove that partial last line "
                f"(keep lines 1-{first - 1}), or {instead}")
    return (f"lines {first}-{last} are not whole operations{text} ({why}), so the file is damaged; remove those "
            f"lines (keep lines 1-{first - 1}), or {instead}")

def _binary(data: bytes) -> bool:
    """Whether `data` is no UTF-8 text (a NUL byte, or bytes that do not decode)."""
    return b"\0" in data or not _utf8(data)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _operation(line: bytes) -> dict | None:
    """A journal line's operation (a JSON object with an integer op_code), None when it is none."""
    import json

    try:
        op = json.loads(line)
    except ValueError:
        return None
    return op if isinstance(op, dict) and isinstance(op.get("op_code"), int) else None


def _replay():
    """Optuna's journal replayer (the state a journal's operations build), or None where this Optuna moved it."""
    try:
        from optuna.storages.journal._storage import JournalStorageReplayResult
    except ImportError:
        try:
            from optuna.storages._journal.storage import JournalStorageReplayResult
        except ImportError:
            return None
    return JournalStorageReplayResult("hpcflow-check-")


def locked_journal_problem(path: str, *, instead: str = OTHER_STORAGE) -> str | None:
    """`journal_problem` of file `path` read under the journal's own lock, so that another worker's append in
    progress is not taken for damage (an unwritable directory: read without the lock); a file that cannot be read
    is a problem too."""
    remove_dangling_lock(path)
    lock = file_lock(path)
    locked = False
    try:
        locked = lock.acquire()
    except OSError:
        pass  # an unwritable directory: read without the lock (tune's opening of the journal refuses it)
    try:
        return journal_problem(path, instead=instead)
    except OSError as exc:
        return f"cannot read it ({exc.strerror}); fix its permissions, or {instead}"
    finally:
        if locked:
            lock.release()


def check_journal(path: str) -> None:
    """Refuse (StorageError) a journal file that Optuna would fail on or write after a partial line
    (`locked_journal_problem`), or that cannot be written, before any write."""
    problem = locked_journal_problem(path) if os.path.isfile(path) else None
    if problem:
        raise StorageError(f"study journal {path}: {problem}")
    if not os.path.isfile(path):
        return
    refused = file_refusal(path)
    if refused is not None:
        raise StorageError(f"study journal {path}: {not_writable(refused)}")
    parent = os.path.dirname(os.path.abspath(path))
    refused = dir_refusal(parent)  # where the lock of every write is made (`file_lock`)
    if refused is not None:
        raise StorageError(f"study journal {path}: {not_writable(refused, parent)}")


def not_writable(refused: OSError, directory: str | None = None) -> str:
    """Why a storage file that exists cannot take a study's writes (the file's own refusal `refused`, or that of
    its `directory`, where its lock or SQLite's rollback journal is made), and the fix."""
    what = "the file" if directory is None else f"its directory {directory}"
    return (f"{what} is not writable ({refused_reason(refused)}), so no trial could be recorded; "
            f"{make_writable(refused)}, or {OTHER_STORAGE}")


def is_journal(storage) -> bool:
    from optuna.storages import JournalStorage

    return isinstance(storage, JournalStorage)


def slurm_worker(environ=None) -> tuple[str | None, int]:
    """(this worker's Slurm job, its run count): "ARRAYJOB_TASK" for an array task, else SLURM_JOB_ID (None
    outside Slurm), and SLURM_RESTART_COUNT (0 unset; Slurm raises it at every requeue of the same job).
    ConfigError for a restart count that is not a whole number."""
    env = os.environ if environ is None else environ
    job = env.get("SLURM_JOB_ID", "").strip() or None
    array, task = env.get("SLURM_ARRAY_JOB_ID", "").strip(), env.get("SLURM_ARRAY_TASK_ID", "").strip()
    if job is not None and array and task:
        job = f"{array}_{task}"
    from hpcflow.resources import slurm_restart_count

    return job, slurm_restart_count(env)


def mark_worker(trial) -> None:
    """Record which process runs `trial` (user attrs host, pid, pid_start: `process_start`, slurm_job,
    slurm_restart) so that a later worker can tell if it died or was requeued, and its first heartbeat. Written
    whatever the trial carried before (a retry created by Optuna copies the failed trial's attributes)."""
    job, restart = slurm_worker()
    for key, value in (("host", socket.gethostname()), ("pid", os.getpid()), (PID_START, process_start(os.getpid())),
                       ("slurm_job", job), ("slurm_restart", restart if job is not None else None),
                       (HEARTBEAT, time.time())):
        trial.set_user_attr(key, value)


#: user attribute of a trial: `process_start` of its worker, which tells that worker from a later process given
#: the same pid
PID_START = "pid_start"


def process_start(pid: int) -> str | None:
    """When process `pid` of this host started, as "BOOT_ID:TICKS": the kernel's boot id and the process's start in
    clock ticks since boot (field 22 of /proc/PID/stat, proc(5)), which a later process given the same pid (pid reuse
    on a long-lived login node, or after a reboot) does not share; None where /proc does not say (not Linux, the
    process gone)."""
    fields = _proc_fields(pid)
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            boot = fh.read().strip()
        return f"{boot}:{int(fields[19])}"
    except (OSError, TypeError, ValueError, IndexError):
        return None


def process_stopped(pid: int) -> bool:
    """Whether process `pid` of this host is stopped (state T or t in /proc/PID/stat: SIGSTOP, Ctrl-Z, a suspended
    Slurm job, a debugger); False where /proc does not say."""
    fields = _proc_fields(pid)
    return bool(fields) and fields[0] in (b"T", b"t")


#: user attribute of a RUNNING trial: time.time() of its worker's last sign of life (journal storage)
HEARTBEAT = "heartbeat"


@contextmanager
def heartbeat(storage, trial_id: int, seconds: float):
    """Write user attribute `heartbeat` = time.time() on trial `trial_id` every `seconds` from a thread while the
    block runs (a trial's computation); it stops when the trial is finished or failed by another worker. A damaged
    journal found by a write (LockLost) stops it too and is raised when the block ends: it ends the worker."""
    stop, lost = threading.Event(), []

    def beat():
        while not stop.wait(seconds):
            try:
                storage.set_trial_user_attr(trial_id, HEARTBEAT, time.time())
            except LockLost as exc:
                lost.append(exc)
                return
            except Exception:  # noqa: BLE001 - finished, or failed by another worker: nothing to keep alive
                return

    thread = threading.Thread(target=beat, name="hpcflow-tune-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    if lost:
        raise lost[0]


def last_sign_of_life(t) -> float | None:
    """time.time() of the last heartbeat of RUNNING trial `t`, or of its start (a trial written before trials
    carried heartbeats); None when neither is known."""
    beat = t.user_attrs.get(HEARTBEAT)
    if isinstance(beat, (int, float)) and not isinstance(beat, bool):
        return float(beat)
    return None if t.datetime_start is None else t.datetime_start.timestamp()


def _pid_ended(pid: int) -> bool:
    """Whether no process of pid `pid` runs on this host (another user's process is one: its start tells); a zombie
    (killed, not yet reaped by its parent: state Z or X in /proc/PID/stat) has ended, though os.kill still finds it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    fields = _proc_fields(pid)
    return bool(fields) and fields[0] in (b"Z", b"X")


def _process_gone(pid: int, started) -> str | None:
    """Why the worker of pid `pid` on this host, started at `started` (`process_start`; None for a trial written
    before it was recorded), is gone, or None while it may be alive: its pid is gone, or belongs to a process that
    started at another time (the pid was reused). A worker alive, even a stopped one (SIGSTOP, a suspended Slurm
    job) whose heartbeat is old, is never gone."""
    if _pid_ended(pid):
        return "worker gone (its process ended)"
    now = process_start(pid) if isinstance(started, str) else None
    if now is not None and now != started:
        return f"worker gone (its process ended; pid {pid} is another process's now)"
    return None


def is_own(t) -> bool:
    """Whether RUNNING trial `t` is this process's: its host, pid and (where recorded) `process_start`."""
    a = t.user_attrs
    if a.get("pid") != os.getpid() or a.get("host") != socket.gethostname():
        return False
    return not isinstance(a.get(PID_START), str) or a[PID_START] == process_start(os.getpid())


def worker_gone(t, *, grace_seconds: float, now: float | None = None, by_heartbeat: bool = True) -> str | None:
    """Why the worker of RUNNING trial `t` is gone (a phrase), or None while it may be alive. In this order: a
    trial of an earlier run of this worker's Slurm job (same job, lower SLURM_RESTART_COUNT: Slurm runs one at a
    time); a worker on this host whose pid is gone or is another process's now (`_process_gone`; the worker alive:
    never gone, however old the trial or its heartbeat); a worker on another host (or unknown) whose last heartbeat
    (`last_sign_of_life`) is older than grace_seconds, unless not `by_heartbeat` (a database storage, where no worker
    refreshes user attribute `heartbeat`: Optuna's decides)."""
    a = t.user_attrs
    job, restart = slurm_worker()
    if job is not None and a.get("slurm_job") == job and isinstance(a.get("slurm_restart"), int) \
            and a["slurm_restart"] < restart:
        return f"worker gone (Slurm job {job} was requeued)"
    if a.get("host") == socket.gethostname() and isinstance(a.get("pid"), int):
        return _process_gone(a["pid"], a.get(PID_START))
    if not by_heartbeat:
        return None
    last = last_sign_of_life(t)
    now = time.time() if now is None else now
    if last is None or now - last <= grace_seconds:
        return None
    if HEARTBEAT in a:
        return f"worker gone (no heartbeat for {now - last:.0f} s)"
    return f"worker gone (no heartbeat recorded; started {now - last:.0f} s ago)"


def recover_stale(study, storage, *, grace_seconds: float, retries: int = 0, after_training=None) -> list[int]:
    """Mark RUNNING trials of a study whose worker is gone (`worker_gone`) as FAIL, with user attribute `failure`
    saying why. Their parameters are queued again when `retries` allows (user attr `attempt`); a trial for which
    `after_training(trial)` is true (its worker died after the training its checkpoint holds whole) is queued to be
    continued from that checkpoint, as a preempted one, once: a trial so queued is not again (`AFTER_TRAINING`). A
    database storage then fails the trials whose Optuna heartbeat is stale (`fail_stale_rdb_trials`; its callback
    continues those ended after their training alike, `continue_after_training`). Returns the trial numbers."""
    from optuna.trial import TrialState

    journal, failed = is_journal(storage), []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if is_own(t):
            continue
        why = worker_gone(t, grace_seconds=grace_seconds, now=now, by_heartbeat=journal)
        if why is None:
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "failure", why)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception:  # noqa: BLE001 - another worker finished or failed it first
            continue
        failed.append(t.number)
        again = after_training is not None and AFTER_TRAINING not in t.user_attrs and after_training(t)
        requeue(study, t, retries, preempted=again, continues=again, after_training=again)
    if not journal:  # after hpcflow's own look (a gone pid), which continues a trial ended after its training
        failed += fail_stale_rdb_trials(study)
    return sorted(failed)


def fail_stale_rdb_trials(study) -> list[int]:
    """Optuna's `fail_stale_trials` on a database storage: its RUNNING trials whose Optuna heartbeat is older than
    the grace period are failed (and queued again by the storage's retry callback, `open_storage`). Optuna runs it
    only where a worker goes on to draw a trial; one that stops at --max-trials runs it here. Returns the numbers of
    the trials it failed."""
    import optuna
    from optuna.trial import TrialState

    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    if not running:
        return []
    with warnings.catch_warnings():  # marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number in running]


#: user attribute of a trial queued to continue a trial whose worker died after its training (`recover_stale`)
AFTER_TRAINING = "after_training"
#: user attribute of such a trial whose predecessor could not record why it failed: Optuna failed it for its stale
#: heartbeat, after which a trial takes no attribute (`continue_after_training`)
CONTINUED_FAILURE = "continued_failure"


def continue_after_training(storage, after_training) -> None:
    """Have a database storage's trials whose Optuna heartbeat is stale (Optuna's `fail_stale_trials`, which
    `recover_stale` runs and Optuna's optimize before every trial) queued to be continued from their checkpoint, as
    `recover_stale` queues a journal's, where `after_training(trial)` is true (once: not a trial so queued,
    `AFTER_TRAINING`); the others go to the storage's own callback (`stale_retry`: queued again as retries allow).
    Nothing for a journal, whose workers' heartbeats `recover_stale` reads itself."""
    if is_journal(storage):
        return
    backend = getattr(storage, "_backend", storage)  # Optuna wraps a database storage in a cache
    names = [n for n in ("heartbeat_stale_trial_callback", "failed_trial_callback") if hasattr(backend, n)]
    retry = getattr(backend, names[0]) if names else None
    retry = getattr(retry, "retry", retry)  # installed before (a study opened again): the storage's own
    grace = getattr(backend, "grace_period", None) or 2 * (getattr(backend, "heartbeat_interval", None) or 0)

    def stale(study, trial) -> None:
        if AFTER_TRAINING not in trial.user_attrs and after_training(trial):
            requeue(study, trial, 0, preempted=True, continues=True, after_training=True,
                    failure=f"worker gone (no heartbeat for over {grace:g} s)")
        elif retry is not None:
            retry(study, trial)

    stale.retry = retry
    for name in names:
        setattr(backend, name, stale)


def retries_used(trial) -> int:
    """The retries that failed trial `trial`'s parameters have had (user attribute `attempt`, which `requeue` counts;
    0 for a first run, and a trial continuing a preempted one counts none)."""
    return int(trial.user_attrs.get("attempt", 0))


def retry_left(trial, retries: int) -> bool:
    """Whether failed trial `trial` is queued again afresh under [tune] retries = `retries` (`requeue`): it has
    parameters, and they have had fewer than `retries` retries (`retries_used`)."""
    return bool(trial.params) and retries_used(trial) < retries


def requeue(study, trial, retries: int, *, preempted: bool = False, continues: bool = False,
            after_training: bool = False, failure: str | None = None) -> bool:
    """Queue the parameters of a failed trial again if it has attempts left (new points, new number); a preempted
    trial's parameters always, without counting an attempt (the signal says nothing about them). `continues` (a trial
    stopped by a signal, its checkpoint written): the retry continues it, with its point seeds and from its
    checkpoint (user attributes `continues`, its number, and `seeds`; `hpcflow.tune.study.Worker.carry_over`);
    `after_training`: so marked (AFTER_TRAINING), with `failure`, why the trial failed where it could not record it
    (CONTINUED_FAILURE)."""
    if not trial.params or not (preempted or retry_left(trial, retries)):
        return False
    attrs = {"attempt": retries_used(trial) + (0 if preempted else 1), "retry_of": trial.number}
    seeds = trial.user_attrs.get("seeds")
    if continues and isinstance(seeds, list) and "run_dir" in trial.user_attrs:
        attrs.update(continues=trial.number, seeds=list(seeds))
        if after_training:
            attrs[AFTER_TRAINING] = True
        if failure is not None:
            attrs[CONTINUED_FAILURE] = failure
    study.enqueue_trial(trial.params, user_attrs=attrs)
    return True
