"""Atomic file writes: write to a temporary name in the same directory, then rename over the target.

An interrupted or failed write never leaves a half-written file under the final name, and never touches an
existing file there until the new one is complete.
"""

from __future__ import annotations

import os
from contextlib import contextmanager


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; on success rename it to `path`, on failure remove it."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
