"""Whole sets versus shares: whether every rank holds the same rows, and the rows of all ranks on root.

A call that takes "this rank's rows" cannot see whether a caller passed its share of a set or the whole set on
every rank (the default layout of `Hypersurface.sample`). `identical_on_all` tells them apart exactly with two
small collectives: the ranks' row counts are allgathered and, only where they are all equal, a blake2b digest
of each rank's arrays' bytes (dtype and shape included). `gather_to_root` puts every rank's rows on root in
rank order (one Gatherv of packed rows, `hpcflow.parallel.redistribute.pack_rows`), e.g. to write a set held in
shares as one file.
"""

from __future__ import annotations

import hashlib

import numpy as np

from hpcflow.parallel.comm import resolve
from hpcflow.parallel.decompose import displs
from hpcflow.parallel.redistribute import pack_rows, unpack_rows
from hpcflow.parallel.reduce import gather_rows


def fingerprint(arrays) -> tuple[int, str]:
    """(rows of the first array, blake2b hex digest of every array's dtype, shape and bytes)."""
    h = hashlib.blake2b(digest_size=32)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a)
    return int(np.shape(arrays[0])[0]), h.hexdigest()


def identical_on_all(arrays, *, comm=None) -> bool:
    """True on every rank when every rank holds bitwise the same `arrays` (row counts are compared first, so
    shares of unequal size are not hashed); True on one rank."""
    c = resolve(comm)
    if c.Get_size() == 1:
        return True
    if len(set(c.allgather(int(np.shape(arrays[0])[0])))) > 1:
        return False
    return len(set(c.allgather(fingerprint(arrays)))) == 1


def gather_to_root(arrays, *, comm=None, root: int = 0) -> list | None:
    """On `root`: each of `arrays` with the rows of every rank concatenated in rank order; None elsewhere.
    The arrays of one rank share their first axis; the bytes arrive unchanged. Where only root holds rows (e.g.
    layout "root"), root returns its own arrays and nothing moves."""
    c = resolve(comm)
    counts = np.array(c.allgather(int(np.shape(arrays[0])[0])), dtype=np.int64)
    if counts.sum() == counts[root]:
        return list(arrays) if c.Get_rank() == root else None
    packed, layout = pack_rows(arrays)
    lo = int(displs(counts)[c.Get_rank()])
    rows = gather_rows(np.arange(lo, lo + packed.shape[0]), packed, int(counts.sum()), comm=c, root=root)
    return None if rows is None else unpack_rows(rows, layout)
