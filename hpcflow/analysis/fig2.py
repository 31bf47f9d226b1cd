"""Fig. 2 (sec. 3.1): FS distance heatmaps of the clustered points, unordered and ordered cluster by cluster.

Reads DIR/fig2_distances.h5 of a "clustering" job (datasets distance, distance_batched, distance_full; the
silhouette scores as root attributes, with their row count and standard errors: @sample_rows, @stderr_METHOD).
"""

from __future__ import annotations

import functools
import math
import os

from hpcflow.analysis.figure import new_figure
from hpcflow.analysis.rundir import (FIG2, MissingData, check_range, data_file, dataset_shapes, file_rerun,
                                     read_attrs, read_datasets, read_summary, rerun_command)

PANELS = (("distance", "no clustering", None),
          ("distance_batched", "batched clustering (eq. 3.3)", "silhouette_batched"),
          ("distance_full", "full clustering", "silhouette_full"))
#: the datasets with a row per point beside the matrices (docs/outputs.md); those present are checked for size
POINT_ROWS = ("points", "labels/batched", "labels/full", "labels/birch", "order/batched", "order/full")
HINT = "pass the run directory of a clustering job (hpcflow run jobs/fig2_clustering.toml --out DIR)"


def made_without_fig2(run_dir) -> bool:
    """Whether directory `run_dir` holds a clustering run made with [quality].fig2 = false (its summary.json's job
    says so), which writes no fig2_distances.h5: its silhouettes are in summary.json alone."""
    if os.path.isfile(os.path.join(os.fspath(run_dir), FIG2)):
        return False
    summary = read_summary(run_dir) or {}
    quality = summary.get("config", {}).get("quality") if isinstance(summary.get("config"), dict) else None
    return summary.get("kind") == "clustering" and isinstance(quality, dict) and quality.get("fig2") is False


def load(run_dir) -> dict:
    """{'matrices': {name: (N, N)}, 'silhouette': {name: score}, 'file': path}, with 'stderr' and 'rows' where the
    scores were computed from a sample of rows (`sampled`): the file's @stderr_METHOD and @sample_rows, or its run's
    summary.json for a file written before those existed."""
    if os.path.isdir(run_dir) and made_without_fig2(run_dir):
        again = rerun_command(run_dir, run_dir, "--set", "quality.fig2=true", "--force")
        raise MissingData(f"{run_dir}: this clustering run was made with [quality].fig2 = false, so it wrote no "
                          f"{FIG2} (its silhouettes are in summary.json); to draw Fig. 2, rerun the job with --set "
                          f"quality.fig2=true into this --out with --force, which replaces its results (`{again}`), "
                          "or into another --out")
    path = data_file(run_dir, FIG2, hint=HINT)
    mats = read_datasets(path, [name for name, _, _ in PANELS], hint=HINT, ndim={name: 2 for name, _, _ in PANELS})
    for name, mat in mats.items():
        if mat.shape[0] != mat.shape[1]:
            raise MissingData(f"{path}: dataset '{name}' has shape {mat.shape}, not that of a square distance "
                              f"matrix; {HINT}")
    for name, mat in mats.items():  # an FS distance lies in [0, pi/2] (eq. 3.2)
        check_range(path, name, mat, 0.0, math.pi / 2, what="FS distance")
    sizes = {name: mat.shape[0] for name, mat in mats.items()}  # one point set: every matrix and row list N long
    sizes.update({name: shape[0] for name, shape in dataset_shapes(path, POINT_ROWS).items() if shape})
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"'{k}' {v}" for k, v in sizes.items())
        raise MissingData(f"{path}: datasets of one point set have different numbers of points ({listed}); {HINT}")
    attrs = read_attrs(path)
    sil = {k: v for k, v in attrs.items() if k.startswith("silhouette_")}
    for key, value in sil.items():
        _number(path, key, value)
        check_range(path, key, value, -1.0, 1.0, what="silhouette score", item="attribute")
    scores = {k: float(v) for k, v in sil.items()}
    record = (_file_record(path, attrs, scores, len(mats["distance"])) if "sample_rows" in attrs
              else read_summary(os.path.dirname(os.path.abspath(path))) or {})
    return {"matrices": mats, "silhouette": scores, "file": path, **sampled(record, scores)}


