"""Data parallelism: one network replicated on R ranks, each holding a shard of the points (issue: MPI nn).

Every rank keeps rows [lo, hi) (`hpcflow.parallel.decompose.share`) of the global train and validation sets,
computes the gradient of its rows of each global batch, and one Allreduce of a flat float64 buffer (the
parameter gradients plus a few scalars: the batch loss and the stop flags) gives every rank the gradient
of the global batch, so every rank applies the same optimiser step. Global sums that decide reported
figures (σ, the epoch loss) use `hpcflow.parallel.reduce.exact_sum`, so they do not depend on R.
On one rank every function here does nothing extra.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from hpcflow.nn._torch import require_torch
from hpcflow.parallel.comm import resolve
from hpcflow.parallel.decompose import share
from hpcflow.parallel.reduce import allgatherv, exact_sum

torch = require_torch()


def _size(comm) -> int:
    return 1 if comm is None else int(comm.Get_size())


@dataclass
class Shard:
    """This rank's rows [lo, lo + len(data)) of a global set of n points (data: MetricData or PointSet)."""

    data: object
    lo: int
    n: int

    def __len__(self) -> int:
        return len(self.data)

    @property
    def hi(self) -> int:
        return self.lo + len(self.data)


def as_shard(data) -> Shard:
    """`data` itself if it is a Shard, else all of it as the one shard of a single rank."""
    return data if isinstance(data, Shard) else Shard(data, 0, len(data))


def keep_share(data, *, comm=None, name: str = "data") -> Shard:
    """This rank's `decompose.share` slice of a global set that every rank holds (MetricData or PointSet); a set
    that differs between ranks is refused by every rank (`keep_shares`)."""
    return keep_shares({name: data}, comm=comm)[name]


def keep_shares(sets: dict, *, comm=None) -> dict:
    """{name: Shard}: a Shard as it is, any other set (held whole, the same on every rank) cut to this rank's
    `decompose.share` rows. At R > 1 one allgather of each whole set's row count and digest
    (`replicated.fingerprint`) checks that; a set whose rows differ between ranks (e.g. each rank's own rows, not
    marked as a Shard) is refused by every rank with one ValueError: its shares would mix the ranks' sets."""
    c = resolve(comm)
    if c.Get_size() > 1:
        from hpcflow.parallel.comm import raise_together
        from hpcflow.parallel.replicated import fingerprint

        every = c.allgather({k: None if isinstance(d, Shard) else fingerprint(_arrays(d)) for k, d in sets.items()})
        for k in sets:
            other = next((r for r, e in enumerate(every) if e[k] != every[0][k]), None)
            if other is not None:
                raise_together(ValueError(_differs(k, every[0][k], every[other][k], other)), comm=c)
    out = {}
    for k, d in sets.items():
        if not isinstance(d, Shard):
            lo, hi = share(len(d), c.Get_size(), c.Get_rank())
            d = Shard(d[lo:hi], lo, len(d))
        out[k] = d
    return out


def _arrays(data) -> list:
    """The arrays of a MetricData (x, gfs, omega2, weights) or PointSet (points, weights, omega2, g_fs, chart)."""
    names = ("x", "gfs", "omega2", "weights") if hasattr(data, "gfs") else ("points", "weights", "omega2", "g_fs",
                                                                            "chart")
    arrays = [getattr(data, k) for k in names]
    return [a.detach().cpu().numpy() if torch.is_tensor(a) else np.asarray(a) for a in arrays]


def _differs(name: str, first, mine, rank: int) -> str:
    """Why set `name` is refused: rank `rank`'s (rows, digest) or None (a Shard) is not rank 0's."""
    def what(fp):
        return "a Shard" if fp is None else f"{fp[0]} rows"

    how = f"rank 0: {what(first)}, rank {rank}: {what(mine)}"
    if first is not None and mine is not None and first[0] == mine[0]:
        how += " of other values"
    return (f"{name} differs between ranks ({how}): a set that is not a Shard must be one whole set, the same on "
            "every rank, of which each rank keeps its share; pass that, or each rank's own rows as "
            "hpcflow.nn.replicas.Shard(rows, lo, n) (rows lo, lo + 1, ... of the n points of all ranks)")


