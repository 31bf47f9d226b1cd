"""Kernel base class and the tiled evaluator of U(x) = sum_x' Theta(x, x') grad(x') (eq. 3.5).

The paper's kernels do not mix metric components: Theta_IJ(x, x') = delta_IJ K(x, x') (eqs. 2.20-2.23), so a
kernel block is a scalar (N1, N2) matrix and the update is K @ grad with grad of shape (N2, P), P = m^2 = 9.
A full metric-NTK (e.g. an empirical NTK of a network that outputs all P components) sets
`mixes_components = True` and returns blocks (N1, P, N2, P). The evaluator never holds more than one
tile (edge min(tile, CACHE_EDGE); on a GPU, edge tile) per worker thread, so memory is bounded by the tile, not by N1 * N2.
Every kernel's block and operator first pass their point sets through `check_point_sets` (O(N n) once per call,
never per tile); apply and every operator's call pass the gradient through `check_gradient` (one O(N P) pass).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hpcflow.backend import array_module, default_threads, to_host
from hpcflow.arguments import api_integer, api_threads
from hpcflow.geometry.distance import check_point_array, point_array

#: the largest value a kernel entry may take: the flow sums each point's kernel row against gradients over up to
#: 1/eps train points, and such a sum of entries below finfo.max * eps (~4e292) stays finite
KERNEL_MAX = float(np.finfo(np.float64).max * np.finfo(np.float64).eps)
#: default upper bound on the rows and columns of one kernel tile
DEFAULT_TILE = 2048
#: tiles are further capped at this edge so that the ~20-40 in-place passes of a tile run in cache
#: (measured on the 2-core sandbox: per-entry cost at 1024^2 is 1.6x that at 512^2)
CACHE_EDGE = 512


def point_arrays(names, x, x_src):
    """(x, x_src) as arrays of homogeneous coordinates at any scale (`distance.point_array`): a PointSet gives its
    chart-normalised .points (as `fs_distance` and `hpcflow.cluster` take it), a list or other array-like its NumPy
    array, a NumPy or CuPy array itself; one set given as both stays one array (x_src is x: the kernels' exact
    diagonal), and x_src None is x (every kernel's block, operator and apply, as `fs_distance`'s z2=None)."""
    x_src = x if x_src is None else x_src
    out = tuple(point_array(name, pts) for name, pts in zip(names, (x,) if x_src is x else (x, x_src)))
    return (out[0], out[0]) if x_src is x else out


def check_point_sets(kernel, names, x, x_src):
    """(x, x_src) as arrays (`point_arrays`), after refusing, before any work, point sets a kernel cannot pair
    (`check_point_shapes`) or with a row that is no point of P^n (a nan or inf coordinate, or all coordinates 0):
    one error naming the argument and the fix. A NaN point made the relu_ntk and cosine_ntk results NaN without a
    word and the KD-trees of the others fail with SciPy's message, which names neither set; a zero row gave those two
    a value at a point that does not exist. Two passes over each set, O(N (n+1)); a set given as both x and x_src is
    read once."""
    x, x_src = point_arrays(names, x, x_src)
    check_point_shapes(kernel, names, x, x_src)
    for name, pts in zip(names, (x,) if x_src is x else (x, x_src)):
        xp = array_module(pts)
        bad = xp.flatnonzero(~xp.isfinite(pts).all(axis=1))
        if bad.size:
            raise ValueError(f"{name} has {bad.size} point(s) with a nan or inf coordinate (row {int(bad[0])} first); "
                             f"pass finite homogeneous coordinates")
        bad = xp.flatnonzero(~(pts != 0).any(axis=1))
        if bad.size:
            raise ValueError(f"{name} has {bad.size} point(s) with all coordinates 0 (row {int(bad[0])} first), no "
                             f"point of P^n; pass homogeneous coordinates, not all 0")
    return x, x_src


def check_point_shapes(kernel, names, x, x_src):
    """Refuse point sets a kernel cannot pair: one error naming the argument, the shapes or dtype and the fix.
    Points are numbers in a 2-D array (N, n+1) (`distance.check_point_array`), both sets with the same n+1; an empty
    source set is refused where the kernel is undefined on it (`Kernel.needs_sources`), else its sums are the empty
    sum, 0."""
    for name, pts in zip(names, (x, x_src)):
        check_point_array(name, pts)
    (a, b), sa, sb = names, np.shape(x), np.shape(x_src)
    if sa[1] != sb[1]:
        raise ValueError(f"{b} has shape {sb} but {a} has shape {sa}; pass both with the same number of homogeneous "
                         f"coordinates per point (points of one CP^n)")
    if sb[0] == 0 and kernel.needs_sources:
        raise ValueError(f"{b} has shape {sb}, no source points, but {kernel.needs_sources}; pass at least one "
                         f"source point")


def check_gradient(grad, n_src: int, columns: int | None = None):
    """grad_src as an array of real numbers with one row per source point (and `columns` columns, when the kernel
    mixes that many components) with finite entries, else one error naming it and the fix (a nan or inf row made
    every row it reaches nan without a word; one isfinite pass over the array).

    The flow's gradients are the packed real metric components (`hpcflow.geometry.hermitian.pack`), and every
    kernel is a real operator on them: a complex, boolean or non-numeric array is refused, not cast (a cast drops
    the imaginary part with only a ComplexWarning). Integer and float32 arrays are taken; results are float64.
    """
    grad = array_module(grad).asarray(grad)
    if grad.dtype.kind == "c":
        raise TypeError(f"grad_src has dtype {grad.dtype}; pass real numbers (float64), the packed real metric "
                        f"components; for a complex array apply the kernel to grad_src.real and grad_src.imag")
    if grad.dtype.kind not in "iuf":
        raise TypeError(f"grad_src has dtype {grad.dtype}; pass real numbers (float64), the packed real metric "
                        f"components, one row per source point")
    if grad.ndim != 2 or grad.shape[0] != n_src:
        raise ValueError(f"grad_src has shape {grad.shape}; pass one gradient row per source point, shape "
                         f"({n_src}, P)")
    if columns is not None and grad.shape[1] != columns:
        raise ValueError(f"grad_src has shape {grad.shape}; this kernel mixes the {columns} packed real metric "
                         f"components of a point, pass shape ({n_src}, {columns})")
    if not bool(array_module(grad).isfinite(grad).all()):
        bad = np.flatnonzero(~np.isfinite(to_host(grad)).all(axis=1))
        raise ValueError(f"grad_src has {bad.size} row(s) with a nan or inf entry (row {int(bad[0])} first); pass "
                         f"finite gradients, one row per source point")
    return grad


def operator_settings(tile, threads, cache_bytes):
    """(tile, threads, cache_bytes) of a kernel operator as counts (threads None: the default), or one error naming
    the one that is not: a tile of 0 or 2.5 rows is refused, not rounded, by every kernel."""
    return (api_integer("tile", tile, "an integer >= 1 (rows of a kernel tile)", lo=1), api_threads(threads),
            api_integer("cache_bytes", cache_bytes, "an integer >= 0 (0: no cached kernel matrix)", lo=0))


def _single_threaded_blas(xp):
    """Context: host BLAS on one thread (tiles are small; parallelism comes from our worker threads)."""
    if xp is not np:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def fixed_when_built(init):
    """`init` (a kernel class's __init__) that fixes the kernel when the outermost __init__ of its construction
    returns (`Kernel.__setattr__`), keeping the arguments it was built with, as the refusal's advice shows them
    (`_shown`: a repr or "...", never the argument itself), for that advice; the signature
    stays `init`'s (functools.wraps: inspect.signature of the class, which the registry and job files read)."""
    if getattr(init, "fixes_kernel", False):
        return init
    sig = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if "_building" in self.__dict__:  # a subclass's __init__ calling this one: it fixes the kernel
            return init(self, *args, **kwargs)
        object.__setattr__(self, "_building", True)
        try:
            init(self, *args, **kwargs)
        finally:
            object.__delattr__(self, "_building")
        try:
            built = sig.bind(self, *args, **kwargs).arguments
        except TypeError:
            built = {}
        # the arguments as the refusal shows them (strings), not the objects: a model passed in stays collectable
        object.__setattr__(self, "_built_with", {k: _shown(v) for k, v in list(built.items())[1:]
                                                 if sig.parameters[k].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                                                   inspect.Parameter.VAR_KEYWORD)})

    __init__.fixes_kernel = True
    return __init__


