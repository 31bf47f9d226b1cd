"""Safe atomic file writes: a fresh temporary file in the destination directory, then a rename over the target.

The temporary is created with O_CREAT | O_EXCL | O_NOFOLLOW under a random name and written through that one
descriptor (never reopened by name), so a symlink planted at the final or temporary name cannot redirect the
write; the target is replaced only after flush + fsync, so a crash leaves either the old file or the new one.
With replace=False the complete file is placed only where no file of that name exists by then (a hard link, which
the kernel refuses over any existing name), so of two writers racing for one new name the second fails and the
first one's file stays.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
from contextlib import contextmanager

from hpcflow.errors import WRITE_FIXES, WriteFailed

_FLAGS = os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

#: prefix of temporary names; a leftover `.NAME.tmp-*` beside NAME is debris of an interrupted write
TMP_MARK = ".tmp-"
#: NAME_MAX where the file system does not say (POSIX pathconf unavailable): Linux's and most file systems' 255
NAME_MAX = 255


def name_max(directory: str) -> int:
    """The longest file name, in bytes, that `directory` (or its nearest existing ancestor) takes (PC_NAME_MAX)."""
    d = os.path.abspath(directory or ".")
    while not os.path.isdir(d) and os.path.dirname(d) != d:
        d = os.path.dirname(d)
    try:
        return int(os.pathconf(d, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):  # no pathconf (Windows), a name the platform does not know
        return NAME_MAX


def _tmp_name(path: str) -> str:
    """`.NAME.tmp-<16 hex>` beside `path`, NAME cut short (at a character) where the whole would exceed the directory's
    NAME_MAX bytes: the random part alone keeps it unique, the leading dot and TMP_MARK keep it debris (`is_debris`)."""
    head, tail = os.path.split(path)
    end = f"{TMP_MARK}{secrets.token_hex(8)}"
    room = name_max(head) - len(os.fsencode("." + end))
    while len(os.fsencode(tail)) > room:
        tail = tail[:-1]
    return os.path.join(head, f".{tail}{end}")


#: the random part of a temporary's name (`_tmp_name`)
_RANDOM = re.compile(r"[0-9a-f]{16}")
#: bytes a name cut at a character boundary may fall short of NAME_MAX (a UTF-8 character is at most 4)
_CUT_SLACK = 3


def temporaries_of(directory: str, name: str) -> list:
    """The entries of `directory` that are temporaries of writes of file `name`: `.NAME.tmp-<16 hex>`, or, where the
    whole would exceed the directory's NAME_MAX, NAME cut short to fit (`_tmp_name`)."""
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    limit = name_max(directory)
    found = []
    for entry in entries:
        head, mark, random = entry.rpartition(TMP_MARK)
        if not (mark and head.startswith(".") and _RANDOM.fullmatch(random)):
            continue
        stem = head[1:]
        if stem == name or (stem and name.startswith(stem) and len(os.fsencode(entry)) >= limit - _CUT_SLACK):
            found.append(entry)
    return found


def link_target(path: str) -> str:
    """The file a symbolic link at `path` leads to, through every link on the way (os.path.realpath); `path` itself
    where it is no link."""
    return os.path.realpath(path) if os.path.islink(path) else path


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory or ".", os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: os.link errors of a file system without hard links (vfat, some FUSE and SMB mounts): place by O_EXCL instead
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV, errno.EMLINK}
_RESERVE = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _place_new(tmp: str, path: str) -> None:
    """Give the complete temporary the name `path` only if nothing has that name (FileExistsError otherwise).

    A hard link (of the temporary's name itself, never a symlink's target) fails atomically over any existing name,
    a dangling symlink too; then the temporary's name goes. Without hard links: the name is reserved by an empty
    file created with O_EXCL and the temporary renamed onto it (a reader may see the empty file for that moment; a
    second writer still finds the name taken)."""
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise
    except (OSError, NotImplementedError) as exc:
        if isinstance(exc, OSError) and exc.errno not in _NO_HARD_LINKS:
            raise
        os.close(os.open(path, _RESERVE, 0o644))
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(path)  # the empty file that reserved the name
            raise
        return
    os.unlink(tmp)


