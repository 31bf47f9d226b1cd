"""A network's row puts its validation points (n_val, σ_val and its gain) in the runs table's held-out columns, which
were headed 'N train / test', 'sigma test' and 'gain test' alone; their heads say 'test or val' now, as
docs/outputs.md does."""

from __future__ import annotations

import os

import h5py
import pytest

from analysis_runs import ROOT, md_rows, run_dirs

HEADS = ("N train / test or val", "sigma test or val", "gain test or val")


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_the_held_out_columns_say_they_hold_a_networks_validation_points(tmp_path, runs):
    from hpcflow.report.build import build_report

    res = build_report([runs["flow"], runs["nn"]], tmp_path / "r")
    with open(res["md"], encoding="utf-8") as fh:
        section = fh.read().split("## Runs")[1].split("\n## ")[0]
    head = [c.strip() for c in section.strip().splitlines()[0].strip("|").split("|")]
    assert [head[3], head[7], head[9]] == list(HEADS), head
    with h5py.File(os.path.join(runs["nn"], "nn.h5"), "r") as f:
        val = f["history/sigma_val"][()]
    row = md_rows(section)["nn"]
    assert row[3] == "200 / 100", row  # n_train / n_val of the fixture's network job
    assert row[7] == f"{val[0]:.4g} -> {val[-1]:.4g}" and row[9] == f"{val[0] / val[-1]:.4g}", row
    with open(os.path.join(ROOT, "docs", "outputs.md"), encoding="utf-8") as fh:
        docs = fh.read()
    assert all(f"`{h}`" in docs for h in HEADS)