#: the private names that mark a kernel built (`fixed_when_built`): set or deleted, they would unfix it
FIXING_NAMES = ("_built_with", "_building")


def _replaceable(cls, name: str) -> bool:
    """An attribute a built kernel may still set: a private one (a cache: "_local", "_last_sources") other than
    FIXING_NAMES, or a method of its class replaced on the instance (pytest's monkeypatch of `features`)."""
    if name in FIXING_NAMES:
        return False
    return name.startswith("_") or isinstance(inspect.getattr_static(cls, name, None),
                                              (types.FunctionType, staticmethod, classmethod))


def _shown(value) -> str:
    return repr(value) if value is None or isinstance(value, (bool, int, float, str)) else "..."


class Kernel:
    """Base class: subclasses define `features` (once per point set) and `tile_block` (one tile).

    A kernel is fixed once built: its evaluation is prepared from its parameters at construction (the Gaussian's
    fitted polynomial, scale and row shift; the NTKs' range checks), so setting or deleting a parameter, a setting
    derived from them or a new public name afterwards is an AttributeError that names the kernel to build instead
    (a changed width was ignored by the polynomial while params() reported it)."""

    name = "kernel"
    mixes_components = False
    #: K(x, x') = K(x', x): the train-on-train product then evaluates each off-diagonal tile once
    symmetric = False
    #: why the kernel is undefined on an empty source set (a nearest source, an average over sources), or None:
    #: its sums over no sources are 0
    needs_sources: str | None = None

    #: private per-instance caches, name -> the callable that makes one empty (the Gaussian's thread-local tile
    #: buffers): a pickled or copied kernel gets its own empty ones (`__getstate__`), never the original's
    _caches: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = fixed_when_built(cls.__dict__["__init__"])

    @fixed_when_built
    def __init__(self):
        pass

    def __setattr__(self, name, value):
        if "_built_with" in self.__dict__ and not _replaceable(type(self), name):
            raise AttributeError(self._fixed(name, f"{name}={_shown(value)}"))
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        if "_built_with" in self.__dict__ and not _replaceable(type(self), name):
            raise AttributeError(self._fixed(name, f"{name}=..."))
        object.__delattr__(self, name)

    def __getstate__(self):
        """The kernel's attributes less its caches (`_caches`): pickle, copy.copy and copy.deepcopy take these. A
        thread-local cache cannot be pickled, and one shared by a copy would hand one kernel's buffers to the other."""
        return {k: v for k, v in self.__dict__.items() if k not in self._caches}

    def __setstate__(self, state):
        """A pickled or copied kernel as built (fixed: its attributes set past `__setattr__`) with new empty caches."""
        self.__dict__.update(state)
        self.__dict__.update({k: make() for k, make in self._caches.items()})

    def _fixed(self, name: str, wanted: str) -> str:
        """The one-line refusal of setting `name` on a built kernel: the call that builds the kernel wanted."""
        from hpcflow.kernels.registry import KERNELS, kernel_keys  # (the registry imports the kernels)

        cls = type(self).__name__
        args = [f"{k}={shown}" for k, shown in self._built_with.items() if k != name]
        registered = KERNELS.get(self.name) is type(self)
        keys = (*kernel_keys(self.name)[0], *kernel_keys(self.name)[1]) if registered else \
            tuple(k for k, p in inspect.signature(type(self)).parameters.items()
                  if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD))
        if name in keys:
            args.append(wanted)
            not_one = ""
        else:
            args += ["..."] if keys else []
            not_one = f" ({name} is not one of its parameters: {', '.join(keys) or 'it takes none'})"
        call = f"make_kernel({', '.join([repr(self.name), *args])})" if registered else f"{cls}({', '.join(args)})"
        return (f"{cls}.{name} cannot be set after the kernel is built (its evaluation is prepared from its "
                f"parameters then, so a changed value would be ignored or half-applied); build a new kernel: "
                f"{call}{not_one}")

    def features(self, x):
        """Per-point data the kernel needs, derived once from points x (N, n+1) that `check_point_sets` has taken.
        The paper's kernels are functions on P^n: features do not depend on the scale of a row's coordinates (FS
        distances; the NTKs' chart normalisation, `relu_ntk.real_features`)."""
        return x

    def tile_block(self, f1, f2):
        """Kernel block for feature rows f1, f2: (N1, N2), or (N1, P, N2, P) if mixes_components."""
        raise NotImplementedError

    def diagonal(self, f):
        """Exact K(x, x) for feature rows f, or None; overrides the tile's diagonal when x_src is x."""
        return None

    def check_features_dim(self, d: int) -> None:
        """ValueError naming the kernel's parameters where its values leave float64's range on the chart-normalised
        real features of d = 2(n+1) columns of points of P^n (the NTKs'), so that a job refuses them before any
        work; the kernels whose values stay in range for any parameters accept every d."""

    def block(self, x1, x2=None):
        """Kernel block K(x1, x2) for points x1, x2 (homogeneous coordinates, any scale): (N1, N2) or (N1, P, N2, P);
        x2 None: x1 with itself."""
        x1, x2 = check_point_sets(self, ("x1", "x2"), x1, x2)
        if x2 is x1:
            return TiledOperator(self, x1, x1, tile=max(1, x1.shape[0]), threads=1).tile_rows(
                0, x1.shape[0], 0, x1.shape[0])
        return self.tile_block(self.features(x1), self.features(x2))

    def operator(self, x, x_src, *, tile: int = DEFAULT_TILE, threads: int | None = None, cache_bytes: int = 0):
        """A callable grad_src (N_src, P) -> (N, P) float64 = sum_x' Theta(x, x') grad_src(x'), for fixed points.

        cache_bytes > 0: if the whole kernel matrix fits in that many bytes it is formed on the first call and
        reused (a flow evaluates the same points every step); otherwise memory stays bounded by the tile.
        The points and the settings are checked here, for every kernel; kernels build theirs in `_operator`.
        """
        x, x_src = check_point_sets(self, ("x", "x_src"), x, x_src)
        tile, threads, cache_bytes = operator_settings(tile, threads, cache_bytes)
        return self._operator(x, x_src, tile=tile, threads=threads, cache_bytes=cache_bytes)

    def _operator(self, x, x_src, *, tile: int, threads: int | None, cache_bytes: int):
        """The operator of `operator` for checked points and settings."""
        return TiledOperator(self, x, x_src, tile=tile, threads=threads, cache_bytes=cache_bytes)

    def apply(self, x, x_src, grad_src, *, tile: int = DEFAULT_TILE):
        """(N, P) = sum_x' Theta(x, x') grad_src(x'), evaluated tile by tile with bounded memory."""
        x, x_src = point_arrays(("x", "x_src"), x, x_src)
        check_point_shapes(self, ("x", "x_src"), x, x_src)  # operator reads the points (check_point_sets)
        check_gradient(grad_src, x_src.shape[0])
        return self.operator(x, x_src, tile=tile)(grad_src)

    def params(self) -> dict:
        """Hyperparameters (for summaries)."""
        return {}


