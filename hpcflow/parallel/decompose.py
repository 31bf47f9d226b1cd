"""Shares of N items over R ranks from one divmod, computable by any rank for any rank without talking."""

from __future__ import annotations

import numpy as np


def _checked(fn: str, **given) -> None:
    """TypeError / ValueError in one line naming the argument of `fn` (counts, share) that is not an integer (Python
    or NumPy) or is out of range: n >= 0 items, size >= 1 ranks, 0 <= rank < size (a fraction, a negative rank or n
    were taken as rows)."""
    call = f"{fn}({', '.join(f'{k}={v!r}' for k, v in given.items())})"
    for name, v in given.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f"{call}: {name} is a {type(v).__name__}, not an integer; pass integers "
                            f"({', '.join(WHAT[k] for k in given)})")
    n, size, rank = given["n"], given["size"], given.get("rank", 0)
    if n < 0 or size < 1 or not 0 <= rank < size:
        bad, want = (("n", "n >= 0 items") if n < 0 else ("size", "size >= 1 ranks") if size < 1 else
                     ("rank", f"a rank in 0..{size - 1}"))
        raise ValueError(f"{call}: {bad} is out of range; pass {want}")


#: what each argument of `counts` and `share` is, for their refusals
WHAT = {"n": "items", "size": "ranks", "rank": "this rank"}


def counts(n: int, size: int) -> np.ndarray:
    """Items per rank: the first n % size ranks get one more (int64 array of length size). n >= 0 and size >= 1,
    integers (Python or NumPy); else TypeError / ValueError in one line naming the argument."""
    _checked("counts", n=n, size=size)
    q, r = divmod(int(n), int(size))
    return np.array([q + (1 if i < r else 0) for i in range(int(size))], dtype=np.int64)


def displs(cnt) -> np.ndarray:
    """Offsets of each rank's share (exclusive prefix sum of `cnt`)."""
    cnt = np.asarray(cnt, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)


def share(n: int, size: int, rank: int) -> tuple[int, int]:
    """(lo, hi): the contiguous range of items [lo, hi) of `rank` among `size` ranks, the run `counts(n, size)` and
    `displs` give it (O(1)). n, size, rank: integers (Python or NumPy) with n >= 0 and 0 <= rank < size; else
    TypeError / ValueError in one line naming the argument (a fraction, a negative rank or n were taken as rows)."""
    _checked("share", n=n, size=size, rank=rank)
    q, extra = divmod(int(n), int(size))  # the first `extra` ranks hold one item more
    lo = int(rank) * q + min(int(rank), extra)
    return lo, lo + q + (1 if rank < extra else 0)
