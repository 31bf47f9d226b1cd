"""Infinite-width NTK of stax.serial(Dense(W_std, b_std), Relu(), Dense(W_std, b_std)), NTK parameterisation,
and of its deeper forms with `depth` (Dense, Relu) pairs before the readout Dense.

Layer maps (neural-tangents conventions, formulas only): a Dense layer of fan-in n computes
W_std/sqrt(n) W h + b_std b with W, b ~ N(0, 1); its NNGP kernel is W_std^2 Sigma_in + b_std^2 and its
NTK W_std^2 Sigma_in + b_std^2 + W_std^2 Theta_in. On inputs x in R^d (Sigma_in = x.x'/d, Theta_in = 0):

  Sigma0 = Theta0 = W^2 x.x'/d + b^2
  ReLU (arc-cosine kernels, theta = arccos(Sigma0(x,x') / sqrt(Sigma0(x,x) Sigma0(x',x')))):
      Sigma1 = sqrt(Sigma0(x,x) Sigma0(x',x')) (sin theta + (pi - theta) cos theta) / (2 pi)
      Sigmadot = (pi - theta) / (2 pi)
  Theta = W^2 Sigma1 + b^2 + W^2 Sigmadot Theta0

On the diagonal (theta = 0): Theta(x, x) = W^2 Sigma0(x, x) + b^2. Near theta = 0 the kernel has a sqrt(1 - cos theta)
term, so rounding of cos theta (1e-16) moves it by ~1e-8 relative; the diagonal is therefore set to the closed form
whenever the operator knows that x and x' are the same point. The inputs are the real features
(Re z, Im z) of the chart-normalised homogeneous coordinates, d = 2(n+1): each point scaled so that its coordinate
of largest modulus is exactly 1 (the patch of sec. 3.1, the sampler's convention). `real_features` so scales any
representative (a unit vector, lambda z), which makes the kernel a function on P^n; the sampler's points keep
their bits. Theta_IJ = delta_IJ Theta.

Depth L > 1 repeats the (Relu, Dense) map on (Sigma, Theta) of the pre-activations, layer by layer:
  Sigma' = W^2 sqrt(Sigma(x,x) Sigma(x',x')) (sin theta + (pi - theta) cos theta) / (2 pi) + b^2,
  Theta' = Sigma' + W^2 (pi - theta) / (2 pi) Theta,   cos theta = Sigma(x,x') / sqrt(Sigma(x,x) Sigma(x',x')),
with the diagonal Sigma'(x,x) = W^2 Sigma(x,x) / 2 + b^2, Theta'(x,x) = Sigma'(x,x) + W^2 Theta(x,x) / 2.
Deeper kernels vary faster over X: on the Table 1 train points at sigma_w = 1.414, sigma_b = 0.01, depth 64 has
749 eigenvalues above 10^-3 of the largest against 44 for the best one-layer kernel (benchmarks/kernel_spectrum.py).
"""

from __future__ import annotations

import numpy as np

from hpcflow.backend import array_module
from hpcflow.arguments import api_integer, api_number
from hpcflow.geometry.charts import chart_normalised
from hpcflow.geometry.distance import check_point_array
from hpcflow.kernels.base import KERNEL_MAX, Kernel


def real_features(z):
    """(Re z, Im z) of the chart-normalised homogeneous coordinates of points z (N, n+1) at any scale
    (`charts.chart_normalised`: the coordinate of largest modulus exactly 1; the sampler's points as they are):
    (N, 2(n+1)) float64. A PointSet is taken as its points; a row of zeros, a nan/inf coordinate or an array that is
    not 2-D is refused naming z."""
    z = chart_normalised(check_point_array("z", z))
    xp = array_module(z)
    return xp.ascontiguousarray(xp.concatenate([z.real, z.imag], axis=1), dtype=np.float64)


#: the smallest layer variance Sigma(x, x) the recursion may reach: float64's smallest normal number (below it
#: cos theta = Sigma(x, x') / sqrt(Sigma(x, x) Sigma(x', x')) loses its digits, and at 0 it is 0/0)
VARIANCE_MIN = float(np.finfo(np.float64).tiny)


