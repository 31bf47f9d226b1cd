"""A figure's titles are drawn whole inside it: a long run name or an 'incomplete: ...' mark in the title (the
per-rank figure's, a titled product's) is broken into lines instead of being cut off at both edges."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_runs import run_dirs

pytest.importorskip("matplotlib")

LONG = "run_" + "x" * 76  # a long run directory name, no space to break it at
MARK = "r_kill [gaussian] (incomplete: no summary.json, interrupted at step 260)"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _inside(fig, text):
    """Assert `text` (a Text of `fig`, as saved) lies within the figure."""
    fig.canvas.draw()
    box = text.get_window_extent(fig.canvas.get_renderer())
    assert box.width > 0
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (box, fig.bbox.width, text.get_text())
    assert box.y0 >= 0 and box.y1 <= fig.bbox.height, (box, fig.bbox.height, text.get_text())


def test_a_per_rank_title_with_an_incomplete_mark_is_drawn_whole(tmp_path):
    from hpcflow.analysis import histories
    from hpcflow.analysis.figure import png_bytes

    run = {"label": MARK, "unit": "flow step", "step_seconds": np.linspace(0.01, 0.02, 10).reshape(10, 1)}
    fig = histories.plot_per_rank(run)
    png_bytes(fig, tmp_path / "per_rank.png")
    _inside(fig, fig._suptitle)
    assert " ".join(fig._suptitle.get_text().split()) == f"per-rank cost: {MARK}"  # the whole text, on its lines


@pytest.mark.parametrize("kind", ["flow", "scaling"])
def test_a_long_run_name_heading_a_title_is_drawn_whole(runs, kind, tmp_path):
    from hpcflow.analysis import fig3_scaling, histories
    from hpcflow.analysis.figure import png_bytes, titled

    fig = (histories.plot(histories.load(runs[kind])) if kind == "flow"
           else fig3_scaling.plot(fig3_scaling.load(runs[kind])))
    titled(fig, LONG)
    png_bytes(fig, tmp_path / "fig.png")
    _inside(fig, fig._suptitle)
    assert fig._suptitle.get_text().replace("\n", "").startswith(LONG)
    for ax in fig.axes:
        if ax.get_title():
            _inside(fig, ax.title)