def _number(path, key: str, value) -> None:
    """MissingData where attribute `key` of file `path` is not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MissingData(f"{path}: attribute '{key}' = {value!r} is not a number; {HINT}")


def _file_record(path, attrs: dict, scores: dict, n: int) -> dict:
    """How silhouette `scores` of file `path` (of `n` points) were computed, as summary.json says it (`sampled`):
    from the file's own @sample_rows (rows each averages, 1 to n) and @stderr_METHOD (the standard error of
    @silhouette_METHOD, in [0, 1]: silhouettes lie in [-1, 1]), so the file read without its summary.json (a copy)
    says it too; MissingData where one is not such a number. A file written before they existed lacks them: its
    run's summary.json holds them."""
    rows = attrs["sample_rows"]
    if isinstance(rows, bool) or not isinstance(rows, int) or not 1 <= rows <= n:
        raise MissingData(f"{path}: attribute 'sample_rows' = {rows!r} is not a row count from 1 to the {n} points: "
                          f"the file is damaged; {file_rerun(path)}")
    record = {"silhouette_rows": rows}
    for key, value in scores.items():
        name = "stderr_" + key[len("silhouette_"):]
        if name in attrs:
            _number(path, name, attrs[name])
            check_range(path, name, attrs[name], 0.0, 1.0, what="standard error", item="attribute")
            record.update({key: value, f"{key}_stderr": attrs[name]})
    return record


def sampled(summary: dict, scores: dict) -> dict:
    """{'stderr': {key: standard error}, 'rows': n} of silhouette `scores` computed from a sample of rows
    ([quality].sample_size > 0): `summary`'s `KEY_stderr` and `silhouette_rows`, for the scores it holds as they are
    (the summary of this file's run, or the file's own attributes as `_file_record` gives them); {} where no score
    was sampled (a standard error of 0: every row, exact)."""
    rows = summary.get("silhouette_rows")
    if not isinstance(rows, int) or isinstance(rows, bool) or rows < 1:
        return {}
    errors = {}
    for key, value in scores.items():
        se = summary.get(f"{key}_stderr")
        if (summary.get(key) == value and isinstance(se, (int, float)) and not isinstance(se, bool)
                and math.isfinite(se) and se > 0):
            errors[key] = float(se)
    return {"stderr": errors, "rows": rows} if errors else {}


def _interpolation(im) -> str:
    """How heatmap `im` is drawn at the size of its panel in pixels now: an entry a pixel or more ("nearest": the
    exact 0 of the diagonal keeps its colour; a smoothing filter spreads the other entries over it), entries that
    share a pixel averaged ("antialiased": one picked out of them hides the blocks of the clustered orderings)."""
    rows, cols = im.get_array().shape[:2]
    box = im.get_window_extent()
    return "nearest" if cols <= abs(box.width) and rows <= abs(box.height) else "antialiased"


def plot(data):
    """Three heatmaps on a common colour scale [0, pi/2] (radians) with the silhouette scores in the titles."""
    fig, axes = new_figure(1, 3, size=(13.5, 4.6))
    for ax, (name, title, key) in zip(axes, PANELS):
        im = ax.imshow(data["matrices"][name], cmap="viridis", vmin=0.0, vmax=math.pi / 2)
        im.get_interpolation = functools.partial(_interpolation, im)  # (asked when drawn, at the dpi drawn at)
        if key in data["silhouette"]:
            se = data.get("stderr", {}).get(key)
            title += f"\nsilhouette {data['silhouette'][key]:.3f}" + (f" ± {se:.3f}" if se is not None else "")
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label="FS distance [rad]")
    return fig


def numbers(data) -> list:
    """Lines to print: the silhouette scores (batched, full, Birch) beside the paper's (.016, -.011, -.032); a score
    computed from a sample of rows (`sampled`) with its standard error, '± se (N sampled rows)'."""
    paper = {"silhouette_batched": 0.016, "silhouette_full": -0.011, "silhouette_birch": -0.032}
    errors = data.get("stderr", {})

    def error(key) -> str:
        return f" ± {errors[key]:.4f} ({data['rows']} sampled rows)" if key in errors else ""

    return [f"{k}: {v:.4f}{error(k)} (paper {paper[k]:+.3f})" for k, v in sorted(data["silhouette"].items())
            if k in paper]