def relu_params(w_std, b_std, depth, d: int | None = None) -> tuple[float, float, int]:
    """(w_std, b_std, depth) of the ReLU NTK as numbers, or one TypeError/ValueError naming the first bad one; then
    `check_relu_range` on chart-normalised features of d columns (d None: its upper bound alone, which holds for
    every d)."""
    params = (api_number("w_std", w_std, "a finite weight standard deviation > 0", lo=0.0, lo_open=True),
              api_number("b_std", b_std, "a finite bias standard deviation >= 0", lo=0.0),
              api_integer("depth", depth, "an integer >= 1 (relu_ntk hidden layers)", lo=1))
    check_relu_range(*params, d=d)
    return params


def check_relu_range(w_std: float, b_std: float, depth: int, d: int | None = None) -> None:
    """ValueError naming w_std, b_std and depth where the layer recursion (module docstring) leaves float64's range
    on chart-normalised features (`real_features`) of d = 2(n+1) columns: |x|^2 = |z|^2 is between 1 (one
    coordinate of modulus 1) and n + 1 = d/2 (all of them), so Sigma0(x, x) = W^2 |x|^2/d + b^2 lies in
    [W^2/d + b^2, W^2/2 + b^2], and every layer maps it by s -> (W^2/2) s + b^2 and Theta(x, x) by
    T -> s' + (W^2/2) T. Refused: a Theta(x, x) of some layer above KERNEL_MAX at the largest Sigma0 (every entry of
    a layer is at most its diagonal: the kernels are positive semidefinite), or (d given) a Sigma(x, x) of some
    layer below VARIANCE_MIN at the smallest. The line names the deepest depth still in range, if any."""
    a, b2 = 0.5 * w_std * w_std, b_std * b_std  # (Python floats: inf on overflow, 0 on underflow, no exception)
    top = bottom = None
    s_hi = theta_hi = a + b2
    s_lo = None if d is None else w_std * w_std / d + b2
    for layer in range(depth + 1):
        if layer:
            s_hi = a * s_hi + b2
            theta_hi = s_hi + a * theta_hi
            s_lo = None if s_lo is None else a * s_lo + b2
        if not theta_hi <= KERNEL_MAX:
            top = layer
            break
        if s_lo is not None and not s_lo >= VARIANCE_MIN:
            bottom = layer
            break
    if top is None and bottom is None:
        return
    what = (f"its largest value (Theta(x, x) at |x|^2 = d/2 after {top} layer{'s' * (top != 1)}) exceeds "
            f"{KERNEL_MAX:.3g}, beyond which the flow's sums over the train points overflow float64"
            if top is not None else
            f"its smallest layer variance (Sigma(x, x) at |x|^2 = 1 on {d} features, after {bottom} "
            f"layer{'s' * (bottom != 1)}) falls below float64's smallest normal number {VARIANCE_MIN:.3g} (0/0 in "
            "the kernel)")
    layer = top if top is not None else bottom
    if layer >= 2:
        fix = f"lower depth to at most {layer - 1}, or {'lower' if top is not None else 'raise'} w_std or b_std"
    elif top is not None:
        fix = "lower w_std or b_std"
    else:
        fix = "raise w_std or b_std"
    raise ValueError(f"w_std = {w_std:g}, b_std = {b_std:g} and depth = {depth} put the relu_ntk kernel out of "
                     f"float64's range: {what}; {fix}")


def check_features(kernel: str, f1, f2):
    """(f1, f2) as 2-D arrays of finite real numbers with the same number of columns (f2 None: f1), or one
    TypeError/ValueError naming the argument and the fix. The functions `relu_ntk`, `cosine_ntk` take real features
    (N, d), not points: complex points gave complex, wrong values without a word. One pass over each array."""
    arrays = (f1,) if f2 is None or f2 is f1 else (f1, f2)
    out = []
    for name, f in zip(("f1", "f2"), arrays):
        xp = array_module(f)
        try:
            f = xp.asarray(f)
        except (TypeError, ValueError):  # a ragged list
            raise ValueError(f"{name} is not an array of features; pass a 2-D array (N, d), e.g. real_features(z) "
                             "for points z") from None
        if f.dtype.kind == "c":
            raise TypeError(f"{name} has dtype {f.dtype}; {kernel}() takes real features (N, d): pass "
                            f"real_features(z) for points z, or use the kernel object make_kernel({kernel!r}, ...), "
                            "whose block and apply take points")
        if f.dtype.kind not in "iuf":
            raise TypeError(f"{name} has dtype {f.dtype}; pass real features as numbers (N, d), e.g. "
                            "real_features(z) for points z")
        if f.ndim != 2:
            raise ValueError(f"{name} has shape {f.shape}; pass real features as a 2-D array (N, d), one row per "
                             f"point (one row: {name}[None])")
        bad = xp.flatnonzero(~xp.isfinite(f).all(axis=1))
        if bad.size:
            raise ValueError(f"{name} has {bad.size} row(s) with a nan or inf entry (row {int(bad[0])} first); pass "
                             "finite features")
        out.append(f)
    if len(out) == 2 and out[1].shape[1] != out[0].shape[1]:
        raise ValueError(f"f2 has shape {out[1].shape} but f1 has shape {out[0].shape}; pass both with the same "
                         "number of features d")
    return (out[0], out[0] if f2 is None or f2 is f1 else out[1])


