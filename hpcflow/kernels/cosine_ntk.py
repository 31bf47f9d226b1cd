"""NTK of the cosine (random Fourier feature) network of eq. 2.32 with only the last layer trained.

phi(x) = A/sqrt(N) sum_i a_i cos(w_i . x + b_i), a ~ N(0, s_a^2), w ~ N(0, s_w^2/d), b ~ U(-pi, pi).
Training only a gives Theta_N(x, x') = A^2/N sum_i cos(w_i.x + b_i) cos(w_i.x' + b_i) (eq. 2.33), whose
N -> infinity limit is A^2/2 exp(-|x - x'|^2 / (2 sigma^2)), sigma^2 = d / s_w^2 (eqs. 2.35, 2.37).
(The printed eq. 2.32 has cos(w_ij x_j + b_i) summed over j; the Gaussian limit 2.35 holds for the
inner product w_i . x used here.) Inputs are the real features (Re z, Im z) of the chart-normalised points
(`relu_ntk.real_features`: the coordinate of largest modulus exactly 1, whatever scale the points are given at).
Theta_IJ = delta_IJ Theta.

Normalisation. The limit integrates over R^d to (A^2/2) (2 pi d / s_w^2)^(d/2), so it is a delta-sequence
(integral 1, width -> 0 as s_w -> infinity) for A^2 = 2 (s_w / sqrt(2 pi d))^d, i.e.
    A = 2^(1/2) (s_w / sqrt(2 pi d))^(d/2)          (normalization="delta", the default).
Eq. 2.36 as printed, A = 2^(1/4) (s_w / sqrt(2 pi d))^(d/4), is the square root of that: it normalises A
instead of A^2, and its kernel integrates to 1/A_printed^2 (0.79 at s_w = 2, d = 1; 91 at s_w = 3, d = 10).
It stays available as normalization="printed"; an explicit `amplitude` overrides both.
"""

from __future__ import annotations

import numpy as np

from hpcflow.backend import array_module
from hpcflow.arguments import api_integer, api_number, api_seed
from hpcflow.kernels.base import KERNEL_MAX, Kernel
from hpcflow.kernels.relu_ntk import check_features, real_features


#: "delta": A^2 = 2 (s_w / sqrt(2 pi d))^d (integral 1); "printed": eq. 2.36 as printed (see module docstring)
NORMALIZATIONS = ("delta", "printed")


