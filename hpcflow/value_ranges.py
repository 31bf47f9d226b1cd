"""The first value of a stored array outside its natural range, for the one-line refusal of a damaged checkpoint
(the flow's `hpcflow.checkpoint.RANGES`, the network's `hpcflow.nn.checkpoint.RANGES`)."""

from __future__ import annotations

import numpy as np


def first_fault(v, *, lo=0.0, above: bool = False, whole: bool = False, hi: tuple | None = None,
                sentinel: float | None = None) -> tuple[str, tuple] | None:
    """(what is wrong, the index of the first such value) for float64 array `v`: a value below `lo` (at or below
    where `above`; `lo` None: no bound) other than `sentinel`, above hi = (its name, its value), or not a whole
    number where `whole`, checked in that order; None where every value holds. NaN fails no comparison."""
    faults = []
    with np.errstate(invalid="ignore"):
        if lo is not None:
            low = f"not > {lo:g}" if above else "negative" if lo == 0 else f"below {lo:g}"
            bad = v <= lo if above else v < lo
            if sentinel is not None:
                low, bad = f"{low} and not {sentinel:g}", bad & (v != sentinel)
            faults.append((low, bad))
        if hi is not None:
            faults.append((f"above {hi[0]} = {hi[1]}", v > hi[1]))
        if whole:
            faults.append(("not a whole number", np.isfinite(v) & (v != np.floor(v))))
    for why, bad in faults:
        bad = np.asarray(bad)
        if bool(np.any(bad)):
            return why, np.unravel_index(int(np.argmax(bad)), v.shape)
    return None


def shown(x: float) -> str:
    """`x` as a refusal names it: a whole number without its '.0'."""
    return str(int(x)) if x.is_integer() and abs(x) < 2 ** 53 else repr(x)
