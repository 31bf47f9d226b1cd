"""Fig. 3 left's legend stands beside the axes, inside the figure: an entry naming the scales a scan has no test
points at was wider than the axes, its box began left of the PNG's edge and covered a data point."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")

SCALES = np.array([0.0, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0])


def _scan(kernel, label, distance, gain, stopped=None) -> dict:
    n = len(SCALES)
    return {"kernel": kernel, "project": True, "label": label, "scale": SCALES, "distance": np.asarray(distance),
            "distance_to_source": np.asarray(distance), "gain": np.asarray(gain),
            "stopped": stopped or [""] * n, "steps_taken": [5] * n, "unknown": [""] * n}


def _scans() -> list:
    d = np.array([0.0, 2.8e-4, 9.3e-4, 2.7e-3, 9.2e-3, 2.7e-2, 9.1e-2, 0.27, 0.48])
    whole = _scan("gaussian", "nd", d, [0.54, 0.54, 0.54, 0.54, 0.55, 0.55, 0.50, 0.60, 0.34],
                  stopped=["step 8: no dt keeps all metrics positive definite"] * len(SCALES))
    nan = np.full(len(SCALES) - 1, np.nan)
    empty = _scan("delta", "nm", np.r_[0.0, nan], np.r_[1.13, nan],
                  stopped=["", *["no test gain: 0 of 200 test points left"] * (len(SCALES) - 1)])
    return [whole, empty]


def test_the_legend_is_inside_the_figure_and_covers_no_data_point():
    from hpcflow.analysis.fig3_noise import plot

    fig = plot(_scans())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    legend = ax.get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert any("no test points left at scale 0.0003, 0.001" in t for t in texts), texts  # the wide entry
    box = legend.get_window_extent(renderer)
    assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, (box, fig.bbox)
    points = np.concatenate([line.get_transform().transform(np.column_stack(line.get_data()))
                             for line in ax.get_lines() if line.get_marker() not in (None, "None", "")])
    points = points[np.isfinite(points).all(axis=1)]
    assert len(points) >= 10  # the scans' points (the gain-1 line has no marker)
    inside = (points[:, 0] >= box.x0) & (points[:, 0] <= box.x1) & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1)
    assert not inside.any(), points[inside]
    assert not box.overlaps(ax.get_window_extent(renderer)), (box, ax.get_window_extent(renderer))
