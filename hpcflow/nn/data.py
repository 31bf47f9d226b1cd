"""PointSet -> torch tensors (features, packed g_FS, |Ω|², weights) and seeded mini-batches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hpcflow.geometry.hermitian import det_hermitian, pack, unpack
from hpcflow.geometry.measures import FIXES
from hpcflow.nn._torch import require_torch, torch_dtype
from hpcflow.nn.features import positive_definite_packed, point_features

torch = require_torch()


#: what a set of network data holds (MetricData's fields)
FIELDS = ("x", "gfs", "omega2", "weights")


def check_metric_data(name: str, data) -> None:
    """TypeError naming the argument `name` unless `data` holds MetricData's fields (a PointSet does not: the fix is
    MetricData.from_pointset), before any work."""
    if all(hasattr(data, f) for f in FIELDS):
        return
    what = "None" if data is None else f"a {type(data).__name__}"
    raise TypeError(f"{name} is {what}, not network data; pass MetricData.from_pointset(ps) (hpcflow.nn.data) of a "
                    "PointSet ps of >= 2 points, e.g. from Hypersurface.sample")


#: where network data come from, named in the fix of a refused field
FROM_POINTSET = "MetricData.from_pointset(ps) of a PointSet ps (e.g. from Hypersurface.sample)"


def check_fields(name: str, data) -> None:
    """TypeError / ValueError naming `name`.field and the fix unless MetricData's fields are torch tensors of one
    real dtype (float64 or float32) on one device, with one row per point: x (N, k), gfs (N, m²), omega2 (N,) and
    weights (N,). O(1): shapes, dtypes and devices only (`rows_fault` reads the values)."""
    for f in FIELDS:
        t = getattr(data, f)
        if not torch.is_tensor(t):
            raise TypeError(f"{name}.{f} is a {type(t).__module__}.{type(t).__name__}, not a torch.Tensor; pass "
                            f"{FROM_POINTSET}")
    x = data.x
    if x.ndim != 2:
        raise ValueError(f"{name}.x has shape {tuple(x.shape)}; pass one row of features per point, shape (N, k): "
                         f"{FROM_POINTSET}")
    n = x.shape[0]
    gfs_ok = data.gfs.ndim == 2 and data.gfs.shape[0] == n and math.isqrt(data.gfs.shape[1]) ** 2 == data.gfs.shape[1]
    for f, ok in (("gfs", gfs_ok), ("omega2", tuple(data.omega2.shape) == (n,)),
                  ("weights", tuple(data.weights.shape) == (n,))):
        if not ok:
            raise ValueError(f"{name}.{f} has shape {tuple(getattr(data, f).shape)} next to {n} points (x of shape "
                             f"{tuple(x.shape)}); pass one row per point (gfs (N, m²): packed m x m g_FS, omega2 and "
                             f"weights (N,)): {FROM_POINTSET}")
    for f in FIELDS:
        t = getattr(data, f)
        got, want = (str(d).removeprefix("torch.") for d in (t.dtype, x.dtype))
        if t.dtype not in (torch.float64, torch.float32):
            raise ValueError(f"{name}.{f} is {got}, not real float64 (or float32) numbers; pass {FROM_POINTSET}, "
                             "whose x holds the real features (Re z, Im z) of the complex points")
        if t.dtype != x.dtype:
            raise ValueError(f"{name}.{f} is {got} but {name}.x is {want}; make every field one dtype: "
                             f"MetricData.from_pointset(ps, dtype='{want}')")
        if t.device != x.device:
            raise ValueError(f"{name}.{f} is on {t.device} but {name}.x on {x.device}; put every field on one "
                             f"device: MetricData.from_pointset(ps, device='{x.device}')")


def _first(bad) -> int | None:
    """The first index where boolean tensor `bad` is true, or None."""
    if not bool(bad.any()):
        return None
    return int(torch.argmax(bad.to(torch.uint8)))


def rows_fault(data, first: int = 0) -> str | None:
    """What is wrong with the values of `data` (MetricData through `check_fields`), as kernel_flow checks its sets'
    (hpcflow.flow_inputs), the first field first: 'field[k] ...; pass ...' for its first bad row, k = `first` + the
    row (its index in the set of all ranks), or None. x finite; gfs finite and positive definite (the packed form is
    Hermitian by construction: `features.positive_definite_packed`); omega2 finite and > 0 (eta = det g / omega2);
    weights finite and >= 0 (a negative weight makes kappa and sigma no means). O(N m²) on the data's device."""
    k = _first(~torch.isfinite(data.x).all(dim=1))
    if k is not None:
        return (f"x[{first + k}] holds values that are not finite; pass the features (Re z, Im z) of points on X: "
                f"{FROM_POINTSET}")
    k = _first(~torch.isfinite(data.gfs).all(dim=1))
    if k is not None:
        return f"gfs[{first + k}] holds values that are not finite; pass packed g_FS: {FROM_POINTSET}"
    k = _first(~positive_definite_packed(data.gfs))
    if k is not None:
        g = unpack(data.gfs[k:k + 1].detach().to("cpu", torch.float64).numpy())
        minors = ", ".join(f"{float(det_hermitian(g[:, :j, :j])[0]):.3g}" for j in range(1, g.shape[-1] + 1))
        return (f"gfs[{first + k}] is not positive definite (leading principal minors {minors}); pass packed Hermitian "
                f"positive definite metrics: g_FS ({FROM_POINTSET}), or a perturbation of it that keeps every leading "
                "principal minor > 0")
    for f, ok, want, fix in (("omega2", data.omega2 > 0, "a finite number > 0", "|Omega|^2 of the points "
                              "(PointSet.omega2)"),
                             ("weights", data.weights >= 0, "a finite number >= 0", FIXES["weights"])):
        a = getattr(data, f)
        k = _first(~(ok & torch.isfinite(a)))
        if k is not None:
            return f"{f}[{first + k}] = {float(a[k])} is not {want}; pass {fix}"
    return None


