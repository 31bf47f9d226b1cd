"""Fig. 4's figures (the metric-NTK evolution and the width sweep) of a network whose metric is not positive definite
at validation points after its last epoch carry the mark in their titles, as its sigma histories' legend does; the
written PNG holds its title as its Title text. A healthy network's titles carry none."""

from __future__ import annotations

import shutil

import h5py
import pytest

from analysis_runs import run_dirs, script

N_VAL = 100  # [geometry] n_val of the fixture's network job (analysis_runs.JOBS["nn"])
COUNT = 7  # validation points made not positive definite at the last epoch in the copy


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _indefinite(src, dst) -> str:
    """A copy of network run `src` whose nn.h5 counts COUNT validation points not positive definite at its last
    epoch (its first epochs' counts left as they were)."""
    shutil.copytree(src, dst)
    with h5py.File(dst / "nn.h5", "a") as f:
        counts = f["history/val_not_positive_definite"]
        assert counts[-1] == 0  # the healthy run the copy starts from
        counts[-1] = COUNT
    return str(dst)


MARK = f"(metric not positive definite at {COUNT} of {N_VAL} validation points: sigma uses the signed det g)"


def _titles(out) -> dict:
    """{file name: Title text} of the PNG files in `out`."""
    from PIL import Image

    titles = {}
    for path in sorted(out.glob("*.png")):
        with Image.open(path) as im:
            titles[path.name] = im.text.get("Title", "")
    return titles


def test_the_figures_of_a_network_not_positive_definite_carry_the_mark_in_their_titles(tmp_path, runs):
    from hpcflow.analysis import products

    bad = _indefinite(runs["nn"], tmp_path / "indefinite")
    figures = products.fig4_ntk([bad, runs["nn"]], names={bad: "indefinite", runs["nn"]: "healthy"}).figures
    titles = {name: fig._suptitle.get_text() for name, fig in figures.items()}
    assert titles == {
        "fig4_ntk_indefinite.png": f"indefinite: Fig. 4: metric-NTK evolution\n{MARK}",
        # the count is of the job's main network (history/val_not_positive_definite), not of the sweep's networks
        "fig4_width_sweep_indefinite.png": f"indefinite: Width sweep: lazy (NTK fixed) versus feature-learning regime\n"
                                           f"(the job's main network: {MARK[1:]}",
        "fig4_ntk_healthy.png": "healthy: Fig. 4: metric-NTK evolution",
        "fig4_width_sweep_healthy.png": "healthy: Width sweep: lazy (NTK fixed) versus feature-learning regime"}


def test_fig4_ntk_writes_the_mark_into_the_title_of_its_pngs(tmp_path, runs):
    bad = _indefinite(runs["nn"], tmp_path / "indefinite")
    proc = script("fig4_ntk", bad, "--out", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    titles = _titles(tmp_path / "figs")
    assert sorted(titles) == ["fig4_ntk.png", "fig4_width_sweep.png"]
    assert titles["fig4_ntk.png"].endswith(f"\n{MARK}"), titles
    assert titles["fig4_width_sweep.png"].endswith(f"\n(the job's main network: {MARK[1:]}"), titles
    healthy = script("fig4_ntk", runs["nn"], "--out", tmp_path / "ok")
    assert healthy.returncode == 0, healthy.stderr
    assert all(t and "not positive definite" not in t for t in _titles(tmp_path / "ok").values())