def gather_rows(shard: Shard, idx, fields, *, comm=None) -> dict:
    """NumPy arrays of the given fields at the sorted global indices `idx`, on every rank (rows come from the
    ranks that own them, concatenated in rank order = global order)."""
    idx = np.asarray(idx, dtype=np.int64)
    mine = idx[(idx >= shard.lo) & (idx < shard.hi)] - shard.lo
    out = {}
    for name in fields:
        arr = getattr(shard.data, name)
        local = arr[torch.as_tensor(mine)].cpu().numpy() if torch.is_tensor(arr) else np.asarray(arr)[mine]
        out[name] = allgatherv(np.ascontiguousarray(local), comm=resolve(comm))
    return out


def global_sums(local, comm=None):
    """Element-wise sum over ranks of a small float tensor (one Allreduce); `local` itself on one rank."""
    if _size(comm) == 1:
        return local
    from mpi4py import MPI

    buf = local.detach().to("cpu", torch.float64).numpy().copy()
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    return torch.from_numpy(buf).to(local.device, local.dtype)


def global_sigma(eta, weights, *, comm=None) -> float:
    """σ (eq. B.11) of η = det g/|Ω|² over all ranks' points, with correctly rounded global sums (R-independent)."""
    eta = np.asarray(eta, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    wsum = exact_sum(w, comm=comm)
    kappa = exact_sum(w * eta, comm=comm) / wsum
    return exact_sum(w * np.abs(eta / kappa - 1.0), comm=comm) / wsum


class TimedComm:
    """A communicator that counts the seconds spent in its collectives (waiting for slower ranks included)."""

    TIMED = ("Allreduce", "allreduce", "allgather", "Allgatherv", "bcast", "Bcast", "Barrier")

    def __init__(self, comm):
        self.comm = comm
        self.seconds, self.calls = 0.0, 0

    def __getattr__(self, name):
        attr = getattr(self.comm, name)
        if name not in self.TIMED:
            return attr

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1

        return timed


class GradientReducer:
    """The model's gradients as views into one flat float64 buffer with `extra` scalar slots after them;
    `reduce()` sums the buffer over ranks in one Allreduce (in place) and counts its seconds and bytes."""

    def __init__(self, model, *, comm=None, extra: int = 0):
        self.comm = comm
        self.params = [p for p in model.parameters() if p.requires_grad]
        n = sum(p.numel() for p in self.params)
        dtype = self.params[0].dtype
        self.flat = torch.zeros(n + extra, dtype=dtype, device=self.params[0].device)
        self.extra = self.flat[n:]
        self.seconds, self.bytes, self.calls = 0.0, 0, 0
        self.views, off = [], 0
        for p in self.params:
            self.views.append(self.flat[off:off + p.numel()].view_as(p))
            p.grad = self.views[-1]
            off += p.numel()

    def zero(self) -> None:
        self.flat.zero_()

    def check_views(self) -> None:
        """Autograd accumulates into existing .grad tensors in place; make sure it did (else copy)."""
        for p, g in zip(self.params, self.views):
            if p.grad is g:
                continue
            if p.grad is None:
                g.zero_()
            elif p.grad.data_ptr() != g.data_ptr():
                g.copy_(p.grad)
            p.grad = g

    def reduce(self) -> None:
        self.check_views()
        if _size(self.comm) == 1:
            return
        from mpi4py import MPI

        t0 = time.perf_counter()
        if self.flat.dtype == torch.float64 and self.flat.device.type == "cpu":
            self.comm.Allreduce(MPI.IN_PLACE, self.flat.numpy(), op=MPI.SUM)
        else:  # float32 / GPU networks: reduce a float64 host copy
            buf = self.flat.to("cpu", torch.float64).numpy()
            self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
            self.flat.copy_(torch.from_numpy(buf))
        self.seconds += time.perf_counter() - t0
        self.bytes += 8 * self.flat.numel()
        self.calls += 1


def check_replicas(model, *, comm=None) -> None:
    """Raise RuntimeError unless every rank holds bitwise the same parameters (a cheap per-epoch checksum)."""
    if _size(comm) == 1:
        return
    flat = torch.cat([p.detach().reshape(-1).to("cpu", torch.float64) for p in model.parameters()]).numpy()
    k = np.arange(1, flat.size + 1, dtype=np.float64)
    mine = (float(np.sum(flat)), float(np.sum(k * flat)), float(np.sum(np.abs(flat))))
    every = comm.allgather(mine)
    if any(c != mine and not all(math.isnan(a) and math.isnan(b) for a, b in zip(c, mine)) for c in every):
        raise RuntimeError(f"network replicas differ between ranks (parameter checksums {every}); "
                           "the ranks did not apply the same optimiser step")
