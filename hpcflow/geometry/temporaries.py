"""The temporaries of PointSet writes (`hpcflow sample --out FILE`, `PointSet.save`): a write killed before its rename
(SIGKILL, the out-of-memory killer, a node that went down) leaves `.FILE.tmp-<16 hex>` beside FILE, as large as the
set, which no later write removed. The next write of FILE removes them, never a live writer's.

Every writer holds a shared flock on the directory for the whole write, its temporary's creation included
(`writing`); before that it removes the temporaries of its own file name (`hpcflow.atomic.temporaries_of`) only
where it gets the directory's lock exclusively at once: no writer of the directory is live, so every such temporary
is debris. With a live writer there, or where the file system refuses flock, nothing is removed (the next write does
it). Temporaries of other names are never touched: run directories and analysis outputs remove their own
(`hpcflow.jobs.output`, `hpcflow.analysis.owned`).
"""

from __future__ import annotations

import contextlib
import os

from hpcflow.atomic import temporaries_of


@contextlib.contextmanager
def writing(path: str):
    """While PointSet file `path` (the name its temporary is made beside) is written: the directory's shared lock,
    after the removal of the debris of earlier writes of that name where no writer is live (module docstring)."""
    try:
        import fcntl
    except ImportError:  # (no flock: nothing removed, nothing held)
        yield
        return
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it (or the file system refuses flock): its temporary stays
            pass
        else:
            for entry in temporaries_of(directory, os.path.basename(path)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, entry))
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_SH)  # (from the exclusive one: a sweep of another writer waits for this one)
        yield
    finally:
        os.close(fd)
