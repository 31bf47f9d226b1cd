"""Worst-case float64 rounding bounds (gamma_n = n u / (1 - n u), u = 2^-53), so that tolerances hold for any BLAS
kernel, summation order, CPU and thread count: a bound that depends only on sizes and magnitudes, not on the order."""

import numpy as np

U = np.finfo(np.float64).eps / 2


def gamma(n):
    """Higham's gamma_n: relative error bound of an n-term sum or dot product in any order."""
    return n * U / (1.0 - n * U)


def assert_product_close(got, a, b, *, a_err=0.0, extra=0.0, what="A @ B"):
    """|got - a @ b| <= 2 (gamma_k |a| |b| + a_err |b|) + extra entrywise: both sides are products of k terms in
    unknown order whose matrix factor a is known to a_err (absolute, scalar or per entry) about its exact value."""
    a = np.asarray(a)
    k = a.shape[-1]
    ref = a @ b
    bound = 2.0 * (gamma(k + 2) * (np.abs(a) @ np.abs(b)) + np.broadcast_to(a_err, a.shape) @ np.abs(b)) + extra
    excess = np.abs(got - ref) - bound
    assert np.all(excess <= 0), f"{what}: worst excess {excess.max():.3g} over bound {bound.max():.3g}"


def unit_dot_error(d):
    """Error bound of a dot product of two computed unit vectors of length d (normalisation included)."""
    return 3.0 * gamma(d + 3)


def arccos_error(c, delta):
    """Bound on |arccos(c') - arccos(c)| and |sqrt(1-c'^2) - sqrt(1-c^2)| over |c' - c| <= delta:
    the Lipschitz bound delta / sqrt(1 - (|c| + delta)^2) away from |c| = 1, the 1/2-Hoelder bound
    (pi / sqrt 2) sqrt(delta) near it (both functions have a square-root branch point at |c| = 1)."""
    s2 = 1.0 - np.minimum(np.abs(c) + delta, 1.0) ** 2
    with np.errstate(divide="ignore"):
        lip = np.where(s2 > 0, delta / np.sqrt(np.where(s2 > 0, s2, 1.0)), np.inf)
    return np.minimum(lip, np.pi / np.sqrt(2.0) * np.sqrt(delta))


def relu_ntk_entry_error(h1, h2, w_std):
    """Rounding bound of each computed ReLU NTK entry from relu_features rows (unit vector, norm):
    Theta - b^2 = W^2 |h||h'| (sqrt(1 - rho^2) + 2 (pi - arccos rho) rho) / (2 pi), rho = h.h' (unit)."""
    d = h1.shape[1] - 1
    rho = np.clip(h1[:, :-1] @ h2[:, :-1].T, -1.0, 1.0)
    delta = unit_dot_error(d)
    e = arccos_error(rho, 2 * delta)  # rho computed: the exact value lies within delta of it
    inner = e + 2.0 * (e + np.pi * delta)  # sqrt term, arccos term times |rho| <= 1, (pi - theta) times d rho
    scale = w_std * w_std / (2.0 * np.pi) * np.outer(h1[:, -1], h2[:, -1])
    return scale * (inner + 32 * U * (1.0 + 2.0 * np.pi))  # + the dozen elementwise roundings of the tile


