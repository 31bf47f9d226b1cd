"""PointSet: points on X with their charts, g_FS, |Omega|^2 and Monte Carlo weights; HDF5 save/load."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from hpcflow import __version__
from hpcflow.atomic import atomic_file
from hpcflow.errors import InputFileError, OutputPathError
from hpcflow.geometry.hermitian import det_hermitian
from hpcflow.geometry.measures import sigma_measure
from hpcflow.parallel.comm import is_root

#: conventions written into every PointSet file (see hpcflow.geometry docstring)
CONVENTIONS = (
    "points: homogeneous coords scaled so z_i = 1 for the chart's scale index i; "
    "g_fs[a,b] = d_a dbar_b log|z|^2 pulled back to the chart's local coords (no 1/pi); "
    "omega2 = |Omega|^2 = 1/|dp/dz_j|^2; weights = omega2/det(g_fs) (unnormalised); "
    "eta = det(g)/omega2; kappa = sum(w eta)/sum(w); sigma = sum(w |1-eta/kappa|)/sum(w) (eq. B.11)"
)

FIELDS = ("points", "weights", "omega2", "g_fs", "chart")


@dataclass
class PointSet:
    """Points on a hypersurface with their geometric data (all float64/complex128)."""

    manifold: object
    points: np.ndarray  # (N, n+1) complex128, chart-normalised
    weights: np.ndarray  # (N,)
    omega2: np.ndarray  # (N,)
    g_fs: np.ndarray  # (N, n-1, n-1) complex128
    chart: np.ndarray  # (N, 2) int (scale index i, eliminated index j)
    jacobian: np.ndarray | None = None  # (N, n-1, n+1) dz_k/dx_a
    n_dropped: int = 0
    seed: object = None
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.points.shape[0]

    def _take(self, idx) -> "PointSet":
        jac = None if self.jacobian is None else self.jacobian[idx]
        return PointSet(self.manifold, self.points[idx], self.weights[idx], self.omega2[idx], self.g_fs[idx],
                        self.chart[idx], jac, self.n_dropped, self.seed, dict(self.attrs))

    def subset(self, idx) -> "PointSet":
        """The points selected by a boolean mask or index array."""
        return self._take(idx)

    def __getitem__(self, idx) -> "PointSet":
        return self._take(idx)

    @staticmethod
    def concatenate(parts) -> "PointSet":
        parts = list(parts)
        first = parts[0]
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        jac = None if any(p.jacobian is None for p in parts) else cat("jacobian")
        return PointSet(first.manifold, cat("points"), cat("weights"), cat("omega2"), cat("g_fs"), cat("chart"),
                        jac, sum(p.n_dropped for p in parts), first.seed, dict(first.attrs))

    # ---- measures -----------------------------------------------------------------------------------
    @property
    def det_g_fs(self) -> np.ndarray:
        return det_hermitian(self.g_fs)

    def eta(self, g=None) -> np.ndarray:
        """eta = det g / |Omega|^2 (eq. B.11) for metrics g (N, m, m), default g_FS."""
        return det_hermitian(self.g_fs if g is None else g) / self.omega2

    def sigma(self, g=None) -> float:
        """sigma measure of metrics g (default g_FS) on these points (eq. B.11)."""
        return float(sigma_measure(self.eta(g), self.weights))

    # ---- I/O ----------------------------------------------------------------------------------------
    def save(self, path, *, force: bool = False, attrs: dict | None = None, comm=None) -> None:
        """Write to HDF5 atomically (temp file + rename); refuses to overwrite unless force=True.

        Under MPI only rank 0 of `comm` writes (the others return at once): call it on every rank.
        """
        if not is_root(comm):
            return
        path = os.fspath(path)
        if os.path.exists(path) and not force:
            raise OutputPathError(f"{path} exists; choose another --out or pass --force to overwrite it")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise OutputPathError(f"cannot write {path}: directory {parent} is missing or not writable")
        with atomic_file(path) as fh, h5py.File(fh, "w") as f:
            for name in FIELDS:
                f.create_dataset(name, data=getattr(self, name))
            f.attrs["kind"] = "hpcflow.PointSet"
            f.attrs["manifold"] = self.manifold.definition_json()
            f.attrs["seed"] = json.dumps(self.seed)
            f.attrs["n_dropped"] = self.n_dropped
            f.attrs["conventions"] = CONVENTIONS
            f.attrs["hpcflow_version"] = __version__
            for k, v in {**self.attrs, **(attrs or {})}.items():
                f.attrs[k] = v

    @classmethod
    def load(cls, path) -> "PointSet":
        """Read a PointSet file; recomputes the Jacobians from the points and charts."""
        from hpcflow.geometry.hypersurface import Hypersurface

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputFileError(f"{path} does not exist; create it with 'hpcflow sample --out {path}'")
        try:
            f = h5py.File(path, "r")
        except OSError:
            raise InputFileError(f"{path} is not an HDF5 file; pass a file written by 'hpcflow sample'") from None
        with f:
            missing = [k for k in FIELDS if k not in f]
            if f.attrs.get("kind") != "hpcflow.PointSet" or missing or "manifold" not in f.attrs:
                raise InputFileError(
                    f"{path} is not an hpcflow PointSet (missing {missing or 'kind/manifold attributes'}); "
                    "pass a file written by 'hpcflow sample'"
                )
            manifold = Hypersurface.from_definition(json.loads(f.attrs["manifold"]))
            data = {k: f[k][()] for k in FIELDS}
            seed = json.loads(f.attrs.get("seed", "null"))
            n_dropped = int(f.attrs.get("n_dropped", 0))
        ps = manifold.point_set(data["points"], chart=data["chart"])
        ps.weights, ps.omega2, ps.g_fs = data["weights"], data["omega2"], data["g_fs"]
        ps.n_dropped, ps.seed = n_dropped, seed
        return ps
