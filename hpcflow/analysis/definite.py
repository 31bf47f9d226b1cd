"""The mark of a network whose metric is not positive definite at validation points after its last epoch.

σ there uses the signed det g and can look better than any healthy network's (README, "Finite networks"), and `hpcflow
tune` prunes such a trial as "not_positive_definite"; the runs table (a run's row, a study's best trial's), the sigma
histories (legend, printed line) and Fig. 4 (titles, printed lines, report caption) carry this mark beside its σ, so
that its gain is not read as a healthy one. The count is nn.h5 `history/val_not_positive_definite` at the last epoch
(summary.json `val_not_positive_definite_final`; checkpoint.pt `train.history.val_not_positive_definite`).
"""

from __future__ import annotations

import numbers


def _count(value) -> int | None:
    """`value` as a whole count (an integer, or a float holding one), None otherwise (bool, NaN, text, None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        return int(value) if float(value).is_integer() else None
    except (OverflowError, ValueError):
        return None


def not_positive_definite(count, total=None) -> str:
    """'metric not positive definite at K of N validation points: sigma uses the signed det g' for a count K > 0
    of the last epoch (N: the run's validation points, left out where unknown); '' for 0, for -1 (an epoch of a
    checkpoint written before the count: not counted) and for anything that is no count."""
    k, n = _count(count), _count(total)
    if k is None or k <= 0:
        return ""
    of = f" of {n}" if n is not None and n >= k else ""
    return f"metric not positive definite at {k}{of} validation points: sigma uses the signed det g"
