"""PointSet -> torch tensors (features, packed g_FS, |Ω|², weights) and seeded mini-batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpcflow.geometry.hermitian import pack
from hpcflow.nn._torch import require_torch, torch_dtype
from hpcflow.nn.features import point_features

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


def data_dtype(dtype):
    """The torch dtype of network data: float64 for None, a name MetricMLP takes ('float64', 'float32': `torch_dtype`,
    ConfigError naming dtype for others) or torch.float64 / torch.float32 themselves."""
    if dtype is None:
        return torch.float64
    if isinstance(dtype, torch.dtype) and dtype in (torch.float64, torch.float32):
        return dtype
    return torch_dtype(dtype)


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
