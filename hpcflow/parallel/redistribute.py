"""Moving rows between ranks: pack several arrays into byte rows, send each row to its owner with one Alltoallv.

`pack_rows` turns arrays with a common first axis (any dtypes) into one (n, row_bytes) uint8 matrix and
`unpack_rows` undoes it, so one buffer collective moves all of a point's data. `alltoallv_rows` sends
rows to ranks by counts (rows already ordered by destination); the MPI datatype is one whole row, so the
counts stay below 2^31 for any realistic number of rows. Byte copies: what arrives is bitwise what was sent.
"""

from __future__ import annotations

import numpy as np

from hpcflow.parallel.comm import resolve
from hpcflow.parallel.decompose import displs
from hpcflow.parallel.reduce import allgatherv


def pack_rows(arrays, out=None) -> tuple[np.ndarray, list]:
    """(n, row_bytes) uint8 matrix holding row i of every array side by side (written into `out` if given), and
    the layout to unpack it."""
    arrays = [np.ascontiguousarray(a) for a in arrays]
    n = arrays[0].shape[0]
    layout = [(a.dtype.str, a.shape[1:]) for a in arrays]
    out = np.empty((n, row_bytes(layout)), dtype=np.uint8) if out is None else out
    col = 0
    for a in arrays:
        if a.shape[0] != n:
            raise ValueError(f"pack_rows: arrays have {a.shape[0]} and {n} rows; pass arrays of equal length")
        width = int(np.prod(a.shape[1:], dtype=np.int64))
        out[:, col:col + width * a.dtype.itemsize] = a.reshape(n, width).view(np.uint8)
        col += width * a.dtype.itemsize
    return out, layout


def row_bytes(layout) -> int:
    """Bytes per packed row of a `pack_rows` layout."""
    return sum(np.dtype(dt).itemsize * int(np.prod(shape, dtype=np.int64)) for dt, shape in layout)


def unpack_rows(buf, layout, order=None) -> list[np.ndarray]:
    """The arrays packed by `pack_rows` (C-contiguous copies) from a (n, row_bytes) uint8 matrix; with `order`,
    rows buf[order] (one copy per array, no copy of the whole buffer)."""
    rows = slice(None) if order is None else np.asarray(order)
    n = buf.shape[0] if order is None else rows.size
    out, col = [], 0
    for dtype, shape in layout:
        dt = np.dtype(dtype)
        width = dt.itemsize * int(np.prod(shape, dtype=np.int64))
        part = np.ascontiguousarray(buf[rows, col:col + width])
        out.append(part.view(dt).reshape((n,) + tuple(shape)))
        col += width
    return out


def owner_counts(idx, bounds) -> np.ndarray:
    """Rows per destination for ascending global indices `idx`: rank r owns [bounds[r], bounds[r+1])."""
    idx, bounds = np.asarray(idx, dtype=np.int64), np.asarray(bounds, dtype=np.int64)
    if idx.size and np.any(np.diff(idx) <= 0):
        raise ValueError("owner_counts: global indices must be strictly ascending")
    dest = np.searchsorted(bounds, idx, side="right") - 1
    return np.bincount(dest, minlength=bounds.size - 1).astype(np.int64)


def alltoallv_rows(send, send_counts, *, comm=None) -> tuple[np.ndarray, np.ndarray]:
    """Rows received from every rank (source-rank order) and how many came from each: one Alltoallv.

    `send` (n, ...) holds the rows for rank 0 first, then rank 1, ...; `send_counts[r]` rows go to rank r.
    """
    c = resolve(comm)
    send = np.ascontiguousarray(send)
    send_counts = np.asarray(send_counts, dtype=np.int64)
    if send_counts.sum() != send.shape[0] or send_counts.size != c.Get_size():
        raise ValueError(f"alltoallv_rows: counts {send_counts.tolist()} do not split {send.shape[0]} rows over "
                         f"{c.Get_size()} ranks")
    if c.Get_size() == 1:
        return send.copy(), send_counts.copy()
    from mpi4py import MPI

    recv_counts = np.empty_like(send_counts)
    c.Alltoall(send_counts, recv_counts)
    recv = np.empty((int(recv_counts.sum()),) + send.shape[1:], dtype=send.dtype)
    row_bytes = send.dtype.itemsize * int(np.prod(send.shape[1:], dtype=np.int64))
    if row_bytes == 0:
        return recv, recv_counts
    row = MPI.BYTE.Create_contiguous(row_bytes).Commit()
    try:
        sd, rd = displs(send_counts), displs(recv_counts)
        c.Alltoallv([send, (send_counts, sd), row], [recv, (recv_counts, rd), row])
    finally:
        row.Free()
    return recv, recv_counts


def rows_to_owners(idx, arrays, bounds, *, comm=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Send rows with global indices `idx` (ascending) to the rank r with bounds[r] <= idx < bounds[r+1].

    Returns the received global indices, sorted, and the arrays' rows in that order. `bounds` (R+1,) is the
    same on every rank (e.g. the displacements of `decompose.counts` with N appended).
    """
    send_counts = owner_counts(idx, bounds)
    buf, layout = pack_rows([np.asarray(idx, dtype=np.int64), *arrays])
    recv, _ = alltoallv_rows(buf, send_counts, comm=comm)
    del buf
    return received_in_order(recv, layout)


def received_in_order(recv, layout) -> tuple[np.ndarray, list[np.ndarray]]:
    """Unpack received rows whose first packed array is the int64 global index, sorted by that index."""
    got = unpack_rows(recv, layout[:1])[0]
    order = np.argsort(got, kind="stable")
    return got[order], unpack_rows(recv, layout, order=order)[1:]


def fetch_rows(local, lo: int, want, *, comm=None) -> np.ndarray:
    """Rows `want` (global indices, ascending) of an array held in contiguous shares: rank q holds rows
    [lo_q, lo_q + len(local_q)) as `local`. Two Alltoallv: the requests, then the rows (bitwise copies)."""
    c = resolve(comm)
    local = np.ascontiguousarray(local)
    want = np.asarray(want, dtype=np.int64)
    if want.size and np.any(np.diff(want) <= 0):
        raise ValueError("fetch_rows: wanted indices must be strictly ascending")
    if c.Get_size() == 1:
        return local[want - int(lo)]
    bounds = allgatherv(np.array([int(lo)], dtype=np.int64), comm=c)
    holder = np.searchsorted(bounds, want, side="right") - 1
    asked, asked_counts = alltoallv_rows(want[:, None], np.bincount(holder, minlength=bounds.size), comm=c)
    rows, _ = alltoallv_rows(local[asked[:, 0] - int(lo)], asked_counts, comm=c)
    return rows
