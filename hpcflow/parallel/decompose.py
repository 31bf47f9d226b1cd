"""Shares of N items over R ranks from one divmod, computable by any rank for any rank without talking."""

from __future__ import annotations

import numpy as np

from hpcflow.arguments import INT_LIMIT, api_integer, short_repr


def _checked(fn: str, **given) -> dict:
    """The arguments of `fn` (counts, share) as ints, taken as `arguments.api_integer` takes every whole-number
    argument (an int, a NumPy integer or a float of whole value: 10.0 is 10); else TypeError (a bool, a str, None)
    or ValueError (a fraction, nan) in one line naming the argument, and ValueError for one out of range: n >= 0
    items, size >= 1 ranks, 0 <= rank < size (a fraction, a negative rank or n were taken as rows)."""
    call = f"{fn}({', '.join(f'{k}={v!r}' for k, v in given.items())})"
    out = {}
    for name, v in given.items():
        try:
            out[name] = api_integer(name, v, f"a whole number in [0, {LIMIT_SAID}] ({WHAT[name]})")
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{call}: {exc}") from None
    n, size, rank = out["n"], out["size"], out.get("rank", 0)
    if n < 0 or size < 1 or not 0 <= rank < size:
        bad, want = (("n", "n >= 0 items") if n < 0 else ("size", "size >= 1 ranks") if size < 1 else
                     ("rank", f"a rank in 0..{size - 1}"))
        raise ValueError(f"{call}: {bad} is out of range; pass {want}")
    return out


#: INT_LIMIT as the refusals say it
LIMIT_SAID = "2**62" if INT_LIMIT == 2**62 else str(INT_LIMIT)
#: what each argument of `counts` and `share` is, for their refusals
WHAT = {"n": "items", "size": "ranks", "rank": "this rank"}


def counts(n: int, size: int) -> np.ndarray:
    """Items per rank: the first n % size ranks get one more (int64 array of length size). n >= 0 and size >= 1,
    whole numbers (an int, a NumPy integer or a float of whole value); else TypeError / ValueError in one line
    naming the argument."""
    n, size = _checked("counts", n=n, size=size).values()
    q, r = divmod(n, size)
    return np.array([q + (1 if i < r else 0) for i in range(size)], dtype=np.int64)


def displs(cnt) -> np.ndarray:
    """Offsets of each rank's share (exclusive prefix sum of `cnt`, the items per rank: a 1-D sequence or array of
    whole numbers >= 0, taken as `arguments.api_integer` takes them, such as `counts` gives); else one TypeError /
    ValueError naming cnt (a fraction was truncated, a negative count gave offsets that go back, a 2-D array was
    flattened)."""
    want = f"counts of items per rank: a 1-D sequence of whole numbers >= 0, {LIMIT_SAID} at most in all"
    if not isinstance(cnt, (list, tuple, np.ndarray)):
        raise TypeError(f"displs(cnt={short_repr(cnt)}): cnt is a {type(cnt).__name__}; pass {want}")
    a = np.asarray(cnt, dtype=object) if isinstance(cnt, (list, tuple)) else np.asarray(cnt)
    if a.ndim != 1:
        raise ValueError(f"displs(cnt={short_repr(cnt)}): cnt has shape {a.shape}, not 1-D; pass {want}")
    if a.dtype.kind in "iu" and not (a.size and (a.min() < 0 or a.max() > INT_LIMIT)):  # such as `counts` gives
        values = a
    else:
        values = _whole_counts(cnt, a, want)
    if sum(int(v) for v in values) > INT_LIMIT:  # (int64 prefix sums would wrap and go back)
        raise ValueError(f"displs(cnt={short_repr(cnt)}): the counts add up to more than {LIMIT_SAID}; pass {want}")
    return np.concatenate([[0], np.cumsum(np.asarray(values, dtype=np.int64))[:-1]]).astype(np.int64)[:len(values)]


def _whole_counts(cnt, a, want: str) -> list:
    """The entries of the 1-D array `a` (of `displs`' cnt) as ints >= 0 (`api_integer`), else its error."""
    try:
        return [api_integer(f"cnt[{i}]", v, want, lo=0) for i, v in enumerate(a.tolist())]
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"displs(cnt={short_repr(cnt)}): {exc}") from None


def share(n: int, size: int, rank: int) -> tuple[int, int]:
    """(lo, hi): the contiguous range of items [lo, hi) of `rank` among `size` ranks, the run `counts(n, size)` and
    `displs` give it (O(1)). n, size, rank: whole numbers (an int, a NumPy integer or a float of whole value: 10.0 is
    10) with n >= 0 and 0 <= rank < size; else TypeError / ValueError in one line naming the argument (a fraction,
    a negative rank or n were taken as rows)."""
    n, size, rank = _checked("share", n=n, size=size, rank=rank).values()
    q, extra = divmod(n, size)  # the first `extra` ranks hold one item more
    lo = rank * q + min(rank, extra)
    return lo, lo + q + (1 if rank < extra else 0)
