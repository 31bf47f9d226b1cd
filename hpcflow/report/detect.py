"""What a run directory holds: its kind, completeness (run-directory contract) and the figures that apply."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from hpcflow.analysis.rundir import (CHECKPOINT, DISTANCES, FIG2, JOURNAL, NN, NN_CHECKPOINT, NOISE_SCAN,
                                     completeness, dataset_names, read_summary)

#: data file -> (kind, products of hpcflow.analysis.products.PRODUCTS that read it)
FILES = {
    JOURNAL: ("study", ("optuna_view", "table1")),
    CHECKPOINT: ("flow", ("sigma_history", "table1")),
    NN: ("nn", ("sigma_history", "fig4_ntk")),
    NN_CHECKPOINT: ("nn", ("sigma_history",)),  # a network run interrupted before it wrote nn.h5
    NOISE_SCAN: ("noise_scan", ("fig3_noise",)),
    DISTANCES: ("distance_scaling", ("fig3_scaling",)),
    FIG2: ("clustering", ("fig2_heatmaps",)),
}


@dataclass
class RunInfo:
    path: str
    kind: str | None
    complete: bool
    reason: str  # why incomplete, or why skipped (kind None)
    summary: dict = field(default_factory=dict)
    products: tuple = ()


def detect(path) -> RunInfo:
    """The RunInfo of a directory; kind None (with the reason) when it holds none of the known data files."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        return RunInfo(path, None, False, "not a directory")
    present = [name for name in FILES if os.path.isfile(os.path.join(path, name))]
    if not present:
        return RunInfo(path, None, False, "holds none of " + ", ".join(FILES))
    kind, products = FILES[present[0]]
    if kind == "nn" and "ntk/spectrum" not in dataset_names(os.path.join(path, NN)):
        products = ("sigma_history",)
    if kind == "study":
        if glob.glob(os.path.join(glob.escape(path), "trials", "*", NN)):  # trials of an nn job: no Table 1
            products = ("optuna_view",)
        return RunInfo(path, kind, True, "", {}, products)
    complete, reason = completeness(path)
    summary = read_summary(path) or {}
    return RunInfo(path, summary.get("kind", kind), complete, reason, summary, products)
