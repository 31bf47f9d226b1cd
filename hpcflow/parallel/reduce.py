"""Collectives on NumPy buffers, and a correctly rounded global sum that does not depend on the rank count.

`exact_sum` makes global sums (kappa's weight sums, sigma) identical for every R and every split of the points:
each rank turns its values into a short float expansion whose terms sum exactly to its local sum (repeated
`math.fsum`), the expansions are gathered, and one `math.fsum` of all terms gives the correctly rounded total.
"""

from __future__ import annotations

import math

import numpy as np

from hpcflow.parallel.comm import resolve

#: at most this many terms of a local expansion (each captures 53 more bits; 3-4 suffice for real data)
MAX_TERMS = 40


def expansion(x) -> list[float]:
    """Floats whose exact sum equals the exact sum of `x` (non-finite values pass through as one term)."""
    vals = np.asarray(x, dtype=np.float64).reshape(-1).tolist()
    terms: list[float] = []
    for _ in range(MAX_TERMS):
        t = math.fsum(vals + [-s for s in terms]) if terms else math.fsum(vals)
        if not math.isfinite(t):
            return [t]
        if t == 0.0:
            break
        terms.append(t)
    return terms


def exact_sum(x, *, comm=None) -> float:
    """Correctly rounded sum over all ranks of the local values `x` (1-D); NaN/inf propagate."""
    c = resolve(comm)
    terms = expansion(x)
    if c.Get_size() == 1:
        return math.fsum(terms)
    return math.fsum(t for part in c.allgather(terms) for t in part)


def allgatherv(local, *, comm=None) -> np.ndarray:
    """Rows of every rank's `local` array concatenated in rank order (one Allgatherv on a contiguous buffer)."""
    c = resolve(comm)
    local = np.ascontiguousarray(local)
    if c.Get_size() == 1:
        return local.copy()
    rows = np.array(c.allgather(local.shape[0]), dtype=np.int64)
    row_size = int(np.prod(local.shape[1:], dtype=np.int64))
    out = np.empty((int(rows.sum()),) + local.shape[1:], dtype=local.dtype)
    cnt = rows * row_size
    from mpi4py import MPI

    disp = np.concatenate([[0], np.cumsum(cnt)[:-1]])
    c.Allgatherv(local, [out, cnt, disp, MPI._typedict[local.dtype.char]])
    return out


def any_true(flag: bool, *, comm=None) -> bool:
    """True on every rank when `flag` is true on any rank (one collective decision)."""
    c = resolve(comm)
    if c.Get_size() == 1:
        return bool(flag)
    buf = np.array([1 if flag else 0], dtype=np.int64)
    out = np.zeros(1, dtype=np.int64)
    from mpi4py import MPI

    c.Allreduce(buf, out, op=MPI.MAX)
    return bool(out[0])


def max_value(x: float, *, comm=None) -> float:
    """The largest `x` over all ranks."""
    c = resolve(comm)
    if c.Get_size() == 1:
        return float(x)
    from mpi4py import MPI

    out = np.zeros(1)
    c.Allreduce(np.array([float(x)]), out, op=MPI.MAX)
    return float(out[0])


def sum_array(x, *, comm=None) -> np.ndarray:
    """Element-wise sum of a float64 array over ranks (Allreduce; order-dependent at the last bit, use for counters)."""
    c = resolve(comm)
    x = np.ascontiguousarray(x, dtype=np.float64)
    if c.Get_size() == 1:
        return x.copy()
    from mpi4py import MPI

    out = np.empty_like(x)
    c.Allreduce(x, out, op=MPI.SUM)
    return out


def gather_rows(idx, rows, n: int, *, comm=None, root: int = 0):
    """On `root`: the (n, ...) array whose row idx[i] is rows[i] of some rank (two Gatherv on buffers); None elsewhere.

    Every global row must come from exactly one rank (checked on root: a missing row is an error).
    """
    c = resolve(comm)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    rows = np.ascontiguousarray(rows)
    if c.Get_size() == 1:
        all_idx, all_rows = idx, rows
    else:
        from mpi4py import MPI

        k = c.gather(idx.size, root=root)
        row_size = int(np.prod(rows.shape[1:], dtype=np.int64))
        if c.Get_rank() == root:
            k = np.asarray(k, dtype=np.int64)
            all_idx = np.empty(int(k.sum()), dtype=np.int64)
            all_rows = np.empty((int(k.sum()),) + rows.shape[1:], dtype=rows.dtype)
            d = np.concatenate([[0], np.cumsum(k)[:-1]])
            c.Gatherv(idx, [all_idx, k, d, MPI.INT64_T], root=root)
            c.Gatherv(rows, [all_rows, k * row_size, d * row_size, MPI._typedict[rows.dtype.char]], root=root)
        else:
            c.Gatherv(idx, None, root=root)
            c.Gatherv(rows, None, root=root)
            return None
    out = np.empty((int(n),) + rows.shape[1:], dtype=rows.dtype)
    seen = np.zeros(int(n), dtype=bool)
    seen[all_idx] = True
    if all_idx.size != n or not seen.all():
        raise ValueError(f"gather_rows: {int((~seen).sum())} of {n} rows missing or rows given twice")
    out[all_idx] = all_rows
    return out


def gather_row_blocks(idx, rows, n: int, *, block: int, comm=None, root: int = 0):
    """Yield (lo, hi, rows lo..hi of the global (n, ...) array on `root`, None elsewhere) for lo = 0, block, ...:
    `gather_rows` one block of global rows at a time (two Gatherv each), so root holds one block, never all n
    rows. Collective: every rank iterates to the end. n = 0 yields one empty block (0, 0, ...)."""
    c = resolve(comm)
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    rows = np.asarray(rows)
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    for lo in range(0, max(int(n), 1), int(block)):
        hi = min(lo + int(block), int(n))
        a, b = np.searchsorted(sorted_idx, [lo, hi])
        mine = order[a:b]
        yield lo, hi, gather_rows(idx[mine] - lo, rows[mine], hi - lo, comm=c, root=root)