def write_failure(exc: BaseException) -> OSError | None:
    """The OSError with an errno of WRITE_FIXES (ENOSPC, EDQUOT, EFBIG, EIO, EROFS) that `exc` is, or was raised from or
    while handling, else None: h5py passes on the OSError of its file object's write, torch.save raises a
    RuntimeError while handling it."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno in WRITE_FIXES:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class WriteDenied(WriteFailed, PermissionError):
    """A write of an output file that permissions refuse (EACCES, EPERM: its directory made read-only, the file or
    the directory made immutable with chattr +i while the run went on): exit status 5, said as any write failure
    (the earlier file of that name is kept whole). `denied`: the file or directory whose permissions refused it (by
    default the file's directory)."""

    def __init__(self, errno_, strerror, filename, denied: str | None = None):
        super().__init__(errno_, strerror, filename)
        self.denied = denied or os.path.dirname(os.path.abspath(filename))

    def __reduce__(self):  # (pickled across ranks and processes with its `denied`)
        return type(self), (self.errno, self.strerror, self.filename, self.denied)

    @property
    def fix(self) -> str:
        if self.errno == errno.EPERM:  # chattr +i (or +a) refuses even root; EACCES is the permissions alone
            return f"make {self.denied} writable again (its permissions; chattr -i {self.denied} if made immutable)"
        return f"make {self.denied} writable again (its permissions)"


class DirectoryGone(WriteFailed):
    """A write of an output file whose directory was removed or moved away (renamed) while the run went on (ENOENT,
    ENOTDIR of the write's own calls, the directory no longer there): exit status 5, a reason outside the program, as
    any write failure. `gone`: the outermost directory on the file's path that is missing now (the run's --out where
    that was removed, though the file lay in a folder under it); `said`: how the message names it (a command says
    "--out DIR" for its output directory)."""

    def __init__(self, errno_, strerror, filename, gone: str | None = None, said: str | None = None):
        super().__init__(errno_, strerror, filename)
        self.gone = gone or missing_directory(filename)
        self.said = said or f"directory {self.gone}"

    def __reduce__(self):  # (pickled across ranks and processes with its `gone` and `said`)
        return type(self), (self.errno, self.strerror, self.filename, self.gone, self.said)

    def __str__(self):
        return (f"{self.said} was removed or moved while the run was going, so {self.filename} could not be written; "
                f"{self.advice or self.fix + ', then run it again'}")

    @property
    def fix(self) -> str:
        return f"move it back to {self.gone} if it was moved, or choose an --out that stays"


def missing_directory(path: str) -> str | None:
    """The outermost directory on the path of file `path` that does not exist (as a directory) now, None where its
    directory does: a run's --out removed or renamed while a file under it was written."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(directory):
        return None
    while not os.path.isdir(os.path.dirname(directory)) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)
    return directory


def denied_by(path: str) -> str:
    """The file or directory whose permissions refuse a write of `path` by a rename over it: its directory where this
    process may not write there (or the directory is immutable), else `path` itself where it exists and may not be
    written (immutable, chattr +i), else the directory."""
    directory = os.path.dirname(path) or os.curdir
    if not os.access(directory, os.W_OK | os.X_OK):
        return directory
    if os.path.lexists(path) and not os.access(path, os.W_OK, follow_symlinks=False):
        return path
    return directory


def _said_as_write_failed(exc: BaseException, path: str, tmp: str | None = None) -> None:
    """Raise WriteFailed naming `path` when `exc` is a write failure (`write_failure`), WriteDenied when it is a
    permission error (EACCES, EPERM) of the write's own calls on `path` or its temporary `tmp`, DirectoryGone when
    such a call found no directory (ENOENT, ENOTDIR) as that directory was removed or moved away; else return."""
    if isinstance(exc, WriteFailed):
        return
    failed = write_failure(exc)
    if failed is not None:
        raise WriteFailed(failed.errno, failed.strerror or os.strerror(failed.errno), path) from exc
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR)
            and {exc.filename, getattr(exc, "filename2", None)} & {path, tmp}):
        gone = missing_directory(path)
        if gone is not None:
            raise DirectoryGone(exc.errno, exc.strerror or os.strerror(exc.errno), path, gone) from exc
    if (isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM)
            and {exc.filename, getattr(exc, "filename2", None)} & {path, tmp}):
        raise WriteDenied(exc.errno, exc.strerror or os.strerror(exc.errno), path, denied_by(path)) from exc


@contextmanager
def atomic_file(path, mode: str = "wb", *, encoding: str | None = None, replace: bool = True, follow: bool = False):
    """Yield a file object on a new temporary next to `path`; on success fsync and rename it onto `path`.

    mode "wb" (binary, readable too, as h5py.File(fh, "w") needs) or "w" (text, `encoding` default UTF-8).
    replace=False: FileExistsError if `path` exists when the file is complete (`_place_new`), nothing replaced.
    follow=True (with replace, for a file the user named and asked to overwrite): where `path` is a symbolic link,
    the file replaced is the one it leads to (`link_target`), the temporary beside it, and the link stays; by
    default a link at `path` is replaced itself (a link planted among a run's files never redirects the write).
    On any error the temporary is removed and `path` is untouched; a write failure (`write_failure`) is raised as
    WriteFailed naming `path`, a permission error of its creation or rename (EACCES, EPERM) as WriteDenied.
    """
    path = os.fspath(path)
    if mode not in ("wb", "w"):
        raise ValueError(f"mode={mode!r}: use 'wb' or 'w'")
    if follow and replace:
        path = link_target(path)
    tmp = _tmp_name(path)
    try:
        fd = os.open(tmp, _FLAGS, 0o644)
    except OSError as exc:  # no inode left (ENOSPC), the inode quota (EDQUOT), a directory made read-only
        _said_as_write_failed(exc, path, tmp)
        raise
    try:
        text = mode == "w"
        with os.fdopen(fd, "w" if text else "w+b", encoding=(encoding or "utf-8") if text else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _place_new(tmp, path)
        _fsync_dir(os.path.dirname(path))
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:  # gone; or not removable now (EIO): debris the next run in that directory removes
            pass
        _said_as_write_failed(exc, path, tmp)
        raise