class TiledOperator:
    """U = Theta(x, x_src) @ grad, tile by tile; row chunks run on worker threads (BLAS kept single-threaded)."""

    def __init__(self, kernel: Kernel, x, x_src, *, tile: int = DEFAULT_TILE, threads: int | None = None,
                 cache_bytes: int = 0):
        tile, threads, cache_bytes = operator_settings(tile, threads, cache_bytes)
        self.kernel = kernel
        # a CPU core's tile fits its cache (CACHE_EDGE); a GPU's is the caller's `tile`: each tile costs kernel
        # launches, so small tiles leave it idle (H200, N = 10^4: 210 tiles of edge 512 per step, launch-bound).
        # A mixing kernel's tile is (rows, P, cols, P): keep its edge in components near that edge too
        edge = CACHE_EDGE if array_module(x) is np else tile
        self.tile = max(1, min(tile, edge // 8 if kernel.mixes_components else edge))
        self.threads = default_threads() if threads is None else threads
        self.f = kernel.features(x)
        self.same = x_src is x
        self.f_src = self.f if self.same else kernel.features(x_src)
        self.n = x.shape[0]
        self.n_src = x_src.shape[0]
        self.cache_bytes = cache_bytes
        self.dense = None
        self.symmetric = bool(kernel.symmetric and self.same and not kernel.mixes_components)

    def _dense_bytes(self, p):
        return self.n * self.n_src * 8 * (p * p if self.kernel.mixes_components else 1)

    def _fill_dense(self, r0, r1):
        for c0 in range(0, self.n_src, self.tile):
            c1 = min(c0 + self.tile, self.n_src)
            if self.kernel.mixes_components:
                self.dense[r0:r1, :, c0:c1, :] = self.tile_rows(r0, r1, c0, c1)
            else:
                self.dense[r0:r1, c0:c1] = self.tile_rows(r0, r1, c0, c1)

    def _rows(self, r0, r1, grad, out):
        """out[r0:r1] = sum over column tiles of tile @ grad (float64 accumulation)."""
        out[r0:r1] = 0.0
        p = grad.shape[1]
        for c0 in range(0, self.n_src, self.tile):
            c1 = min(c0 + self.tile, self.n_src)
            b = self.tile_rows(r0, r1, c0, c1)
            if self.kernel.mixes_components:
                out[r0:r1] += (b.reshape((r1 - r0) * p, (c1 - c0) * p) @ grad[c0:c1].reshape(-1)).reshape(-1, p)
            else:
                out[r0:r1] += b @ grad[c0:c1]

    def tile_rows(self, r0, r1, c0, c1):
        """The kernel tile for target rows r0:r1 and source columns c0:c1 (exact diagonal when x_src is x)."""
        # on the array module of the features: a kernel that forms its tile with NumPy works on the CuPy backend too
        k = array_module(self.f).asarray(self.kernel.tile_block(self.f[r0:r1], self.f_src[c0:c1]))
        lo, hi = max(r0, c0), min(r1, c1)
        if self.same and lo < hi and not self.kernel.mixes_components:
            diag = self.kernel.diagonal(self.f[lo:hi])
            if diag is not None:
                idx = array_module(k).arange(lo, hi)
                k[idx - r0, idx - c0] = diag
        return k

    def __call__(self, grad_src):
        """(N, P) float64 = Theta(x, x_src) @ grad_src, grad_src (N_src, P) real (`check_gradient`)."""
        return self._product(check_gradient(grad_src, self.n_src))

    def _product(self, grad):
        xp = array_module(grad)
        p = grad.shape[1]
        dtype = getattr(self.kernel, "dtype", np.float64)
        grad = grad.astype(dtype, copy=False)  # float32 kernels: tile products in float32, sums in float64
        if self.dense is None and 0 < self._dense_bytes(p) <= self.cache_bytes:
            shape = (self.n, p, self.n_src, p) if self.kernel.mixes_components else (self.n, self.n_src)
            self.dense = xp.empty(shape, dtype=dtype)
            self._parallel(self._fill_dense, xp)
        if self.dense is not None:
            if self.kernel.mixes_components:
                out = (self.dense.reshape(self.n * p, -1) @ grad.reshape(-1)).reshape(self.n, p)
            else:
                out = self.dense @ grad
            return out.astype(np.float64, copy=False)
        if self.symmetric:
            return self._symmetric_call(grad, xp)
        out = xp.empty((self.n, p), dtype=np.float64)
        self._parallel(lambda r0, r1: self._rows(r0, r1, grad, out), xp)
        return out

    def _symmetric_call(self, grad, xp):
        """K @ grad for symmetric K(x, x): every tile pair (I, J), I <= J, evaluated once (`pair_sum`)."""
        b = self.tile
        edges = [(s, min(s + b, self.n)) for s in range(0, self.n, b)]
        pairs = [(i, j) for i in range(len(edges)) for j in range(i, len(edges))]
        return self.pair_sum(grad, pairs, edges)

    def pair_sum(self, grad, pairs, edges, tile=None):
        """Sum over tile pairs (I, J), I <= J, of U[I] += K G[J] and (I != J) U[J] += K^T G[I]: (n, P).

        Tiles are dealt to threads in a fixed round-robin order, each thread sums into its own accumulator and
        the accumulators are added in thread order, so the result is reproducible run to run. tile(i, j) gives
        the kernel tile of rows edges[i] and columns edges[j] (default: `tile_rows`).
        """
        xp = array_module(grad)
        if tile is None:
            def tile(i, j):
                return self.tile_rows(*edges[i], *edges[j])
        n_work = max(1, min(self.threads if xp is np else 1, len(pairs)))
        accs = [xp.zeros((self.n, grad.shape[1])) for _ in range(n_work)]

        def work(t):
            acc = accs[t]
            for i, j in pairs[t::n_work]:
                (r0, r1), (c0, c1) = edges[i], edges[j]
                k = tile(i, j)
                acc[r0:r1] += k @ grad[c0:c1]
                if i != j:
                    acc[c0:c1] += k.T @ grad[r0:r1]

        with _single_threaded_blas(xp):
            if n_work == 1:
                work(0)
            else:
                with ThreadPoolExecutor(max_workers=n_work) as pool:
                    list(pool.map(work, range(n_work)))
        out = accs[0]
        for a in accs[1:]:
            out += a
        return out

    def _parallel(self, work, xp):
        """work(r0, r1) for row chunks, on worker threads (BLAS single-threaded meanwhile)."""
        chunk = self.tile
        jobs = [(r0, min(r0 + chunk, self.n)) for r0 in range(0, self.n, chunk)]
        with _single_threaded_blas(xp):
            if self.threads == 1 or len(jobs) == 1 or xp is not np:
                for r0, r1 in jobs:
                    work(r0, r1)
            else:
                with ThreadPoolExecutor(max_workers=self.threads) as pool:
                    list(pool.map(lambda j: work(*j), jobs))