def cosine_params(sigma_w, amplitude=None, normalization: str = "delta") -> tuple[float, float | None, str]:
    """(sigma_w, amplitude, normalization) of the cosine NTK, or one TypeError/ValueError naming the first bad one."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization={normalization!r} is not one of {NORMALIZATIONS}")
    sigma_w = api_number("sigma_w", sigma_w, "a finite frequency standard deviation > 0", lo=0.0, lo_open=True)
    amplitude = None if amplitude is None else api_number(
        "amplitude", amplitude, "None (eq. 2.36) or a finite number > 0", lo=0.0, lo_open=True)
    check_cosine_range(sigma_w, amplitude, normalization)
    return sigma_w, amplitude, normalization


def check_cosine_range(sigma_w: float, amplitude: float | None, normalization: str, d: int | None = None) -> None:
    """ValueError naming sigma_w (or amplitude) where the kernel's largest value A^2/2 (at x = x'; every other entry
    is that times a Gaussian factor <= 1) is above KERNEL_MAX or below float64's smallest normal number (the kernel
    0 everywhere, a flow that never moves) on d real features. A given amplitude is checked alone (any d);
    A of the normalisation (eq. 2.36, which grows or shrinks as (sigma_w / sqrt(2 pi d))^d) only where d is given,
    in logarithms (the power itself may overflow)."""
    lo, hi = np.log(np.finfo(np.float64).tiny), np.log(KERNEL_MAX)
    if amplitude is not None:
        value, what, fix = 2.0 * np.log(amplitude) - np.log(2.0), f"amplitude = {amplitude:g}", "amplitude"
    elif d is not None:
        power = d if normalization == "delta" else d / 2.0
        value = power * (np.log(sigma_w) - 0.5 * np.log(2.0 * np.pi * d)) - (0.0 if normalization == "delta" else
                                                                             0.5 * np.log(2.0))
        what, fix = f"sigma_w = {sigma_w:g} ({normalization} normalisation, d = {d} features)", "sigma_w"
    else:
        return
    if lo <= value <= hi:
        return
    big = value > hi
    why = (f"above {KERNEL_MAX:.3g}, beyond which the flow's sums over the train points overflow" if big else
           f"below float64's smallest normal number {np.finfo(np.float64).tiny:.3g} (a kernel of 0 and subnormal "
           "numbers: the flow would not move)")
    raise ValueError(f"{what} puts the cosine_ntk kernel out of float64's range: its largest value A^2/2 = "
                     f"10^{value / np.log(10.0):.4g} is {why}; {'lower' if big else 'raise'} {fix}")


def cosine_amplitude(sigma_w: float, d: int, normalization: str = "delta") -> float:
    """A of eq. 2.36 for d real features: the delta-sequence normalisation (default) or the printed form."""
    sigma_w, _, normalization = cosine_params(sigma_w, None, normalization)
    d = api_integer("d", d, "an integer >= 1 (real features per point, 2(n+1))", lo=1)
    return _amplitude(sigma_w, d, normalization)


def _amplitude(sigma_w: float, d: int, normalization: str) -> float:
    power = d / 2.0 if normalization == "delta" else d / 4.0
    return (2.0 ** 0.5 if normalization == "delta" else 2.0 ** 0.25) * (sigma_w / np.sqrt(2.0 * np.pi * d)) ** power


def cosine_ntk(f1, f2=None, *, sigma_w: float, amplitude: float | None = None, normalization: str = "delta"):
    """Infinite-width cosine-network NTK (eq. 2.35) (N1, N2) on real features f (N, d); for points z,
    f = real_features(z); f2 None: f1 with itself."""
    sigma_w, amplitude, normalization = cosine_params(sigma_w, amplitude, normalization)
    f1, f2 = check_features("cosine_ntk", f1, f2)
    d = f1.shape[1]
    check_cosine_range(sigma_w, amplitude, normalization, d)
    return cosine_tile(f1, f2, sigma_w, _amplitude(sigma_w, d, normalization) if amplitude is None else amplitude)


def cosine_tile(f1, f2, sigma_w: float, a: float):
    """A^2/2 exp(-sigma_w^2 |f - f'|^2 / (2d)) for checked feature rows f1, f2 (N, d) and amplitude A = a."""
    xp = array_module(f1)
    d = f1.shape[1]
    sq = (xp.sum(f1 * f1, axis=1)[:, None] + xp.sum(f2 * f2, axis=1)[None, :] - 2.0 * f1 @ f2.T)
    return 0.5 * a * a * xp.exp(-0.5 * sigma_w ** 2 / d * xp.maximum(sq, 0.0))


def cosine_ntk_empirical(f1, f2=None, *, width: int, sigma_w: float, amplitude: float | None = None,
                         normalization: str = "delta", seed=0):
    """Finite-width NTK of eq. 2.33 (N1, N2) on real features f (N, d) for one draw of (w, b) with `width` hidden
    units, drawn from `seed`: an integer >= 0 (`arguments.api_seed`: 2.0 is 2; a fraction, a bool or a negative seed
    is refused naming it) or None for a fresh draw. f2 None: f1 with itself (as `cosine_ntk`)."""
    width = api_integer("width", width, "an integer >= 1 (hidden units)", lo=1)
    sigma_w, amplitude, normalization = cosine_params(sigma_w, amplitude, normalization)
    seed = None if seed is None else api_seed("seed", seed, "an integer >= 0 (of any size), or None for a fresh draw")
    f1, f2 = check_features("cosine_ntk_empirical", f1, f2)
    d = f1.shape[1]
    check_cosine_range(sigma_w, amplitude, normalization, d)
    a = _amplitude(sigma_w, d, normalization) if amplitude is None else amplitude
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, sigma_w / np.sqrt(d), size=(d, width))
    b = rng.uniform(-np.pi, np.pi, size=width)
    c1 = np.cos(f1 @ w + b)
    return a * a / width * (c1 @ (c1 if f2 is f1 else np.cos(f2 @ w + b)).T)


class CosineNTKKernel(Kernel):
    """Gaussian limit (eq. 2.35) of the last-layer cosine-network NTK, delta-normalised (or eq. 2.36 as printed)."""

    name = "cosine_ntk"
    symmetric = True

    def __init__(self, sigma_w: float, amplitude: float | None = None, normalization: str = "delta"):
        self.sigma_w, self.amplitude, self.normalization = cosine_params(sigma_w, amplitude, normalization)

    def params(self) -> dict:
        return {"sigma_w": self.sigma_w, "amplitude": self.amplitude, "normalization": self.normalization}

    def features(self, x):
        f = real_features(x)
        self.check_features_dim(f.shape[1])
        return f

    def check_features_dim(self, d: int) -> None:
        check_cosine_range(self.sigma_w, self.amplitude, self.normalization, d)

    def tile_block(self, f1, f2):
        a = _amplitude(self.sigma_w, f1.shape[1], self.normalization) if self.amplitude is None else self.amplitude
        return cosine_tile(f1, f2, self.sigma_w, a)
