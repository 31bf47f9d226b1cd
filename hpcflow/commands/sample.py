"""`hpcflow sample`: sample points on a Calabi-Yau hypersurface and write a PointSet HDF5 file."""

from __future__ import annotations

import argparse
import os
import time

from hpcflow.errors import ConfigError, OutputPathError

MANIFOLDS = ("fermat", "dwork")


def check_output_path(path: str, force: bool) -> None:
    """Refuse an existing output (without --force) or an unwritable directory, before any work."""
    if os.path.exists(path) and not force:
        raise OutputPathError(f"--out {path} exists; choose another path or pass --force to overwrite it")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise OutputPathError(f"--out {path}: directory {parent} is missing or not writable; create it or pick another")


def build_manifold(name: str, dim: int, psi: complex = 0.0):
    from hpcflow.geometry import Hypersurface

    if name not in MANIFOLDS:
        raise ConfigError(f"--manifold {name!r} is unknown; use one of {', '.join(MANIFOLDS)}")
    return Hypersurface.fermat(dim) if name == "fermat" else Hypersurface.dwork(dim, psi)


def run(args) -> int:
    """Sample (under mpiexec: ranks sample disjoint blocks, rank 0 gathers) and write one file from rank 0."""
    from hpcflow.geometry.sampling import check_chart
    from hpcflow.parallel.comm import abort_on_error, check_launch, is_root

    check_launch()
    check_output_path(args.out, args.force)
    if args.n <= 0:
        raise ConfigError(f"--n {args.n} must be a positive number of points")
    X = build_manifold(args.manifold, args.dim, complex(args.psi))
    check_chart(X, args.chart)  # refused before any work, on every rank alike
    with abort_on_error():
        t0 = time.perf_counter()
        ps = X.sample(args.n, seed=args.seed, chart=args.chart, threads=args.threads, layout="root")
        dt = time.perf_counter() - t0
        ps.save(args.out, force=args.force)
    if not is_root():
        return 0
    print(f"manifold      {X.name} dim={X.dim} (P^{X.n}, degree {X.degree})")
    print(f"points        {len(ps)} (dropped {ps.n_dropped} with ambiguous charts or unconverged roots)")
    print(f"sigma_FS      {ps.sigma():.6f}")
    print(f"sample time   {dt:.3f} s ({len(ps) / dt:,.0f} points/s)")
    print(f"written       {args.out}")
    return 0


def _complex(s: str) -> complex:
    try:
        return complex(s.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not a complex number; write e.g. 0.5 or 0.1+0.2j") from None


def register(sub) -> None:
    p = sub.add_parser("sample", help="sample points on a CY hypersurface (Shiffman-Zelditch) to HDF5")
    p.add_argument("--manifold", default="fermat", help="fermat | dwork (default fermat)")
    p.add_argument("--dim", type=int, default=3, help="complex dimension (1 torus, 2 K3, 3 quintic)")
    p.add_argument("--psi", type=_complex, default=0.0, help="Dwork parameter psi (dwork only)")
    p.add_argument("--n", type=int, required=True, help="number of points")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--chart", type=int, nargs=2, metavar=("I", "J"), default=None,
                   help="keep only points whose chart is (scale index I, eliminated index J)")
    p.add_argument("--threads", type=int, default=None, help="sampling threads (default: available CPUs)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=run)
