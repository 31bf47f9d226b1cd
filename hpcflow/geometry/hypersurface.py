"""Calabi-Yau hypersurfaces X = {p = 0} in P^n of degree n+1: polynomial, gradient, sampling, point data.

p(z) = sum_m c_m prod_k z_k^{e_mk} over arbitrary monomials e (M, n+1) with complex coefficients c (M,).
Constructors: `fermat(dim)` (sum z_k^{n+1}), `dwork(dim, psi)` (Fermat - (n+1) psi prod z_k),
`from_monomials(monomials, coefficients)`. dim = n - 1 is the complex dimension of X.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from numbers import Number

import numpy as np

from hpcflow.backend import array_module, to_host
from hpcflow.errors import ConfigError
from hpcflow.geometry import charts as _charts
from hpcflow.geometry.distance import check_point_array, rescale, safe_norms
from hpcflow.geometry.pointset import PointSet
from hpcflow.geometry.roots import line_roots
from hpcflow.geometry.sampling import check_chart, sample_points
from hpcflow.arguments import MAX_BATCHES, MAX_DIM, api_integer, short_repr

#: sampled points must satisfy |p(z)|/|z|^{n+1} below this
RESIDUAL_TOL = 1e-12


def _check_reduced(mon: np.ndarray, coef: np.ndarray) -> None:
    """ConfigError for two checks that are exact and cost O(M n): a monomial listed twice (p is then the sum of the two
    terms, which the definition does not show, and may cancel), and a coordinate z_k that divides every term of p
    (p = z_k^e q: X contains the hyperplane z_k = 0, with multiplicity e, and is singular where it meets q = 0, or
    along all of it when e > 1: dp vanishes there). Other singular X are not detected here (`sampling.check_placed`
    finds a dp that vanishes on a part of X)."""
    rows, count = np.unique(mon, axis=0, return_counts=True)
    if np.any(count > 1):
        e = rows[np.argmax(count > 1)]
        same = np.flatnonzero((mon == e).all(axis=1)).tolist()
        raise ConfigError(f"monomial {tuple(e.tolist())} is listed {len(same)} times (rows {same}), so p is the sum "
                          "of those terms; list each monomial once, with the sum of its coefficients")
    common = mon[coef != 0].min(axis=0)
    if np.any(common > 0):
        k = int(np.argmax(common > 0))
        e = int(common[k])
        where = f"with multiplicity {e}, on which dp vanishes" if e > 1 else "and is singular where it meets q = 0"
        raise ConfigError(f"every term of p has the factor z_{k}{f'^{e}' if e > 1 else ''} (p = z_{k}"
                          f"{f'^{e}' if e > 1 else ''} q): X contains the hyperplane z_{k} = 0 {where}, so it is not a "
                          "smooth Calabi-Yau; pass a polynomial with a term free of z_" + str(k))


#: the params each named family is built from (`Hypersurface.fermat`, `Hypersurface.dwork`)
FAMILY_PARAMS = {"fermat": ("dim",), "dwork": ("dim", "psi")}


def _check_family(X) -> None:
    """ConfigError unless X's family rebuilt from its params (FAMILY_PARAMS) has X's monomials and coefficients
    (each within 4 eps of the rebuilt one's)."""
    params = dict(X.params)
    label = f"{X.name}({', '.join(f'{k}={v}' for k, v in X.params)})"
    if sorted(params) != sorted(FAMILY_PARAMS[X.name]):
        raise ConfigError(f"{X.name} takes params {', '.join(FAMILY_PARAMS[X.name])}, not "
                          f"{', '.join(params) or 'none'}; write those, or name it custom")
    try:
        psi = complex(params.get("psi", 0))
    except (TypeError, ValueError):
        raise ConfigError(f"{label}: psi={params['psi']!r} is not a complex number") from None
    built = Hypersurface.dwork(params["dim"], psi if X.name == "dwork" else 0.0, _name=X.name, _bounded=False)
    if built.n != X.n:
        raise ConfigError(f"{label} lies in P^{built.n}, but the definition's monomials in P^{X.n}: its name and "
                          "params do not describe its polynomial; make them agree, or name it custom")
    have = {tuple(m.tolist()): c for m, c in zip(X.monomials, X.coefficients)}
    want = {tuple(m.tolist()): c for m, c in zip(built.monomials, built.coefficients)}
    for m in sorted(set(have) | set(want)):
        a, b = have.get(m, 0j), want.get(m, 0j)
        if not abs(a - b) <= 4 * np.finfo(np.float64).eps * abs(b):
            raise ConfigError(f"{label} gives monomial {m} the coefficient {b:.6g}, the definition {a:.6g}: its "
                              "name and params do not describe its polynomial; make them agree, or name it custom")


def _warn_conditioning(ps) -> None:
    """One RuntimeWarning when the charts of ps (given by the caller) leave some weight with a first-order relative
    roundoff bound above CHART_WARN_RTOL (`pointcheck.weight_error_bounds`), naming the count and the worst point."""
    import warnings

    from hpcflow.geometry.pointcheck import CHART_WARN_RTOL, weight_error_bounds

    if len(ps) == 0:
        return
    bound = weight_error_bounds(ps.manifold, ps.points, ps.chart, ps)
    over = ~(bound <= CHART_WARN_RTOL)
    if not over.any():
        return
    k = int(np.argmax(bound))
    i, j = (int(x) for x in ps.chart[k])
    z, dp = np.abs(ps.points[k]), np.abs(ps.manifold.grad(ps.points[k:k + 1])[0])
    worst = f"{bound[k]:.1e}" if np.isfinite(bound[k]) else "unbounded (g_FS singular in float64)"
    warnings.warn(f"Hypersurface.point_set: the given charts are ill-conditioned at {int(over.sum())} of {len(ps)} "
                  f"points, where the roundoff bound on the weights and eta exceeds {CHART_WARN_RTOL:.1e} relative "
                  f"(worst: point {k} in chart ({i}, {j}), bound {worst}, |z_{i}| = {z[i] / z.max():.2g} max|z|, "
                  f"|dp/dz_{j}| = {dp[j] / dp.max():.2g} max|dp/dz|); pass chart=None for the canonical charts",
                  RuntimeWarning, stacklevel=3)


@dataclass(frozen=True, eq=False)
class Hypersurface:
    """A degree-(n+1) hypersurface in P^n (a Calabi-Yau (n-1)-fold).

    Equal (and of equal hash) when their polynomials are (`polynomial_key`): the same P^n, the same monomials with
    non-zero coefficients, each with the same coefficient, in any order; name and params are labels and do not
    count (fermat(3), dwork(3, 0) and the quintic given by `from_monomials` are equal), nor do terms with
    coefficient 0. Not up to scale: p and 2p define one X but give other |Omega|^2 and weights, so compare
    unequal. Sampling one set over MPI ranks needs more: the same definition on every rank (the draws follow the
    monomials' order; `geometry.sampling.surface_key`). `monomials` and `coefficients` are the object's own
    read-only copies (a write raises ValueError): build another Hypersurface for another polynomial."""

    monomials: np.ndarray  # (M, n+1) int exponents
    coefficients: np.ndarray  # (M,) complex128
    name: str = "custom"
    params: tuple = ()

    def __post_init__(self):
        try:
            mon = np.asarray(self.monomials)
        except (TypeError, ValueError):  # a ragged list
            mon = None
        if mon is None or mon.ndim != 2 or mon.shape[0] == 0:
            raise ConfigError(f"monomials={short_repr(self.monomials)} is invalid: monomials must be a non-empty "
                              "(M, n+1) integer array; pass one exponent row per term")
        if not np.issubdtype(mon.dtype, np.integer) or np.any(mon < 0):
            raise ConfigError(f"monomials={short_repr(self.monomials)} is invalid: exponents must be non-negative "
                              "integers; pass int exponent rows, e.g. [[5, 0, 0, 0, 0], ...]")
        try:
            coef = np.asarray(self.coefficients, dtype=np.complex128)
        except (TypeError, ValueError):  # strings, None, ragged lists: not numbers
            raise ConfigError(f"coefficients={short_repr(self.coefficients)} is invalid: not complex numbers; pass "
                              "one complex (or real) coefficient per monomial") from None
        if coef.shape != (mon.shape[0],):
            raise ConfigError(f"coefficients={short_repr(self.coefficients)} has shape {coef.shape}, expected "
                              f"({mon.shape[0]},): pass one complex coefficient per monomial")
        if not np.all(np.isfinite(coef)):
            bad = int(np.flatnonzero(~np.isfinite(coef))[0])
            raise ConfigError(f"coefficient {bad} is {coef[bad]} (not finite); pass finite complex coefficients "
                              "(for dwork, a finite psi)")
        if not np.any(coef):
            raise ConfigError("coefficients are all zero (p = 0 is not a hypersurface); pass at least one non-zero "
                              "coefficient")
        n = mon.shape[1] - 1
        if n < 2:
            raise ConfigError(f"ambient P^{n} is too small: a Calabi-Yau hypersurface needs n >= 2 (dim >= 1)")
        degs = mon.sum(axis=1)
        if np.any(degs != n + 1):
            raise ConfigError(
                f"monomial degrees {sorted(set(degs.tolist()))} are not n+1={n + 1}: not a Calabi-Yau hypersurface "
                f"of P^{n}"
            )
        mon = np.array(mon, dtype=np.int64)  # own copies, read-only: the caller's arrays (or a write into these)
        coef = np.array(coef, dtype=np.complex128)  # would change p behind the checks above and the hash
        _check_reduced(mon, coef)
        mon.setflags(write=False)
        coef.setflags(write=False)
        object.__setattr__(self, "monomials", mon)
        object.__setattr__(self, "coefficients", coef)

    def __reduce__(self):
        """Pickled (and copied) as its constructor's arguments, so that the copy is checked and read-only again
        (NumPy unpickles and copies arrays writable)."""
        return type(self), (self.monomials, self.coefficients, self.name, self.params)

    # ---- constructors -------------------------------------------------------------------------------
    @classmethod
    def fermat(cls, dim: int) -> "Hypersurface":
        """Fermat CY of complex dimension dim: sum_k z_k^{dim+2} = 0 in P^{dim+1} (dim 3 = the quintic)."""
        return cls.dwork(dim, 0.0, _name="fermat")

    @classmethod
    def dwork(cls, dim: int, psi: complex, _name: str = "dwork", _bounded: bool = True) -> "Hypersurface":
        """Dwork family sum_k z_k^{n+1} - (n+1) psi prod_k z_k in P^n, n = dim + 1. (`_bounded` False: a family a
        file names rebuilt, whose dim an earlier version may have taken above MAX_DIM.)"""
        dim = api_integer("dim", dim, f"an integer in [1, {MAX_DIM}]: a Calabi-Yau hypersurface needs dim >= 1 (n = "
                          f"dim+1 >= 2), and dimensions above {MAX_DIM} are not supported (as --dim and "
                          "[geometry].dim)",
                          lo=1, hi=MAX_DIM if _bounded else None, type_error=ConfigError, value_error=ConfigError)
        if isinstance(psi, (bool, np.bool_)) or not isinstance(psi, Number):
            raise TypeError(f"psi={short_repr(psi)} is invalid; pass a number (complex, float or int), e.g. psi=0.1")
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
        return cls(monomials, coefficients, name="custom")  # converted and checked by __post_init__

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
            "coefficients": [[float(c.real), float(c.imag)] for c in self.coefficients],  # Python floats
        }

    def definition_json(self) -> str:
        return json.dumps(self.definition(), sort_keys=True)

    def polynomial_key(self) -> tuple:
        """(n, ((exponents, (Re c, Im c)), ...)) over the monomials with c != 0, sorted by exponents: equal exactly
        when the polynomials are (exact coefficients, -0.0 taken as 0.0); what `==` and `hash` compare."""
        terms = ((tuple(int(e) for e in m), (float(c.real) + 0.0, float(c.imag) + 0.0))
                 for m, c in zip(self.monomials, self.coefficients) if c != 0)
        return self.n, tuple(sorted(terms))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Hypersurface):
            return NotImplemented
        return self.polynomial_key() == other.polynomial_key()

    def __hash__(self) -> int:
        return hash(self.polynomial_key())

    @classmethod
    def from_definition(cls, d: dict) -> "Hypersurface":
        """The hypersurface a `definition` describes. A family name (fermat, dwork) whose params do not give the
        monomials and coefficients is refused (ConfigError): the name would label another polynomial."""
        coef = np.array([complex(re, im) for re, im in d["coefficients"]])
        X = cls(np.array(d["monomials"]), coef, name=d.get("name", "custom"),
                params=tuple(sorted(d.get("params", {}).items())))
        if X.name in FAMILY_PARAMS:
            _check_family(X)
        return X

    # ---- polynomial ---------------------------------------------------------------------------------
    def _powers(self, z):
        """[z^0, z^1, ..., z^degree] as contiguous arrays of z's shape (element-wise powers)."""
        pw = [None, z]
        for _ in range(2, self.degree + 1):
            pw.append(pw[-1] * z)
        return pw

    def _factor(self, pw, k, e):
        return pw[e][..., k]

    def p(self, z, pw=None):
        """p(z) for z (..., n+1)."""
        pw = self._powers(z) if pw is None else pw
        out = array_module(z).zeros(z.shape[:-1], dtype=np.complex128)
        for m, c in zip(self.monomials, self.coefficients):
            term = None
            for k in np.nonzero(m)[0]:
                f = self._factor(pw, k, m[k])
                term = f if term is None else term * f
            out += c * term if term is not None else c
        return out

    def grad(self, z, pw=None):
        """dp/dz_k (..., n+1)."""
        pw = self._powers(z) if pw is None else pw
        return self._grad_sum(pw, self.coefficients, array_module(z).zeros(z.shape, dtype=np.complex128))

    def _grad_sum(self, pw, coefficients, out):
        """out += sum_m c_m d(z^e_m)/dz_k for the power table pw of z (complex, or |z| with |c_m|: real)."""
        for m, c in zip(self.monomials, coefficients):
            nz = np.nonzero(m)[0]
            for k in nz:
                term = c * m[k]
                if m[k] > 1:
                    term = term * self._factor(pw, k, m[k] - 1)
                for l in nz:
                    if l != k:
                        term = term * self._factor(pw, l, m[l])
                out[..., k] += term
        return out

    def grad_majorant(self, z):
        """sum_m |c_m| e_mk |z^(e_m - 1_k)| (..., n+1): the sum of the moduli of dp/dz_k's terms, against which
        the roundoff of `grad` is bounded (its condition number is grad_majorant / |grad|). Real arithmetic."""
        xp = array_module(z)
        az = xp.abs(xp.asarray(z))
        return self._grad_sum(self._powers(az), np.abs(self.coefficients), xp.zeros(az.shape, dtype=np.float64))

    def term_sizes(self, z):
        """sum_m |c_m z^e_m| (...): the sum of the moduli of p's terms, against which the roundoff of `p` is bounded.
        Real arithmetic on the coordinates' moduli as contiguous rows, forming only the powers the monomials use."""
        xp = array_module(z)
        a = xp.ascontiguousarray(xp.moveaxis(xp.abs(xp.asarray(z)), -1, 0))
        powers = {}

        def power(k, e):  # |z_k|^e by squaring
            if (k, e) not in powers:
                half = a[k] if e == 1 else power(k, e // 2)
                powers[k, e] = half if e == 1 else half * half * a[k] if e % 2 else half * half
            return powers[k, e]

        out = xp.zeros(z.shape[:-1], dtype=np.float64)
        for m, c in zip(self.monomials, np.abs(self.coefficients)):
            term = None
            for k in np.nonzero(m)[0]:
                term = power(k, int(m[k])) if term is None else term * power(k, int(m[k]))
            out += c * term
        return out

    def p_and_grad(self, z):
        """(p(z), dp/dz) sharing the power table."""
        pw = self._powers(z)
        return self.p(z, pw), self.grad(z, pw)

    def residual(self, z):
        """|p(z)| / |z|^{n+1}: scale-free measure of how far z is from X, at any scale of the coordinates.

        Rows whose |z|^{n+1} lies outside `safe_norms` (p(z) and |z|^{n+1} overflow or underflow: NaN) are first
        multiplied by an exact power of two (`rescale`), which p, homogeneous, carries exactly; other rows as before.
        """
        xp = array_module(z)
        z = xp.asarray(z)
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            scale = xp.linalg.norm(z, axis=-1) ** self.degree
            out = xp.abs(self.p(z)) / scale
        lo, hi = safe_norms(scale.dtype)
        odd = ~((scale >= lo) & (scale <= hi))
        if bool(xp.any(odd)):
            w = rescale(z[odd], xp)
            out[odd] = xp.abs(self.p(w)) / xp.linalg.norm(w, axis=-1) ** self.degree
        return out

    # ---- points -------------------------------------------------------------------------------------
    def point_set(self, points, *, chart=None, only=None, jacobian: bool = True, check: bool = True,
                  _warn: bool = True) -> PointSet:
        """Geometric data (charts, Jacobians, g_FS, |Omega|^2, weights) at given homogeneous points on X.

        `chart`, an integer array (N, 2), forces a chart per point (any admissible one: z_i != 0, dp/dz_j != 0); by
        default each point gets its canonical chart. Points with an ambiguous canonical chart are dropped
        (`PointSet.n_dropped`). `only=(I, J)` keeps just the points whose canonical chart is (I, J) (integers, a
        chart of X: ConfigError otherwise, as `sample(chart=)`).
        jacobian=False: no Jacobian (None), every other field bitwise the same. A point off X (beyond roundoff),
        a chart that does not cover its point or data that are not finite is refused naming the first such row
        (`admissible.UnfitPoint`, a ConfigError); check=False, for points the caller has placed on X or filters
        itself, forms whatever the formulas give.
        Accuracy: the data do not depend on the chart in exact arithmetic, but in float64 a forced chart loses
        accuracy where it is badly conditioned at the point (|dp/dz_j| or |z_i| small against the other
        components): e.g. 6.7e-4 relative in the weights and eta at a quintic point whose |dp/dz_1| is 5e5 times
        below max_k |dp/dz_k|, while the canonical chart (|z_i| and |dp/dz_j| the largest) keeps them within
        ~1e-12 (`pointcheck.weight_error_bounds`, a first-order roundoff bound). Where that bound exceeds
        pointcheck.CHART_WARN_RTOL (sqrt(eps) ~ 1.5e-8) at some point of a forced chart, one RuntimeWarning per call
        says at how many points and at which worst (with check=True only).
        """
        only = check_chart(self, only, name="only")
        points = check_point_array("points", points, two_d=False)  # numbers: no complex() of a string
        xp = array_module(points)
        z = xp.asarray(points, dtype=np.complex128)
        if z.ndim != 2 or z.shape[1] != self.n + 1:
            raise ConfigError(f"points must have shape (N, {self.n + 1}), got {z.shape}")
        data = _charts.point_data(self, z, chart=chart, only=only, jacobian=jacobian, check=check)
        data = {k: (v if k == "n_dropped" or v is None else to_host(v)) for k, v in data.items()}
        ps = PointSet(manifold=self, **data)
        if chart is not None and check and _warn:  # (_warn=False: a file's check, which bounds the error itself)
            _warn_conditioning(ps)
        return ps

    def sample(self, n_points: int, seed=None, *, chart=None, threads: int | None = None,
               backend: str | None = None, max_batches: int = MAX_BATCHES, comm=None, layout: str = "all",
               batches_said: str | None = None) -> PointSet:
        """Shiffman-Zelditch sampling: n_points points on X, FS-distributed, with their geometric data.

        Batch k intersects LINES_PER_BATCH random lines (through two points uniform on S^{2n+1}) with X
        (n+1 roots each), drawn from its own seed stream SeedSequence(seed, spawn_key=(k,)), so the result
        depends only on the seed, not on `threads` (batches run in a thread pool; NumPy releases the GIL)
        nor on the number of MPI ranks of `comm` (ranks sample disjoint batches: `hpcflow.geometry.sampling`).
        `seed=None` (the default) draws fresh entropy from the OS, so each call gives other points (under MPI, rank
        0's entropy for every rank: one draw); the returned set's `seed` records it, and `sample(n_points,
        seed=that)` draws the same points again. `hpcflow sample --seed` defaults to 0 instead.
        With `chart=(I, J)` only points whose canonical chart is (I, J) are kept and the sampler keeps
        drawing until n_points are found (rejection sampling, sec. 3.1). Random numbers are drawn on the
        host; with backend="cupy" (or $HPCFLOW_BACKEND=cupy where `backend` is None) the root finding and point data
        run on the GPU (one thread), with its own roundoff; auto, the default, samples on the host, GPU or not, so
        that the points depend on the seed alone.
        `layout`: "all" (every rank gets the whole set), "share" (rank r gets rows decompose.share(N, R, r)),
        "root" (rank 0 gets the whole set, the others none). A bad argument (ConfigError) on any rank, or one that
        differs between ranks, is refused by every rank together (`sample_points`), before any work: so is an
        n_points in [1, 2**62] whose sampling would peak above the memory this process may use (~1 kB a quintic
        point on one rank, with the batches in flight and the interpreter: `sampling.check_sample_memory`, whose
        refusal states the largest n_points that fits; HPCFLOW_IGNORE_MEMORY_CHECK=1 skips it), and, past
        max_batches batches (at most that many are sampled) without n_points points, a ConfigError says how many
        they gave. With a chart, a ConfigError stops it sooner, once the points found in the chart bound its rate
        too low for all max_batches batches to give n_points (`sampling.chart_hopeless`: e.g. a chart that a tiny
        coefficient leaves empty), naming the chart, that rate and what to change; a chart whose rate could give
        them is stopped with a chance of at most CHART_RATE_RISK = 1e-6 over the whole sampling (for Poisson counts:
        see chart_hopeless), and the points of a run that ends are unchanged. Where that stop would come late or not
        before max_batches (few points asked for: they cannot tell a chart too poor for them from one just rich
        enough), one line on stderr says so early, with the batch of the stop or the batches left, the time at the pace
        so far and the fix (`sampling.chart_slow_note`). `batches_said`: how those refusals name max_batches (a job
        file's "[geometry].max_batches", `hpcflow sample`'s "--max-batches"; default `sampling.BATCHES_SAID`).
        """
        return sample_points(self, n_points, seed, chart=chart, threads=threads, backend=backend,
                             max_batches=max_batches, comm=comm, layout=layout, error=ConfigError,
                             batches_said=batches_said)[0]

    def line_points(self, n_lines: int, rng, *, xp=np, residuals: bool = False):
        """Points where n_lines random lines meet X ((n_lines*(n+1), n+1)), and how many were dropped.

        Roots are polished; points with |p(z)|/|z|^{n+1} >= RESIDUAL_TOL (non-converged) are dropped, as are points
        whose residual is not finite (p overflows for ill-conditioned p, e.g. Dwork at |psi| ~ 1e300; NumPy's
        warnings of such values are silenced: `sampling.check_placed` says what is wrong).
        residuals=True: also, of all n_lines*(n+1) points (host arrays), |p(z)|/|z|^{n+1} and the Newton step
        |p(z)| / (|grad p(z)| |z|), how far z lies from X to first order (large where dp vanishes on X).
        """
        n1 = self.n + 1
        ab = rng.standard_normal((2, n_lines, 2 * n1))
        ab = (ab[..., :n1] + 1j * ab[..., n1:]) / np.sqrt(2.0)
        a, b = ab[0], ab[1]
        a = xp.asarray(a / np.linalg.norm(a, axis=1, keepdims=True))
        b = xp.asarray(b / np.linalg.norm(b, axis=1, keepdims=True))
        roots = line_roots(self, a, b, grad_norms=residuals)  # (n_lines, degree)
        t, grad = roots if residuals else (roots, None)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # p overflows at ill-conditioned roots
            z = (a[:, None, :] + t[..., None] * b[:, None, :]).reshape(-1, n1)
            ap, nz = xp.abs(self.p(z)), xp.linalg.norm(z, axis=-1)
            residual = ap / nz ** self.degree  # `residual`
            newton = ap / (grad.reshape(-1) * nz) if residuals else None
        good = residual < RESIDUAL_TOL  # an inf or nan residual (p overflowed, a root not found) is dropped too
        out = z[good], int((~good).sum())
        if not residuals:
            return out
        return (*out, to_host(residual), to_host(newton))
