"""The Gaussian kernel tile's element-wise passes (eq. 3.6 by polynomial) as one loop compiled by Numba.

NumPy evaluates K = P(q)^(2^k), q = tan(d/4) from c = cos^2 d, in ~35 passes over a tile (3 sqrt, a division,
2 deg Horner passes, k squarings), each streaming the tile through the cache; one compiled loop keeps an entry
in registers from c to K (measured 3x fewer ns per tile entry on the 2-core sandbox; BENCHMARKS.md). The
arithmetic is the NumPy path's, operation for operation, with fused multiply-adds in the Horner steps (IEEE sqrt
and division are exact roundings either way), so the two agree to a few ulps of P; the k squarings K = P^(2^k)
multiply that by 2^k, as exp(-d/2w) multiplies a rounding of its argument by d/2w (measured on 1500 quintic points,
largest difference in ulps of K: 1 and 3 at w = 30 and 1, k = 0; 12 for "gauss" at w = 1, k = 3; 109, 1.7e-14
relative, at w = 1/30, k = 5). Numba is optional: without it (or on a device array) the NumPy path runs.
"""

from __future__ import annotations

import functools

import numpy as np

#: largest polynomial degree the compiled loop takes (coefficients above the fitted degree are zero)
MAX_DEGREE = 24
#: no reassociation or reciprocal approximations: a vector lane and the scalar remainder round alike, so an
#: entry's value does not depend on its position in the tile (tiles of other shapes give the same K)
FASTMATH = {"contract", "nnan", "ninf", "nsz"}
#: the kernel entries of a run (all of them: every rank's, every flow's of a scan) from which engine "auto" takes the
#: compiled loop where the run says them (`engine_for`). Numba's start costs a fresh process 0.28-0.45 s of CPU
#: (0.44-0.69 s wall at load average ~4 on the 2-core sandbox): its import (0.12-0.21 s) and the loop loaded from
#: its on-disk cache (cache=True, which hits: no compilation, 1.0 s more without it; 0.16-0.24 s, mostly Numba's
#: target context importing its registries). The loop saves ~6 ns of CPU a kernel entry (a streamed train and test
#: operator with their products, HPCFLOW_THREADS=1, N = 3000-6000 quintic points: 11.5-13.7 ns with the NumPy
#: passes, 5.4-8.6 with the loop; more on small operators, 37 against 21 ns at N = 1000), so it repays its start
#: from ~0.3 s / 6 ns = 5e7 entries. CPU time is compared (more threads share the entries, not the start), on the
#: whole run's entries, so that every rank, at any rank count, takes the same engine. A resume that raises the steps
#: may carry them over the threshold: `hpcflow run --resume` keeps the engine its checkpoint records (attribute engine,
#: `hpcflow.experiments.flow_job.resumed_engine`) in place of "auto", so the steps it adds run as those before
AUTO_NUMBA_ENTRIES = 5e7


@functools.lru_cache(maxsize=1)
def _numba_import() -> tuple[str | None, str | None]:
    """(version, None) where Numba imports; else (None, why: None where no numba package is installed, else the
    exception its import raised, "Type: message" in one line)."""
    try:
        import numba
    except Exception as exc:  # noqa: BLE001 - ImportError, or a Numba built for another NumPy / LLVM
        import importlib.util

        missing = isinstance(exc, ModuleNotFoundError) and exc.name == "numba"
        try:
            missing = missing or importlib.util.find_spec("numba") is None
        except (ImportError, ValueError):  # a broken entry in sys.modules
            pass
        return None, None if missing else f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return str(numba.__version__), None


def numba_version() -> str | None:
    """The installed Numba's version, or None when it cannot be imported (`numba_unusable` says why)."""
    return _numba_import()[0]


def numba_import_error() -> str | None:
    """The error of an installed Numba's failed import (a version or LLVM error), "Type: message" in one line; None
    where Numba imports or no numba package is installed."""
    return None if numba_version() is not None else _numba_import()[1]