def relu_ntk(f1, f2=None, *, w_std: float, b_std: float, depth: int = 1):
    """NTK (N1, N2) of (Dense-Relu)^depth-Dense at infinite width on real features f (N, d) (module docstring);
    for points z, f = real_features(z).

    f2 is f1 (or None): the diagonal is set to its closed form (theta = 0 exactly).
    """
    w_std, b_std, depth = relu_params(w_std, b_std, depth)
    same = f2 is None or f2 is f1
    f1, f2 = check_features("relu_ntk", f1, f2)
    check_relu_range(w_std, b_std, depth, d=f1.shape[1])
    h1 = relu_features(f1, w_std, b_std)
    if same:
        k = relu_tile(h1, h1, w_std, b_std, depth)
        array_module(k).fill_diagonal(k, relu_diagonal(h1, w_std, b_std, depth))
        return k
    return relu_tile(h1, relu_features(f2, w_std, b_std), w_std, b_std, depth)


def relu_diagonal(h, w_std: float, b_std: float, depth: int = 1):
    """Theta(x, x) after `depth` (Relu, Dense) layers (theta = 0 in each) from relu_features rows h."""
    w2, b2 = w_std * w_std, b_std * b_std
    sigma = h[:, -1] ** 2
    theta = sigma
    for _ in range(depth):
        sigma = 0.5 * w2 * sigma + b2
        theta = sigma + 0.5 * w2 * theta
    return theta


#: rows of h whose |h| lies outside [NORM_SAFE, 1/NORM_SAFE] are scaled by their largest entry before the norm is
#: formed: |h|^2 of a row of 1e-200 underflows to 0 (0/0 in h/|h|), of 1e200 overflows (the others keep their bits)
NORM_SAFE = 1e-140


def relu_features(f, w_std: float, b_std: float):
    """Unit vectors h/|h| and norms |h| of h = (W f / sqrt(d), b), so Sigma0(x, x') = h.h': (N, d+2).

    A row h = 0 (f = 0 with b_std = 0: every pre-activation 0) is the unit vector 0 with norm 0, so the kernel's
    entries of that point are 0 (the limit; `relu_tile`, `relu_tile_deep`). Rows of tiny or huge scale are scaled
    by their largest |entry| before the norm is formed, so |h|^2 neither underflows nor overflows."""
    xp = array_module(f)
    h = xp.concatenate([f * (w_std / np.sqrt(f.shape[1])), xp.full((f.shape[0], 1), float(b_std))], axis=1)
    norm = xp.linalg.norm(h, axis=1, keepdims=True)
    divisor = norm
    odd = ~((norm >= NORM_SAFE) & (norm <= 1.0 / NORM_SAFE))[:, 0]
    if bool(odd.any()):
        big = xp.abs(h[odd]).max(axis=1, keepdims=True)
        scaled = h[odd] / xp.where(big > 0, big, 1.0)  # largest |entry| 1, or a zero row
        n = xp.linalg.norm(scaled, axis=1, keepdims=True)  # in [1, sqrt(d + 1)], or 0
        h[odd], divisor = scaled, norm.copy()
        norm[odd], divisor[odd] = big * n, xp.where(n > 0, n, 1.0)
    return xp.ascontiguousarray(xp.concatenate([h / divisor, norm], axis=1))


