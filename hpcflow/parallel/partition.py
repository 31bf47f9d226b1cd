"""Global row indices given by the ranks: refused unless together they are each of 0..N-1 once.

N is the ranks' rows together. `check_indices` decides it for several index sets at once and alike on every
rank: one allgather of each rank's (rows, order, first, last) settles the counts, order and range; then one
Allreduce (bitwise or) of an N-bit bitmap per set (N/8 bytes: 125 kB at 10^6 rows) the coverage. With every
index in range(N) and N of them in all, full coverage means no index twice (pigeonhole). On one rank the local
checks alone say it (N strictly increasing indices in range(N) are arange(N)).
"""

from __future__ import annotations

import numpy as np

from hpcflow.parallel.comm import resolve

#: set bits of each byte value
_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], dtype=np.int64)
#: the bit of index i within its byte (np.packbits order: most significant first), by i % 8
_BIT = np.array([0x80 >> k for k in range(8)], dtype=np.uint8)


def _refuse(message: str, size: int):
    """A ValueError raised by every rank alike (`collective`: `abort_on_error` lets it through, no Abort)."""
    exc = ValueError(message)
    exc.collective = size > 1
    raise exc


def _ranks(ranks: list) -> str:
    """Rank numbers for a one-line message (the first 8, then how many more)."""
    more = f" and {len(ranks) - 8} more" if len(ranks) > 8 else ""
    return ", ".join(str(r) for r in ranks[:8]) + more


def _as_int64(idx) -> np.ndarray:
    """`idx` as int64; what does not convert (on this rank alone) is refused with the others, as out of order."""
    try:
        return np.asarray(idx, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return np.zeros((0, 0), dtype=np.int64)


def _summary(idx, n: int):
    """(rows, strictly increasing one per row, first, last) of one rank's indices of one set."""
    ordered = idx.shape == (n,) and (idx.size < 2 or bool(np.all(np.diff(idx) > 0)))
    return n, ordered, int(idx[0]) if ordered and n else 0, int(idx[-1]) if ordered and n else -1


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
    given = [None if idx is None else _as_int64(idx) for _, idx, _ in sets]
    mine = [None if idx is None else _summary(idx, n) for idx, (_, _, n) in zip(given, sets)]
    every = c.allgather(mine) if size > 1 else [mine]
    totals = []
    for k, (name, _, _) in enumerate(sets):
        col = [m[k] for m in every]
        have = [r for r, s in enumerate(col) if s is not None]
        if not have:
            continue
        if len(have) < size:
            lack = [r for r in range(size) if r not in have]
            _refuse(f"{name}: given on rank(s) {_ranks(have)} but not on {_ranks(lack)}; pass it on every rank "
                    "(the global indices of that rank's rows) or on none", size)
        total = sum(s[0] for s in col)
        for r, (n, ordered, first, last) in enumerate(col):
            where = f"{name} on rank {r}" if size > 1 else name
            if not ordered:
                _refuse(f"{where}: need {n} strictly increasing global indices, one per local row", size)
            if n and (first < 0 or last >= total):
                _refuse(f"{where}: index {first if first < 0 else last} is outside range({total}) ({total} = the "
                        f"ranks' rows together); pass global indices in 0..{total - 1}, each once over the ranks",
                        size)
        totals.append((k, total))
    if size > 1 and totals:
        hit = covered([(given[k], total) for k, total in totals], comm=c)
        for (k, total), h in zip(totals, hit):
            if h < total:
                name = sets[k][0]
                _refuse(f"{name}: the ranks' indices together hit {h} of range({total}): {total - h} duplicated "
                        f"across ranks and as many missing (as with the whole set and {name}=arange on every "
                        f"rank); give each rank the global indices of its own rows, together each of "
                        f"0..{total - 1} once, or pass the whole set on every rank without {name}", size)
    return given
