"""optuna_view's figures with every label whole and apart: the importances' parameter names and axis label inside
the figure (they were cut at its left edge), a categorical parameter's choices in the slice plot apart from each
other (they ran together), and a log axis's tick labels apart."""

from __future__ import annotations

import math
import random

import pytest

optuna = pytest.importorskip("optuna")
pytest.importorskip("matplotlib")

from optuna.distributions import CategoricalDistribution, FloatDistribution  # noqa: E402

SPACE = {"kernel.width": FloatDistribution(0.01, 1.0, log=True), "flow.dt": FloatDistribution(0.1, 10, log=True),
         "kernel.form": CategoricalDistribution(["exp", "gauss", "inverse_multiquadric", "laplace_like"]),
         "flow.loss": CategoricalDistribution(["ultralocal", "sigma", "monge_ampere_local"])}


def _study():
    rng = random.Random(0)
    study = optuna.create_study(study_name="s", direction="maximize")
    for _ in range(12):
        params = {"kernel.width": rng.uniform(0.01, 1), "flow.dt": rng.uniform(0.9, 9),
                  "kernel.form": rng.choice(SPACE["kernel.form"].choices),
                  "flow.loss": rng.choice(SPACE["flow.loss"].choices)}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=SPACE, value=rng.random() * 1e6))
    return study


def _drawn(view):
    from hpcflow.analysis.optuna_view import plot

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = plot(_study(), view)
    FigureCanvasAgg(fig).draw()  # as the PNG is drawn
    return fig, fig.canvas.get_renderer()


def _boxes(labels, renderer):
    return [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]


def test_the_importances_labels_are_inside_the_figure():
    fig, renderer = _drawn("importances")
    width, height = fig.bbox.width, fig.bbox.height
    ax = fig.axes[0]
    boxes = _boxes([*ax.get_yticklabels(), ax.yaxis.label, ax.xaxis.label], renderer)
    assert len(boxes) >= len(SPACE) + 2
    for box in boxes:
        assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, box


def _apart(a, b, renderer) -> bool:
    """Whether tick labels `a` and `b` of one axis (a left of b) do not overlap: unrotated, their boxes are disjoint;
    slanted alike by angle t, they lie on parallel lines through their ticks, (x_b - x_a) sin t apart, which must
    leave the height of a line of text between them (their boxes overlap though the texts do not)."""
    if a.get_rotation() == 0 and b.get_rotation() == 0:
        return not a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))
    assert a.get_rotation() == b.get_rotation()
    _, h, _ = renderer.get_text_width_height_descent("Ag", a.get_fontproperties(), ismath=False)
    dx = abs(a.get_transform().transform(a.get_position())[0] - b.get_transform().transform(b.get_position())[0])
    return dx * math.sin(math.radians(a.get_rotation())) >= h


def test_the_slice_plots_tick_labels_do_not_overlap():
    fig, renderer = _drawn("slice")
    checked = 0
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        lo, hi = ax.get_xlim()
        labels = sorted([t for t in [*ax.get_xticklabels(), *ax.get_xticklabels(minor=True)]
                         if t.get_visible() and t.get_text() and lo <= t.get_position()[0] <= hi],
                        key=lambda t: t.get_position()[0])
        for a, b in zip(labels, labels[1:]):
            assert _apart(a, b, renderer), (ax.get_xlabel(), a.get_text(), b.get_text())
        checked += len(labels) > 1
    assert checked >= 2  # the two categorical axes at least
