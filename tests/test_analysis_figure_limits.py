"""Where the figures' axes end and what their titles say: a per-rank panel's constant line below its top spine, the
noise scan's distance axis from 0 (no negative FS distances), the distance-scaling title naming the run's manifold,
and the sigma histories' title over their two panels, not over the panels and the legend beside them."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_runs import run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_a_constant_per_rank_line_lies_below_the_top_of_its_panel():
    """Two ranks receiving 2736 and 2952 bytes every step (as a two-rank flow records them): the panel, from 0, ended
    10.8 bytes above 2952 (a margin of the lines' spread), the upper line on its spine. Now at least 2% of the
    panel's height lies above it."""
    from hpcflow.analysis.histories import plot_per_rank

    run = {"label": "r", "unit": "flow step", "step_seconds": np.array([[0.1, 0.12], [0.11, 0.1], [0.1, 0.1]]),
           "comm_bytes": np.array([[2736.0, 2952.0]] * 3)}
    fig = plot_per_rank(run)
    fig.canvas.draw()
    ax = next(a for a in fig.axes if a.get_ylabel() == "bytes received")
    bottom, top = ax.get_ylim()
    assert bottom == 0.0 and (top - 2952.0) >= 0.02 * top, (bottom, top)
    seconds = next(a for a in fig.axes if a.get_ylabel() == "step time [s]")
    assert seconds.get_ylim()[1] > 0.12


def test_the_noise_scan_distance_axis_starts_at_zero(runs, tmp_path):
    """The scan's first level (scale 0) is at FS distance 0, its smallest; an FS distance is never negative, so the
    axis starts there (the symlog axis's margin reached below 0)."""
    from hpcflow.analysis import products
    from hpcflow.analysis.figure import save_png

    fig = products.fig3_noise_scan([runs["noise"]]).figures["fig3_noise.png"]
    save_png(fig, tmp_path / "f.png")
    ax = fig.axes[0]
    assert ax.get_xlim()[0] == 0.0, ax.get_xlim()
    line = ax.get_lines()[0]
    assert min(line.get_xdata()) == 0.0  # the level at distance 0 is drawn (not clipped away)
    assert not line.get_clip_on()


def test_the_distance_scaling_title_names_the_manifold(runs):
    """The fixture's distance_scaling job: manifold = "fermat", dim = 3."""
    from hpcflow.analysis import products

    fig = products.fig3_distance_scaling([runs["scaling"]]).figures["fig3_scaling.png"]
    title = fig.axes[0].get_title()
    assert title == "Fig. 3 right: distance scaling (fermat, dim 3)", title


def test_the_sigma_histories_title_is_centred_over_the_two_panels(runs, tmp_path):
    from hpcflow.analysis import products
    from hpcflow.analysis.figure import save_png

    fig = products.sigma_history([runs["flow"], runs["nn"]]).figures["sigma_history.png"]
    save_png(fig, tmp_path / "s.png")
    renderer = fig.canvas.get_renderer()
    panels = [ax.get_window_extent(renderer) for ax in fig.axes[:2]]
    middle = (panels[0].x0 + panels[1].x1) / 2
    title = fig._suptitle.get_window_extent(renderer)
    assert abs((title.x0 + title.x1) / 2 - middle) < 0.01 * fig.bbox.width, ((title.x0 + title.x1) / 2, middle)
