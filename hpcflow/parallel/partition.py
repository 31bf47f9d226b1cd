"""Global row indices given by the ranks: refused unless together they are each of 0..N-1 once.

N is the ranks' rows together. `check_indices` decides it for several index sets at once and alike on every
rank: one allgather of each rank's (rows, fault, first, last) settles the counts, order and range; then one
Allreduce (bitwise or) of an N-bit bitmap per set (N/8 bytes: 125 kB at 10^6 rows) the coverage. With every
index in range(N) and N of them in all, full coverage means no index twice (pigeonhole). On one rank the local
checks alone say it (N strictly increasing indices in range(N) are arange(N)). Indices are integers, or floats of
integral value (2.0 is 2, as `arguments.api_integer` takes counts); fractions, masks and other kinds are refused.
"""

from __future__ import annotations

import numpy as np

from hpcflow.arguments import INT_LIMIT
from hpcflow.parallel.comm import refuse_alike, resolve

#: set bits of each byte value
_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)
#: the bit of index i within its byte (np.packbits order: most significant first), by i % 8
_BIT = np.array([0x80 >> k for k in range(8)], dtype=np.uint8)


def rank_list(ranks: list) -> str:
    """Rank numbers for a one-line message (the first 8, then how many more)."""
    more = f" and {len(ranks) - 8} more" if len(ranks) > 8 else ""
    return ", ".join(str(r) for r in ranks[:8]) + more


def given_on_some(name: str, given: list, fix: str) -> str | None:
    """The complaint about an argument given (given[r] True) on some ranks but not on the others, or None."""
    have = [r for r, g in enumerate(given) if g]
    if not have or len(have) == len(given):
        return None
    lack = [r for r, g in enumerate(given) if not g]
    return f"{name}: given on rank(s) {rank_list(have)} but not on {rank_list(lack)}; {fix}"


def as_indices(idx) -> tuple[np.ndarray, str | None]:
    """(`idx` as int64, None) or (empty, what is wrong). Integers, or floats of integral value (2.0 is 2, as
    `arguments.api_integer` takes counts); a fractional or non-finite float, a boolean mask or any other kind is
    refused, never truncated or cast."""
    try:
        a = np.asarray(idx)
    except (TypeError, ValueError):
        a = np.asarray(None)
    bad = np.zeros((0, 0), dtype=np.int64)
    if a.dtype.kind == "b":
        return bad, "a boolean array is a mask, not indices; pass np.flatnonzero(mask)"
    if a.dtype.kind == "f":
        flat = a.reshape(-1)
        frac = ~(np.isfinite(flat) & (flat == np.floor(flat)))
        if frac.any():
            return bad, f"index {float(flat[frac][0])!r} is not a whole number; pass integer global indices"
    elif a.dtype.kind not in "iu":
        return bad, f"indices of dtype {a.dtype} are not integers; pass integer global indices"
    if a.size and max(abs(float(a.min())), float(a.max())) > INT_LIMIT:
        return bad, "an index is beyond +-2**62; pass global indices of the set's rows"
    return a.astype(np.int64), None


def _summary(idx, fault, n: int):
    """(rows, what is wrong or None, first, last) of one rank's indices of one set."""
    if fault is None and not (idx.shape == (n,) and (idx.size < 2 or bool(np.all(np.diff(idx) > 0)))):
        fault = f"need {n} strictly increasing global indices, one per local row"
    ok = fault is None and n
    return n, fault, int(idx[0]) if ok else 0, int(idx[-1]) if ok else -1


def bitmap(idx, n: int) -> np.ndarray:
    """The n-bit bitmap (np.packbits order) of strictly increasing indices `idx` in range(n), built per byte."""
    out = np.zeros((n + 7) // 8, dtype=np.uint8)
    if idx.size:
        byte = idx >> 3
        bit = _BIT[idx & 7]
        starts = np.flatnonzero(np.concatenate([[True], byte[1:] != byte[:-1]]))
        out[byte[starts]] = np.bitwise_or.reduceat(bit, starts)
    return out


def covered(sets, *, comm=None) -> list[int]:
    """For each (idx, n) of `sets` (strictly increasing indices in range(n)): how many of range(n) the ranks'
    indices hit together; one Allreduce of the sets' bitmaps."""
    c = resolve(comm)
    maps = [bitmap(idx, n) for idx, n in sets]
    buf = np.concatenate(maps) if maps else np.zeros(0, dtype=np.uint8)
    if c.Get_size() > 1:
        from mpi4py import MPI

        out = np.empty_like(buf)
        c.Allreduce(buf, out, op=MPI.BOR)
        buf = out
    ends = np.cumsum([m.size for m in maps], dtype=np.int64)
    return [int(_POPCOUNT[buf[e - m.size:e]].sum()) for m, e in zip(maps, ends)]


def check_indices(sets, *, comm=None) -> list:
    """For each (name, idx or None, local rows) of `sets`: idx as int64, or None where no rank gave one.

    A ValueError naming the set, raised by every rank together, refuses indices given on some ranks only, not
    strictly increasing one per local row, outside range(N), or not each of range(N) once over the ranks.
    """
    c = resolve(comm)
    size = c.Get_size()
    converted = [None if idx is None else as_indices(idx) for _, idx, _ in sets]
    given = [None if conv is None else conv[0] for conv in converted]
    mine = [None if conv is None else _summary(*conv, n) for conv, (_, _, n) in zip(converted, sets)]
    every = c.allgather(mine) if size > 1 else [mine]
    totals = []
    for k, (name, _, _) in enumerate(sets):
        col = [m[k] for m in every]
        if all(s is None for s in col):
            continue
        uneven = given_on_some(name, [s is not None for s in col], "pass it on every rank (the global indices of "
                               "that rank's rows) or on none")
        if uneven:
            refuse_alike(uneven, comm=c)
        total = sum(s[0] for s in col)
        for r, (n, fault, first, last) in enumerate(col):
            where = f"{name} on rank {r}" if size > 1 else name
            if fault:
                refuse_alike(f"{where}: {fault}", comm=c)
            if n and (first < 0 or last >= total):
                refuse_alike(f"{where}: index {first if first < 0 else last} is outside range({total}) ({total} = "
                             f"the ranks' rows together); pass global indices in 0..{total - 1}, each once over the "
                             "ranks", comm=c)
        totals.append((k, total))
    if size > 1 and totals:
        hit = covered([(given[k], total) for k, total in totals], comm=c)
        for (k, total), h in zip(totals, hit):
            if h < total:
                name = sets[k][0]
                refuse_alike(f"{name}: the ranks' indices together hit {h} of range({total}): {total - h} "
                             f"duplicated across ranks and as many missing (as with the whole set and {name}=arange "
                             f"on every rank); give each rank the global indices of its own rows, together each of "
                             f"0..{total - 1} once, or pass the whole set on every rank without {name}", comm=c)
    return given
