"""σ at float64 round-off: a σ measure (eq. B.11) too small to be told from 0 in float64, whose gain σ_0 / σ is
then the rounding's, not the flow's (a flow run far past its convergence: σ_train 1.5e-16, gain 2.4e15).

For a metric whose η = det g / |Ω|^2 equals κ at every point (σ exactly 0), float64 computes each η_i with a
relative error |δ_i| <= P u (u = 2^-53; P = POINT_ULPS units for one point's small determinant and quotient);
κ = Σ w η / Σ w, two N-term sums in any order (Higham's γ_N = N u / (1 - N u) each), then carries
|δ_κ| <= P u + 2 γ_N; each |1 - η_i / κ| is at most |δ_i| + |δ_κ| + u (the division), and σ's own weighted mean
of such values adds only a relative error. A σ at or below `roundoff_sigma(N)` = 2 γ_N + (2 P + 1) u is therefore
what rounding alone gives (3.4e-13 for N = 1500 points, against σ of 1e-3 and more for any flow the paper
reports)."""

from __future__ import annotations

import math

#: the unit round-off of float64 (half its machine epsilon)
U = 2.0 ** -53
#: units of round-off allowed for one point's η (its metric's small determinant and the quotient by |Ω|^2)
POINT_ULPS = 16
#: the mark of such a σ (and of the gain divided by it)
ROUNDOFF = "at float64 round-off"


def roundoff_note(sigma) -> str:
    """What a gain whose last σ is at round-off says beside it, in the runs table and Table 1 alike:
    'σ 1.5e-16 at float64 round-off'."""
    return f"σ {sigma:.2g} {ROUNDOFF}"


def roundoff_sigma(n: int) -> float:
    """The largest σ that float64 rounding alone gives over `n` points (module docstring): 2 γ_n + (2 P + 1) u."""
    n = max(int(n), 1)
    return 2.0 * n * U / (1.0 - n * U) + (2 * POINT_ULPS + 1) * U


def at_roundoff(sigma, n) -> bool:
    """Whether `sigma` (a σ over `n` points) is a finite number from 0 to `roundoff_sigma(n)`; False where either is
    not a number (a summary without it)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (sigma, n))
    return numbers and n >= 1 and math.isfinite(sigma) and 0 <= sigma <= roundoff_sigma(n)
