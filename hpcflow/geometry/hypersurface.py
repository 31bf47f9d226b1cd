"""Calabi-Yau hypersurfaces X = {p = 0} in P^n of degree n+1: polynomial, gradient, sampling, point data.

p(z) = sum_m c_m prod_k z_k^{e_mk} over arbitrary monomials e (M, n+1) with complex coefficients c (M,).
Constructors: `fermat(dim)` (sum z_k^{n+1}), `dwork(dim, psi)` (Fermat - (n+1) psi prod z_k),
`from_monomials(monomials, coefficients)`. dim = n - 1 is the complex dimension of X.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.geometry import charts as _charts
from hpcflow.geometry.pointset import PointSet
from hpcflow.geometry.roots import line_roots

#: lines per sampling batch; fixed so that a seed gives the same points whatever N is.
LINES_PER_BATCH = 8192


@dataclass(frozen=True)
class Hypersurface:
    """A degree-(n+1) hypersurface in P^n (a Calabi-Yau (n-1)-fold)."""

    monomials: np.ndarray  # (M, n+1) int exponents
    coefficients: np.ndarray  # (M,) complex128
    name: str = "custom"
    params: tuple = ()

    def __post_init__(self):
        mon = np.asarray(self.monomials)
        coef = np.asarray(self.coefficients, dtype=np.complex128)
        if mon.ndim != 2 or mon.shape[0] == 0:
            raise ConfigError("monomials must be a non-empty (M, n+1) integer array; pass one exponent row per term")
        if coef.shape != (mon.shape[0],):
            raise ConfigError(f"coefficients has shape {coef.shape}, expected ({mon.shape[0]},): one per monomial")
        if np.any(mon < 0) or not np.issubdtype(mon.dtype, np.integer):
            raise ConfigError("monomials must hold non-negative integer exponents")
        n = mon.shape[1] - 1
        if n < 2:
            raise ConfigError(f"ambient P^{n} is too small: a Calabi-Yau hypersurface needs n >= 2 (dim >= 1)")
        degs = mon.sum(axis=1)
        if np.any(degs != n + 1):
            raise ConfigError(
                f"monomial degrees {sorted(set(degs.tolist()))} are not n+1={n + 1}: not a Calabi-Yau hypersurface of P^{n}"
            )
        object.__setattr__(self, "monomials", mon.astype(np.int64))
        object.__setattr__(self, "coefficients", coef)

    # ---- constructors -------------------------------------------------------------------------------
    @classmethod
    def fermat(cls, dim: int) -> "Hypersurface":
        """Fermat CY of complex dimension dim: sum_k z_k^{dim+2} = 0 in P^{dim+1} (dim 3 = the quintic)."""
        return cls.dwork(dim, 0.0, _name="fermat")

    @classmethod
    def dwork(cls, dim: int, psi: complex, _name: str = "dwork") -> "Hypersurface":
        """Dwork family sum_k z_k^{n+1} - (n+1) psi prod_k z_k in P^n, n = dim + 1."""
        dim = int(dim)
        if dim < 1:
            raise ConfigError(f"dim={dim} is invalid: a Calabi-Yau hypersurface needs dim >= 1 (n = dim+1 >= 2)")
        n = dim + 1
        mon = [np.eye(n + 1, dtype=np.int64)[k] * (n + 1) for k in range(n + 1)]
        coef = [1.0 + 0j] * (n + 1)
        if psi != 0:
            mon.append(np.ones(n + 1, dtype=np.int64))
            coef.append(-(n + 1) * complex(psi))
        params = (("dim", dim),) if _name == "fermat" else (("dim", dim), ("psi", str(complex(psi))))
        return cls(np.array(mon), np.array(coef), name=_name, params=params)

    @classmethod
    def from_monomials(cls, monomials, coefficients) -> "Hypersurface":
        """General hypersurface from exponent rows and complex coefficients."""
        return cls(np.asarray(monomials), np.asarray(coefficients, dtype=np.complex128), name="custom")

    # ---- basic data ---------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        """Ambient projective dimension (X in P^n)."""
        return self.monomials.shape[1] - 1

    @property
    def dim(self) -> int:
        """Complex dimension of X."""
        return self.n - 1

    @property
    def degree(self) -> int:
        return self.n + 1

    @property
    def charts(self) -> list[tuple[int, int]]:
        """All (scale index i, eliminated index j), i != j: (n+1) n charts (20 for the quintic)."""
        return [(i, j) for i in range(self.n + 1) for j in range(self.n + 1) if i != j]

    def definition(self) -> dict:
        """JSON-able definition stored in HDF5 attributes."""
        return {
            "name": self.name,
            "params": dict(self.params),
            "monomials": self.monomials.tolist(),
            "coefficients": [[c.real, c.imag] for c in self.coefficients],
        }

    def definition_json(self) -> str:
        return json.dumps(self.definition(), sort_keys=True)

    @classmethod
    def from_definition(cls, d: dict) -> "Hypersurface":
        coef = np.array([complex(re, im) for re, im in d["coefficients"]])
        return cls(np.array(d["monomials"]), coef, name=d.get("name", "custom"),
                   params=tuple(sorted(d.get("params", {}).items())))

    # ---- polynomial ---------------------------------------------------------------------------------
    def _powers(self, z):
        """z_k^e for e = 0..degree, shape (..., n+1, degree+1)."""
        pw = np.empty(z.shape + (self.degree + 1,), dtype=np.complex128)
        pw[..., 0] = 1.0
        for e in range(1, self.degree + 1):
            pw[..., e] = pw[..., e - 1] * z
        return pw

    def p(self, z):
        """p(z) for z (..., n+1)."""
        pw = self._powers(z)
        k = np.arange(self.n + 1)
        terms = np.prod(pw[..., k, self.monomials], axis=-1)  # (..., M)
        return terms @ self.coefficients

    def grad(self, z):
        """dp/dz_k (..., n+1)."""
        pw = self._powers(z)
        k = np.arange(self.n + 1)
        out = np.zeros(z.shape, dtype=np.complex128)
        for m, c in zip(self.monomials, self.coefficients):
            f = pw[..., k, m]  # (..., n+1) factors z_l^{e_l}
            for kk in np.nonzero(m)[0]:
                others = np.prod(np.delete(f, kk, axis=-1), axis=-1)
                out[..., kk] += c * m[kk] * pw[..., kk, m[kk] - 1] * others
        return out

    def residual(self, z):
        """|p(z)| / |z|^{n+1}: scale-free measure of how far z is from X."""
        return np.abs(self.p(z)) / np.linalg.norm(z, axis=-1) ** self.degree

    # ---- points -------------------------------------------------------------------------------------
    def point_set(self, points, *, chart=None) -> PointSet:
        """Geometric data (charts, Jacobians, g_FS, |Omega|^2, weights) at given homogeneous points on X.

        `chart` (N, 2) forces a chart per point (any admissible one: z_i != 0, dp/dz_j != 0); by default
        each point gets its canonical chart. Points with an ambiguous canonical chart are dropped
        (`PointSet.n_dropped`).
        """
        z = np.asarray(points, dtype=np.complex128)
        if z.ndim != 2 or z.shape[1] != self.n + 1:
            raise ConfigError(f"points must have shape (N, {self.n + 1}), got {z.shape}")
        data = _charts.point_data(self, z, chart=chart)
        return PointSet(manifold=self, **data)

    def sample(self, n_points: int, seed=None, *, chart=None, max_batches: int = 100_000) -> PointSet:
        """Shiffman-Zelditch sampling: n_points points on X, FS-distributed, with their geometric data.

        Each batch intersects LINES_PER_BATCH random lines (through two points uniform on S^{2n+1}) with X
        (n+1 roots each). With `chart=(I, J)` only points whose canonical chart is (I, J) are kept, and the
        sampler keeps drawing until n_points are found (rejection sampling, as in the paper, sec. 3.1).
        """
        n_points = int(n_points)
        if n_points <= 0:
            raise ConfigError(f"number of points N={n_points} must be positive")
        if chart is not None:
            chart = tuple(int(c) for c in chart)
            if chart not in self.charts:
                raise ConfigError(
                    f"chart {chart} does not exist on P^{self.n}: need 0 <= I, J <= {self.n} and I != J"
                )
        rng = np.random.default_rng(seed)
        parts, have, dropped = [], 0, 0
        for _ in range(max_batches):
            z = self.line_points(LINES_PER_BATCH, rng)
            ps = self.point_set(z)
            dropped += ps.n_dropped
            if chart is not None:
                ps = ps.subset(np.all(ps.chart == np.array(chart), axis=1))
            parts.append(ps)
            have += len(ps)
            if have >= n_points:
                break
        else:
            raise ConfigError(f"could not find {n_points} points in chart {chart} within {max_batches} batches")
        out = PointSet.concatenate(parts)[:n_points]
        out.n_dropped = dropped
        out.seed = seed
        return out

    def line_points(self, n_lines: int, rng) -> np.ndarray:
        """Homogeneous points (n_lines*(n+1), n+1) where random lines meet X, polished to |p|/|z|^d < 1e-12."""
        n1 = self.n + 1
        ab = rng.standard_normal((2, n_lines, 2 * n1))
        ab = (ab[..., :n1] + 1j * ab[..., n1:]) / np.sqrt(2.0)
        a, b = ab[0], ab[1]
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        t = line_roots(self, a, b)  # (n_lines, degree)
        z = a[:, None, :] + t[..., None] * b[:, None, :]
        return z.reshape(-1, n1)