def relu_tile(h1, h2, w_std: float, b_std: float, depth: int = 1):
    """Theta = b^2 + W^2 |h||h'| (sin theta + 2 (pi - theta) cos theta) / (2 pi), cos theta = h.h'/(|h||h'|).

    (W^2 Sigma1 + W^2 Sigmadot Sigma0 with Sigma0 = |h||h'| cos theta, written with one arccos per entry.)
    depth > 1: relu_tile_deep.
    """
    if depth > 1:
        return relu_tile_deep(h1, h2, w_std, b_std, depth)
    xp = array_module(h1)
    rho = h1[:, :-1] @ h2[:, :-1].T
    xp.clip(rho, -1.0, 1.0, out=rho)
    theta = xp.arccos(rho)
    xp.subtract(np.pi, theta, out=theta)
    theta *= rho
    theta *= 2.0
    xp.multiply(rho, rho, out=rho)
    xp.subtract(1.0, rho, out=rho)
    xp.sqrt(rho, out=rho)
    rho += theta  # sin theta + 2 (pi - theta) cos theta
    rho *= (w_std * w_std / (2.0 * np.pi)) * h1[:, -1:]
    rho *= h2[:, -1]
    rho += b_std * b_std
    return rho


def relu_tile_deep(h1, h2, w_std: float, b_std: float, depth: int):
    """Theta after `depth` (Relu, Dense) layers by the layer recursion of the module docstring, one arccos per
    entry and layer; the per-point norms sqrt(Sigma(x, x)) follow the diagonal recursion.

    Entries of two rows whose norms stay in [NORM_SAFE, 1/NORM_SAFE] through every layer (`plain_rows`) are formed
    by `relu_tile_deep_plain`, bit for bit as before rows of zero, tiny or huge scale were handled; the rows and
    columns of the others by `relu_tile_deep_scaled`, whose products of norms neither underflow nor overflow. An
    entry depends on its two rows alone, so such rows leave the other entries' bits as they are."""
    xp = array_module(h1)
    odd1 = ~plain_rows(h1[:, -1], w_std, b_std, depth)
    odd2 = ~plain_rows(h2[:, -1], w_std, b_std, depth)
    any1, any2 = bool(odd1.any()), bool(odd2.any())
    if not (any1 or any2):
        return relu_tile_deep_plain(h1, h2, w_std, b_std, depth)
    if bool(odd1.all()) or bool(odd2.all()):  # every entry is set below
        k = xp.empty((h1.shape[0], h2.shape[0]), dtype=np.float64)
    else:  # the odd rows stand in as copies of a plain row (same shapes, so the same products for the others)
        k = relu_tile_deep_plain(_stand_in(h1, odd1), _stand_in(h2, odd2), w_std, b_std, depth)
    if any1:
        k[odd1] = relu_tile_deep_scaled(h1[odd1], h2, w_std, b_std, depth)
    if any2:
        k[:, odd2] = relu_tile_deep_scaled(h1, h2[odd2], w_std, b_std, depth)
    return k


def plain_rows(norm, w_std: float, b_std: float, depth: int):
    """Mask of relu_features norms (N,) whose layer norms n' = sqrt(W^2 n^2 / 2 + b^2) of layers 0..depth all lie
    in [NORM_SAFE, 1/NORM_SAFE]: products of two such norms and their squares stay within float64's normal range,
    so `relu_tile_deep_plain` forms their entries to its rounding bound."""
    xp = array_module(norm)
    a = np.sqrt(0.5 * w_std * w_std)
    ok = (norm >= NORM_SAFE) & (norm <= 1.0 / NORM_SAFE)
    n = norm
    for _ in range(depth):  # (n capped where it is out already: a n stays finite)
        n = xp.hypot(a * xp.minimum(n, 1.0 / NORM_SAFE), b_std)
        ok &= (n >= NORM_SAFE) & (n <= 1.0 / NORM_SAFE)
    return ok


def _stand_in(h, odd):
    """h with its odd rows replaced by its first other row (h itself where no row is odd)."""
    if not bool(odd.any()):
        return h
    h = h.copy()
    h[odd] = h[int(array_module(h).flatnonzero(~odd)[0])]
    return h


