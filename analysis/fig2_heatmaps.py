"""Draw Fig. 2 of the paper (§3.1): three heatmaps of the FS distance matrix of the clustered points.

Left: points in sampling order; middle: ordered cluster by cluster by the batched clustering (eq. 3.3);
right: ordered by the unbatched clustering. Input: DIR/fig2_distances.h5 of `hpcflow run
jobs/fig2_clustering.toml --out DIR`.

    python analysis/fig2_heatmaps.py DIR/fig2_distances.h5 --out fig2.png

matplotlib is optional (not a dependency of hpcflow); without it the script exits with status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

PANELS = (("distance", "no clustering"), ("distance_batched", "batched clustering (eq. 3.3)"),
          ("distance_full", "full clustering"))


def load(path):
    """The three (N, N) matrices and the silhouette attributes of a Fig. 2 HDF5 file."""
    import h5py

    with h5py.File(path, "r") as f:
        missing = [name for name, _ in PANELS if name not in f]
        if missing:
            raise KeyError(f"{path}: no dataset {missing[0]!r}; pass the fig2_distances.h5 of a clustering job")
        mats = {name: f[name][()] for name, _ in PANELS}
        sil = {k: float(v) for k, v in f.attrs.items() if k.startswith("silhouette_")}
    return mats, sil


def draw(mats, sil, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 5), constrained_layout=True)
    keys = {"distance_batched": "silhouette_batched", "distance_full": "silhouette_full"}
    for ax, (name, title) in zip(axes, PANELS):
        im = ax.imshow(mats[name], cmap="viridis", vmin=0.0, vmax=1.5707963267948966, interpolation="nearest")
        if name in keys and keys[name] in sil:
            title += f"\nsilhouette {sil[keys[name]]:.3f}"
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="FS distance")
    fig.savefig(out, dpi=150)
    print(f"wrote {out}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("h5", help="fig2_distances.h5 written by the clustering job")
    p.add_argument("--out", default="fig2.png", help="image file to write (default fig2.png)")
    args = p.parse_args(argv)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("fig2_heatmaps: matplotlib is not installed; pip install matplotlib to draw Fig. 2", file=sys.stderr)
        return 2
    if not os.path.isfile(args.h5):
        print(f"fig2_heatmaps: {args.h5} does not exist; run hpcflow run jobs/fig2_clustering.toml --out DIR",
              file=sys.stderr)
        return 2
    if os.path.exists(args.out):
        print(f"fig2_heatmaps: {args.out} exists; choose another --out", file=sys.stderr)
        return 2
    try:
        mats, sil = load(args.h5)
    except (KeyError, OSError) as exc:
        print(f"fig2_heatmaps: {exc}", file=sys.stderr)
        return 2
    draw(mats, sil, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