def relu_ntk_deep_entry_error(h1, h2, w_std, b_std, depth):
    """Rounding bound of each computed entry of the depth-L ReLU NTK (hpcflow.kernels.relu_ntk's layer recursion)
    from relu_features rows, propagated layer by layer as absolute bounds e_r (cos theta), e_T (Theta) and a
    relative bound e_n (norms sqrt(Sigma(x, x))). J(rho) = sqrt(1 - rho^2) + (pi - arccos rho) rho has dJ/drho =
    pi - arccos rho, so J moves by at most pi e_r; the angle alone (Theta's factor pi - theta) has the arccos
    branch point, bounded by arccos_error."""
    c = w_std * w_std / (2.0 * np.pi)
    b2 = b_std * b_std
    d = h1.shape[1] - 1
    n1, n2 = h1[:, -1:], h2[:, -1][None, :]
    rho = np.clip(h1[:, :-1] @ h2[:, :-1].T, -1.0, 1.0)
    e_r, e_n = unit_dot_error(d), gamma(d + 4)
    t = rho * n1 * n2
    e_t = n1 * n2 * (e_r + np.abs(rho) * (2 * e_n + 3 * U))
    for _ in range(depth):
        one_minus = np.maximum(1.0 - rho * rho, 0.0)
        with np.errstate(divide="ignore"):
            e_s = np.minimum(np.where(one_minus > 0, 2 * U / np.sqrt(np.where(one_minus > 0, one_minus, 1.0)), np.inf),
                             np.sqrt(2 * U)) + 2 * U
        angle = np.arccos(rho)
        j = np.sqrt(one_minus) + (np.pi - angle) * rho
        e_j = np.pi * e_r + e_s + 8 * np.pi * U
        sigma = c * n1 * n2 * j + b2
        e_sigma = c * n1 * n2 * (e_j + (2 * e_n + 4 * U) * np.abs(j)) + U * np.abs(sigma)
        e_angle = arccos_error(rho, e_r) + 4 * np.pi * U
        t_new = sigma + c * (np.pi - angle) * t
        e_t = e_sigma + c * ((np.pi - angle) * e_t + e_angle * (np.abs(t) + e_t)) + 3 * U * np.abs(t_new)
        t = t_new
        n1, n2 = np.sqrt(0.5 * w_std ** 2 * n1 * n1 + b2), np.sqrt(0.5 * w_std ** 2 * n2 * n2 + b2)
        e_n = e_n + 3 * U
        rho = np.clip(sigma / (n1 * n2), -1.0, 1.0)
        e_r = e_sigma / (n1 * n2) + np.abs(rho) * (2 * e_n + 3 * U)
    return e_t


def fs_arccos_error(d, n):
    """Rounding bound of an FS distance d computed as arccos|<u, v>| of unit vectors in C^n (u.conj() @ v.T):
    |<u, v>| is a sum of 4n real products of unit-vector entries, amplified by 1/sin d near d = 0."""
    return arccos_error(np.cos(d), unit_dot_error(4 * n)) + 4 * U * d


def fs_distance_error(d, n=5):
    """Rounding bound of an FS distance in P^(n-1) from either evaluation path: the stable wedge form below
    STABLE_BELOW (elementwise, a few ulps absolute), else arccos of |<u, v>| (4n real products) or of
    sqrt(cos^2 d) from the n^2 projector features, whichever is worse."""
    from hpcflow.geometry.distance import STABLE_BELOW

    c2 = np.cos(d) ** 2
    dc2 = unit_dot_error(n * n)
    with np.errstate(divide="ignore", invalid="ignore"):
        dt = np.minimum(np.where(c2 > dc2, dc2 / (2 * np.sqrt(np.abs(c2 - dc2))), np.inf), np.sqrt(dc2))
    far = np.maximum(arccos_error(np.cos(d), unit_dot_error(4 * n)), arccos_error(np.cos(d), dt))
    return np.where(d < STABLE_BELOW, 64 * U, far) + 4 * U * d


def gaussian_entry_error(d, width, form="exp", poly_rtol=0.0):
    """Bound on |K_computed - K(d)| of the FS Gaussian kernel: the distance error times |dK/dd|, plus the
    polynomial fit's relative error poly_rtol and a few roundings of exp."""
    dlog = 1.0 / (2.0 * width) if form == "exp" else (d + fs_distance_error(d)) / width ** 2
    k = np.exp(-d / (2 * width)) if form == "exp" else np.exp(-d * d / (2 * width * width))
    return k * (dlog * fs_distance_error(d) * 1.01 + poly_rtol + 16 * U)
