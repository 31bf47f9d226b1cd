"""Shares of N items over R ranks from one divmod, computable by any rank for any rank without talking."""

from __future__ import annotations

import numpy as np


def counts(n: int, size: int) -> np.ndarray:
    """Items per rank: the first n % size ranks get one more (int64 array of length size)."""
    q, r = divmod(int(n), int(size))
    return np.array([q + (1 if i < r else 0) for i in range(int(size))], dtype=np.int64)


def displs(cnt) -> np.ndarray:
    """Offsets of each rank's share (exclusive prefix sum of `cnt`)."""
    cnt = np.asarray(cnt, dtype=np.int64)
    return np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)


def share(n: int, size: int, rank: int) -> tuple[int, int]:
    """(lo, hi): the contiguous range of items [lo, hi) of `rank` among `size` ranks."""
    c = counts(n, size)
    lo = int(c[:rank].sum())
    return lo, lo + int(c[rank])