def relu_tile_deep_plain(h1, h2, w_std: float, b_std: float, depth: int):
    """`relu_tile_deep` for rows of ordinary scale (`plain_rows`): cos theta' = Sigma'(x, x') / (n1' n2')."""
    xp = array_module(h1)
    w2, b2 = w_std * w_std, b_std * b_std
    n1, n2 = h1[:, -1:], h2[:, -1]
    rho = h1[:, :-1] @ h2[:, :-1].T  # cos theta of layer 0
    theta_k = rho * n1 * n2  # Theta0 = Sigma0
    for _ in range(depth):
        xp.clip(rho, -1.0, 1.0, out=rho)
        angle = xp.arccos(rho)
        sin = xp.sqrt(xp.maximum(1.0 - rho * rho, 0.0))
        pi_minus = np.pi - angle
        sigma = (w2 / (2.0 * np.pi)) * (n1 * n2) * (sin + pi_minus * rho) + b2
        theta_k *= (w2 / (2.0 * np.pi)) * pi_minus
        theta_k += sigma
        n1, n2 = xp.sqrt(0.5 * w2 * n1 * n1 + b2), xp.sqrt(0.5 * w2 * n2 * n2 + b2)
        rho = sigma / (n1 * n2)
    return theta_k


def relu_tile_deep_scaled(h1, h2, w_std: float, b_std: float, depth: int):
    """`relu_tile_deep` for rows of any scale, a zero row included.

    The next layer's cos theta, Sigma'(x, x') / (n1' n2') with n' = sqrt(W^2 n^2 / 2 + b^2), is formed from the
    ratios n / n' and b / n', never from the products n1 n2, n1' n2' (which underflow for rows of 1e-160 and are 0
    for a zero row): cos theta' = W^2 J(theta) / (2 pi) (n1 / n1') (n2 / n2') + (b / n1') (b / n2'). Without bias a
    zero row keeps n = 0, its ratios are 0 and its entries 0 (relu_features); with bias n' >= b > 0."""
    xp = array_module(h1)
    w2, b2 = w_std * w_std, b_std * b_std
    n1, n2 = h1[:, -1:], h2[:, -1]
    rho = h1[:, :-1] @ h2[:, :-1].T  # cos theta of layer 0
    theta_k = rho * n1 * n2  # Theta0 = Sigma0
    a = np.sqrt(0.5 * w2)
    for _ in range(depth):
        xp.clip(rho, -1.0, 1.0, out=rho)
        angle = xp.arccos(rho)
        j = xp.sqrt(xp.maximum(1.0 - rho * rho, 0.0))
        pi_minus = np.pi - angle
        j += pi_minus * rho  # J = sin theta + (pi - theta) cos theta
        theta_k *= (w2 / (2.0 * np.pi)) * pi_minus
        theta_k += (w2 / (2.0 * np.pi)) * (n1 * n2) * j + b2  # + Sigma'
        m1, m2 = xp.hypot(a * n1, b_std), xp.hypot(a * n2, b_std)
        if b2 > 0:
            r1, r2 = n1 / m1, n2 / m2
            rho = (w2 / (2.0 * np.pi)) * j * r1 * r2 + (b_std / m1) * (b_std / m2)
        else:  # n / n' = 1 / a for n > 0 (n' = a n may underflow), a zero row 0
            r1, r2 = xp.where(n1 > 0, 1.0 / a, 0.0), xp.where(n2 > 0, 1.0 / a, 0.0)
            rho = (w2 / (2.0 * np.pi)) * j * r1 * r2
        n1, n2 = m1, m2
    return theta_k


class ReluNTKKernel(Kernel):
    """ReLU NTK of Table 1 (W_std = sigma_w, b_std = sigma_b, `depth` hidden ReLU layers; the paper's: 1) on
    (Re z, Im z) of the chart-normalised points (`real_features`): the same for any scale of a point's coordinates."""

    name = "relu_ntk"
    symmetric = True

    def __init__(self, w_std: float, b_std: float, depth: int = 1):
        self.w_std, self.b_std, self.depth = relu_params(w_std, b_std, depth)

    def params(self) -> dict:
        return {"w_std": self.w_std, "b_std": self.b_std, "depth": self.depth}

    def features(self, x):
        f = real_features(x)
        check_relu_range(self.w_std, self.b_std, self.depth, d=f.shape[1])
        return relu_features(f, self.w_std, self.b_std)

    def check_features_dim(self, d: int) -> None:
        check_relu_range(self.w_std, self.b_std, self.depth, d=d)

    def tile_block(self, f1, f2):
        return relu_tile(f1, f2, self.w_std, self.b_std, self.depth)

    def diagonal(self, f):
        return relu_diagonal(f, self.w_std, self.b_std, self.depth)
