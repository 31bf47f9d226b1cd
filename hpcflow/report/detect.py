"""What a run directory holds: its kind, completeness (run-directory contract) and the figures that apply."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

from hpcflow.analysis.rundir import (CHECKPOINT, DISTANCES, FIG2, JOURNAL, NN, NN_CHECKPOINT, NOISE_SCAN, MissingData,
                                     completeness, dataset_names, read_datasets, read_summary)

LOCAL_LIMIT = "local_limit.h5"
STUDY_RECORD = "study.json"

#: data file -> (kind, products of hpcflow.analysis.products.PRODUCTS that read it)
FILES = {
    JOURNAL: ("study", ("optuna_view", "table1")),
    STUDY_RECORD: ("study", ("optuna_view", "table1")),  # a study kept in another storage (sqlite:///...)
    CHECKPOINT: ("flow", ("sigma_history", "table1")),
    NN: ("nn", ("sigma_history", "fig4_ntk")),
    NN_CHECKPOINT: ("nn", ("sigma_history",)),  # a network run interrupted before it wrote nn.h5
    NOISE_SCAN: ("noise_scan", ("fig3_noise",)),
    DISTANCES: ("distance_scaling", ("fig3_scaling",)),
    FIG2: ("clustering", ("fig2_heatmaps",)),
    LOCAL_LIMIT: ("local_limit", ()),  # no figure: listed in the runs table
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
    if kind == "nn" and summary and not isinstance(summary.get("sigma_train_initial"), (int, float)):
        summary = {**summary, **_initial_train_sigma(os.path.join(path, NN))}
    return RunInfo(path, summary.get("kind", kind), complete, reason, summary, products)


def _initial_train_sigma(nn_h5) -> dict:
    """{'sigma_train_initial': history/sigma_train[0]} of a network's nn.h5 (its summary.json holds only the
    final train sigma); {} when the file or the history is missing or unreadable."""
    if not os.path.isfile(nn_h5):
        return {}
    try:
        st = read_datasets(nn_h5, ("history/sigma_train",), hint="", ndim={"history/sigma_train": 1})
    except MissingData:
        return {}
    return {"sigma_train_initial": float(st["history/sigma_train"][0])}
