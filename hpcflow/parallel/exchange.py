"""Halo exchange plan: which rows of its own a rank sends to whom, built once, replayed with one Alltoallv.

Every rank holds some rows of a global table (`own`: sorted global indices) and needs some rows held by
others (`need`: global indices, none of them its own). `ExchangePlan.build` settles, with one Allgatherv of the
owned indices, one Allgather of request counts and one Alltoallv of the requested indices, the send and
receive lists; `exchange(rows)` then moves exactly the requested rows of any per-row float64 array (points
once, loss gradients every step) as contiguous buffers, never pickled objects. Received rows come in the order
of `recv_idx` (by source rank, ascending global index within a rank).
"""

from __future__ import annotations

import time

import numpy as np

from hpcflow.parallel.comm import resolve
from hpcflow.parallel.decompose import displs


def _double():
    from mpi4py import MPI

    return MPI.DOUBLE


def _int64():
    from mpi4py import MPI

    return MPI.INT64_T


def owners(own, *, comm=None):
    """(global indices of all ranks in rank order, owning rank of each): one Allgatherv of `own`."""
    c = resolve(comm)
    own = np.ascontiguousarray(own, dtype=np.int64)
    if c.Get_size() == 1:
        return own.copy(), np.zeros(own.size, dtype=np.int64)
    cnt = np.zeros(c.Get_size(), dtype=np.int64)
    c.Allgather(np.array([own.size], dtype=np.int64), cnt)
    everyone = np.empty(int(cnt.sum()), dtype=np.int64)
    c.Allgatherv(own, [everyone, cnt, displs(cnt), _int64()])
    return everyone, np.repeat(np.arange(c.Get_size(), dtype=np.int64), cnt)


class ExchangePlan:
    """Send/receive lists of one halo exchange (see module docstring); `bytes_received(width)` per exchange."""

    def __init__(self, send_pos, send_counts, recv_idx, recv_counts, comm):
        self.comm = comm
        self.send_pos = send_pos  # positions in this rank's own rows, grouped by destination rank
        self.send_counts = send_counts
        self.recv_idx = recv_idx  # global indices of the received rows, in receive order
        self.recv_counts = recv_counts
        self.seconds = 0.0  # time spent in exchanges (cumulative)
        self.bytes = 0  # payload bytes received (cumulative)

    @classmethod
    def build(cls, own, need, *, comm=None) -> "ExchangePlan":
        """Plan for a rank holding rows `own` (sorted global indices) that needs rows `need` of other ranks."""
        c = resolve(comm)
        own = np.ascontiguousarray(own, dtype=np.int64)
        need = np.unique(np.asarray(need, dtype=np.int64))
        size = c.Get_size()
        if size == 1:
            if need.size:
                raise ValueError(f"one rank holds every row, yet {need.size} rows are needed from other ranks")
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, np.zeros(1, dtype=np.int64), empty, np.zeros(1, dtype=np.int64), c)
        everyone, owner = owners(own, comm=c)
        order = np.argsort(everyone, kind="stable")
        where = np.searchsorted(everyone[order], need)
        if need.size and (where.max() >= everyone.size or np.any(everyone[order][np.minimum(where, everyone.size - 1)]
                                                                != need)):
            raise ValueError("a needed row is held by no rank")
        src = owner[order[where]] if need.size else np.zeros(0, dtype=np.int64)
        if np.any(src == c.Get_rank()):
            raise ValueError("a needed row is one of this rank's own rows")
        by_rank = np.argsort(src, kind="stable")  # ascending global index within each source rank
        recv_idx = need[by_rank]
        recv_counts = np.bincount(src, minlength=size).astype(np.int64)
        matrix = np.zeros(size * size, dtype=np.int64)  # matrix[q * size + r]: rows rank r asks of rank q
        c.Allgather(recv_counts, matrix)
        send_counts = matrix.reshape(size, size)[:, c.Get_rank()].copy()
        asked = np.empty(int(send_counts.sum()), dtype=np.int64)
        c.Alltoallv([recv_idx, recv_counts, displs(recv_counts), _int64()],
                    [asked, send_counts, displs(send_counts), _int64()])
        send_pos = np.searchsorted(own, asked)
        if asked.size and not np.array_equal(own[np.minimum(send_pos, own.size - 1)], asked):
            raise ValueError("another rank asked for a row this rank does not hold")
        return cls(send_pos, send_counts, recv_idx, recv_counts, c)

    @property
    def n_recv(self) -> int:
        return int(self.recv_idx.size)

    def bytes_received(self, width: int) -> int:
        """Payload bytes one exchange of float64 rows of `width` values brings to this rank."""
        return self.n_recv * int(width) * 8

    def exchange(self, rows) -> np.ndarray:
        """The requested rows of every rank's (n_own, width) float64 `rows`: (n_recv, width), host arrays."""
        rows = np.asarray(rows, dtype=np.float64)
        width = int(np.prod(rows.shape[1:], dtype=np.int64))
        out = np.empty((self.n_recv,) + rows.shape[1:], dtype=np.float64)
        if self.comm.Get_size() == 1:
            return out
        t0 = time.perf_counter()
        send = np.ascontiguousarray(rows[self.send_pos]).reshape(-1)
        sc, rc = self.send_counts * width, self.recv_counts * width
        self.comm.Alltoallv([send, sc, displs(sc), _double()], [out.reshape(-1), rc, displs(rc), _double()])
        self.seconds += time.perf_counter() - t0
        self.bytes += self.bytes_received(width)
        return out
