"""Safe atomic file writes: a fresh temporary file in the destination directory, then a rename over the target.

The temporary is created with O_CREAT | O_EXCL | O_NOFOLLOW under a random name and written through that one
descriptor (never reopened by name), so a symlink planted at the final or temporary name cannot redirect the
write; the target is replaced only after flush + fsync, so a crash leaves either the old file or the new one.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager

_FLAGS = os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

#: prefix of temporary names; a leftover `.NAME.tmp-*` beside NAME is debris of an interrupted write
TMP_MARK = ".tmp-"


def _tmp_name(path: str) -> str:
    head, tail = os.path.split(path)
    return os.path.join(head, f".{tail}{TMP_MARK}{secrets.token_hex(8)}")


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


@contextmanager
def atomic_file(path, mode: str = "wb", *, encoding: str | None = None):
    """Yield a file object on a new temporary next to `path`; on success fsync and rename it onto `path`.

    mode "wb" (binary, readable too, as h5py.File(fh, "w") needs) or "w" (text, `encoding` default UTF-8).
    On any error the temporary is removed and `path` is untouched.
    """
    path = os.fspath(path)
    if mode not in ("wb", "w"):
        raise ValueError(f"mode={mode!r}: use 'wb' or 'w'")
    tmp = _tmp_name(path)
    fd = os.open(tmp, _FLAGS, 0o644)
    try:
        text = mode == "w"
        with os.fdopen(fd, "w" if text else "w+b", encoding=(encoding or "utf-8") if text else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(os.path.dirname(path))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