def weighted(data) -> bool | None:
    """Whether `data` holds a weight > 0 (None: no rows), for the check that a set's weights over all ranks are not
    all 0 (kappa and sigma are weighted means: 0/0)."""
    return None if not len(data) else bool((data.weights > 0).any())


#: the refusal of a set whose every weight is 0 (all ranks together), after its name
ALL_WEIGHTS_ZERO = ("every weight is 0; sigma and kappa are weighted means: pass at least one weight > 0 "
                    f"({FIXES['weights']})")


def data_dtype(dtype):
    """The torch dtype of network data: float64 for None, a name MetricMLP takes ('float64', 'float32': `torch_dtype`,
    ConfigError naming dtype for others) or torch.float64 / torch.float32 themselves."""
    return torch.float64 if dtype is None else torch_dtype(dtype)


def batch_count(n: int, batch_size: int) -> int:
    """Global batches of an epoch over `n` points: ceil(n / batch_size), but a last batch of one point (n % batch_size
    = 1) joins the batch before, which then holds batch_size + 1 points: σ (eq. B.11) of one point is 0, so its
    gradient is 0, yet an Adam step on it still moves the parameters through the moments. A rule of n and batch_size
    alone: the same batches at every rank count and on --resume."""
    full, rest = divmod(n, batch_size)
    return max(1, full + (rest > 1))


def batch_starts(n: int, batch_size: int) -> list:
    """The global positions where each batch of an epoch begins, and `n` last (`batch_count`): batch b holds positions
    [starts[b], starts[b + 1]) of the epoch's order."""
    return [b * batch_size for b in range(batch_count(n, batch_size))] + [n]


@dataclass
class MetricData:
    """Network inputs and geometric data of N points, as tensors of one dtype."""

    x: "torch.Tensor"  # (N, 2(n+1)) Re z, Im z of chart-normalised points
    gfs: "torch.Tensor"  # (N, m^2) packed g_FS
    omega2: "torch.Tensor"  # (N,)
    weights: "torch.Tensor"  # (N,)

    @classmethod
    def from_pointset(cls, ps, *, dtype=None, device=None) -> "MetricData":
        """Features (Re z, Im z), packed g_FS, |Ω|² and weights of a PointSet, as tensors (float64 unless `dtype`:
        'float64' or 'float32' as MetricMLP takes it, or torch.float64 / torch.float32; ConfigError otherwise)."""
        if isinstance(ps, MetricData):
            raise TypeError("from_pointset: ps is already MetricData; pass it to train / the network as it is")
        if not all(hasattr(ps, f) for f in ("points", "g_fs", "omega2", "weights")):
            raise TypeError(f"from_pointset: ps is a {type(ps).__name__}, not a point set; pass a PointSet "
                            "(e.g. Hypersurface.sample(...))")
        dtype = data_dtype(dtype)
        t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)  # noqa: E731
        return cls(t(point_features(ps.points)), t(pack(ps.g_fs)), t(ps.omega2), t(ps.weights))

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, idx) -> "MetricData":
        return MetricData(self.x[idx], self.gfs[idx], self.omega2[idx], self.weights[idx])

    def batches(self, batch_size: int, generator):
        """Shuffled mini-batches (the last one may be smaller, or one larger: `batch_count`), order from a seeded
        torch.Generator.

        The data are permuted once per epoch and the batches are contiguous slices (views) of that copy, which
        saves four gathers per optimiser step.
        """
        perm = torch.randperm(len(self), generator=generator, device="cpu").to(self.x.device)
        shuffled = self[perm]
        starts = batch_starts(len(self), batch_size)
        for start, end in zip(starts, starts[1:]):
            yield shuffled[start:end]
