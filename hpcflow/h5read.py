"""Opening an HDF5 file for reading when it may be damaged (cut short, overwritten, a partial copy): h5py's errors
for such a file become the caller's one-line UserError, here alone."""

from __future__ import annotations

from contextlib import contextmanager

import h5py

from hpcflow.errors import UserError

#: what h5py raises opening or reading a damaged file: HDF5's errors come as OSError or RuntimeError, an object it
#: cannot decode as KeyError, a datatype or dataspace it cannot map as ValueError or TypeError
DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError)


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
