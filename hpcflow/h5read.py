"""Opening an HDF5 file for reading when it may be damaged (cut short, overwritten, a partial copy): h5py's errors
for such a file become the caller's one-line UserError, here alone. A file that another process holds locked
(`locked`) is in use, not damaged: `IN_USE` says so and how it is read."""

from __future__ import annotations

import errno
import re
from contextlib import contextmanager

import h5py

from hpcflow.errors import UserError

#: what h5py raises opening or reading a damaged file: HDF5's errors come as OSError or RuntimeError, an object it
#: cannot decode as KeyError, a datatype or dataspace it cannot map as ValueError or TypeError
DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError)


#: what HDF5 says where another process holds the file's lock (its flock or fcntl call failed)
LOCK_TEXT = "unable to lock file"


def locked(exc: BaseException) -> bool:
    """Whether h5py's error `exc` opening a file is HDF5's file lock held by another process (a program writing the
    file, or holding it open for writing): errno EAGAIN (EWOULDBLOCK), or HDF5's "unable to lock file" in its
    message; not a damaged file, which a rerun would replace."""
    return isinstance(exc, OSError) and (exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK)
                                         or LOCK_TEXT in str(exc).lower())


#: what a file that another process holds locked (`locked`) is, and how it is read: the file itself may be whole
IN_USE = "in use: another process holds it locked for writing (a run, or a program that has it open)"
IN_USE_FIX = ("wait for that process to end or close the file, then try again; where nothing writes it (a read-only "
              "file system that refuses the lock), set HDF5_USE_FILE_LOCKING=FALSE")


#: the errno of a lock that another process holds (EAGAIN, EWOULDBLOCK; 11 on Linux, 35 on macOS, as HDF5's text
#: gives it): any other errno of HDF5's lock is its file system refusing locks (ENOLCK, ENOSYS), no process holding it
HELD_ERRNOS = {errno.EAGAIN, errno.EWOULDBLOCK, 11, 35}
#: what a file whose file system refuses HDF5's lock is, and how it is read
LOCK_REFUSED = "its file system refuses HDF5's file lock (no process need hold it)"
LOCK_REFUSED_FIX = "set HDF5_USE_FILE_LOCKING=FALSE to read it"


def held(exc: BaseException) -> bool:
    """Whether HDF5's lock error `exc` (`locked`) is a lock another process holds (`HELD_ERRNOS`, from the error's
    errno or HDF5's "errno = N" text; no errno: held), not its file system refusing locks."""
    number = getattr(exc, "errno", None)
    if number is None and (m := re.search(r"errno\s*=\s*(\d+)", str(exc))):
        number = int(m.group(1))
    return number is None or number in HELD_ERRNOS


def in_use(path, exc: BaseException) -> str:
    """'PATH: in use: ... (h5py's error); <what to do>' of a file whose lock another process holds (`locked`, `held`),
    or 'PATH: its file system refuses ...' where no process holds it."""
    if not held(exc):
        return f"{path}: {LOCK_REFUSED} ({one_line(exc)}); {LOCK_REFUSED_FIX}"
    return f"{path}: {IN_USE} ({one_line(exc)}); {IN_USE_FIX}"


def permission_denied(exc: BaseException) -> bool:
    """Whether `exc` (an OSError of open or os.listdir, or h5py's error opening a file) is the file system's refusal
    to let this user read the file (EACCES, EPERM; HDF5 gives it as "errno = 13" in its text): the file may be whole
    and is never to be called damaged."""
    if not isinstance(exc, OSError):
        return False
    if exc.errno in (errno.EACCES, errno.EPERM):
        return True
    return bool(re.search(rf"errno\s*=\s*({errno.EACCES}|{errno.EPERM})\b", str(exc)))


def one_line(exc: BaseException) -> str:
    """`exc`'s message on one line (HDF5's error text may span several)."""
    return " ".join(str(exc).split())


@contextmanager
def read_h5(path, refuse):
    """h5py.File(path, "r") for the block; a DAMAGED error while opening, reading in the block or closing is raised as
    refuse(exc), the caller's error naming the file and the fix. A UserError of the block passes through."""
    try:
        with h5py.File(path, "r") as f:
            yield f
    except UserError:
        raise
    except DAMAGED as exc:
        raise refuse(exc) from None
