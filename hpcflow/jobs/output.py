"""Job outputs: the output directory (refused if it holds results, unless --force), atomic JSON and HDF5.

Writers take `comm=None` keyword-only and decide inside whether to write: only rank 0 of `comm` (default:
MPI world when mpi4py is usable, else a single rank) writes; callers never test the rank themselves.
Files appear atomically (temporary file in the same directory, then rename), so an interrupted run never
leaves a half-written result under the final name.
"""

from __future__ import annotations

import json
import math
import os

import h5py
import numpy as np

from hpcflow import __version__
from hpcflow.atomic import atomic_file
from hpcflow.errors import OutputPathError


def rank(comm=None) -> int:
    """This process's rank in `comm` (default: `hpcflow.parallel.comm.resolve`); 0 without MPI."""
    from hpcflow.parallel.comm import rank as _rank

    return _rank(comm)


def prepare_outdir(path, *, force: bool = False, comm=None) -> str:
    """Create the output directory (and missing parents); refuse an existing non-empty one unless force=True.

    Only rank 0 creates it; the check itself runs on every rank so all ranks refuse alike.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"--out {path} exists and is not a directory; choose another --out")
    if os.path.isdir(path) and os.listdir(path) and not force:
        raise OutputPathError(
            f"--out {path} already holds results; choose another --out or pass --force to overwrite them"
        )
    if os.path.isdir(path) and not os.access(path, os.W_OK):
        raise OutputPathError(f"--out {path} is not writable; choose another --out")
    if rank(comm) == 0:
        try:
            os.makedirs(path, exist_ok=True)  # missing parents are created too
        except OSError as exc:
            raise OutputPathError(f"cannot create --out {path} ({exc.strerror}); choose a writable path") from None
    return path


def jsonable(obj):
    """Convert NumPy scalars/arrays and non-finite floats (-> None) into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path, obj, *, comm=None) -> None:
    """Write `obj` as indented JSON atomically (rank 0 only); non-finite numbers become null."""
    if rank(comm) != 0:
        return
    with atomic_file(path, "w") as fh:
        json.dump(jsonable(obj), fh, indent=2, sort_keys=True, allow_nan=False)
        fh.write("\n")


def write_hdf5(path, datasets: dict, *, attrs: dict | None = None, comm=None) -> None:
    """Write an HDF5 file atomically (rank 0 only).

    `datasets` maps slash paths ("history/sigma_train") to arrays; groups are created as needed.
    `attrs` go on the root group; dicts/lists are stored as JSON strings.
    """
    if rank(comm) != 0:
        return
    with atomic_file(path) as fh, h5py.File(fh, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=np.asarray(data))
        f.attrs["hpcflow_version"] = __version__
        for key, value in (attrs or {}).items():
            if isinstance(value, (dict, list, tuple)):
                value = json.dumps(jsonable(value), sort_keys=True)
            elif value is None:
                value = "null"
            f.attrs[key] = value


def write_text(path, text: str, *, comm=None) -> None:
    """Write a UTF-8 text file atomically (rank 0 only), e.g. a copy of the job file."""
    if rank(comm) != 0:
        return
    with atomic_file(path, "w") as fh:
        fh.write(text)