#: the fix of an installed Numba whose import fails (`numba_import_error`)
NUMBA_REINSTALL = "reinstall it to match this NumPy (pip install --force-reinstall numba)"


def numba_unusable() -> str | None:
    """Why Numba cannot run the compiled loop, as the fix a refusal names, or None where it imports: not installed
    ("needs the numba package; pip install numba"), or installed but failing its import (a version or LLVM error:
    the exception's one line, and a reinstall)."""
    if numba_version() is not None:
        return None
    failed = numba_import_error()
    if failed is None:
        return "needs the numba package; pip install numba"
    return f"needs Numba, which is installed but failed to import ({failed}); {NUMBA_REINSTALL}"


@functools.lru_cache(maxsize=1)
def _compiled():
    import numba

    @numba.njit(nogil=True, fastmath=FASTMATH, boundscheck=False, error_model="numpy", cache=True)
    def gaussian_poly(a, c, squarings):  # pragma: no cover - runs compiled
        n, m = a.shape
        r2 = 1.4142135623730951  # sqrt(2), as np.sqrt(2.0) in the NumPy path
        (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21,
         c22, c23, c24) = (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11], c[12],
                           c[13], c[14], c[15], c[16], c[17], c[18], c[19], c[20], c[21], c[22], c[23], c[24])
        for i in range(n):
            row = a[i]
            for j in range(m):
                x = row[j]
                x = 0.0 if x < 0.0 else x  # clip c = cos^2 d to [0, 1]
                x = 1.0 if x > 1.0 else x
                t = np.sqrt(x)  # cos d
                q = np.sqrt(1.0 - t) / (np.sqrt(1.0 + t) + r2)  # tan(d/4)
                p = c24
                p = p * q + c23
                p = p * q + c22
                p = p * q + c21
                p = p * q + c20
                p = p * q + c19
                p = p * q + c18
                p = p * q + c17
                p = p * q + c16
                p = p * q + c15
                p = p * q + c14
                p = p * q + c13
                p = p * q + c12
                p = p * q + c11
                p = p * q + c10
                p = p * q + c9
                p = p * q + c8
                p = p * q + c7
                p = p * q + c6
                p = p * q + c5
                p = p * q + c4
                p = p * q + c3
                p = p * q + c2
                p = p * q + c1
                p = p * q + c0
                row[j] = p
            for _ in range(squarings):
                for j in range(m):
                    row[j] = row[j] * row[j]

    return gaussian_poly


def engine_for(entries: float | None, engine: str = "auto") -> str:
    """The engine to build a Gaussian kernel with for a run of `entries` kernel entries in all: "numpy" for "auto"
    (or None) where they are known and below AUTO_NUMBA_ENTRIES (Numba's start would cost more than its loop saves;
    Numba is then not even imported), else `engine` as given ("auto": the loop where Numba is installed)."""
    engine = engine or "auto"
    if engine == "auto" and entries is not None and entries < AUTO_NUMBA_ENTRIES:
        return "numpy"
    return engine


def padded(coef) -> np.ndarray:
    """Power-series coefficients (low to high) padded with zeros to MAX_DEGREE + 1 entries."""
    coef = np.asarray(coef, dtype=np.float64)
    if coef.size > MAX_DEGREE + 1:
        raise ValueError(f"polynomial degree {coef.size - 1} exceeds the compiled loop's {MAX_DEGREE}")
    out = np.zeros(MAX_DEGREE + 1)
    out[:coef.size] = coef
    return out


def gaussian_poly(a: np.ndarray, coef: np.ndarray, squarings: int) -> np.ndarray:
    """In place: a = c = cos^2 d (float64, C-contiguous rows) -> K = P(tan(d/4))^(2^squarings); returns a.

    `coef` is `padded(...)` of the fitted polynomial. The caller checks `numba_version()` first.
    """
    _compiled()(a, coef, int(squarings))
    return a
