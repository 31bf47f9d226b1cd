"""The slice plot's best trial stands out from the axes' background: the topmost mark drawn at its point has a
contrast ratio (WCAG 2 relative luminance) of at least 3 against the panel's face colour and against white, and
so does every trial's point (Optuna colours trial 0, here the best, #f7fbff: ratio ~1.2 on its grey, ~1.03 on white).
"""

from __future__ import annotations

import numpy as np
import optuna
from matplotlib.colors import to_rgb
from optuna.distributions import CategoricalDistribution, FloatDistribution


def _luminance(rgb) -> float:
    c = np.array(to_rgb(rgb), dtype=float)
    lin = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(lin @ [0.2126, 0.7152, 0.0722])


def _contrast(a, b) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _study(direction):
    study = optuna.create_study(study_name="s", direction=direction)
    dt = FloatDistribution(1e-2, 1e4, log=True)
    form = CategoricalDistribution(["exp", "gauss"])
    values = (0.2, 1.0, 3.0, 2.0) if direction == "minimize" else (3.0, 1.0, 0.2, 2.0)  # trial 0 best
    for i, (x, f) in enumerate(((0.1, "exp"), (10.0, "gauss"), (1000.0, "exp"), (3.0, "gauss"))):
        study.add_trial(optuna.trial.create_trial(params={"flow.dt": x, "kernel.form": f},
                                                  distributions={"flow.dt": dt, "kernel.form": form},
                                                  value=values[i]))
    return study


def _top_colour_at(ax, x, y):
    """The face colour of the topmost collection drawn with a point at data (x, y) (its display position)."""
    want = ax.transData.transform((x, y))
    hits = []
    for c in ax.collections:
        offsets = np.asarray(c.get_offsets())
        if not len(offsets):
            continue
        shown = c.get_offset_transform().transform(offsets)
        at = np.flatnonzero(np.hypot(*(shown - want).T) < 1.0)
        if len(at):
            faces = c.get_facecolors()
            hits.append((c.get_zorder(), faces[at[0] if len(faces) > 1 else 0]))
    assert hits, (x, y)
    return max(hits, key=lambda h: h[0])[1]


def test_the_best_trial_is_drawn_in_a_colour_that_stands_out_in_every_slice_panel():
    from hpcflow.analysis.optuna_view import plot

    for direction in ("minimize", "maximize"):
        study = _study(direction)
        assert study.best_trial.number == 0
        fig = plot(study, "slice")
        fig.canvas.draw()
        panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
        assert len(panels) == 2
        best = study.best_trial
        for ax in panels:
            points = next(c for c in ax.collections if c.get_array() is not None and len(c.get_array()))
            numbers = list(np.asarray(points.get_array(), dtype=int))
            x, y = np.asarray(points.get_offsets())[numbers.index(best.number)]
            assert y == best.value
            colour = _top_colour_at(ax, x, y)
            for ground in (ax.get_facecolor(), "white"):
                assert _contrast(colour, ground) >= 3.0, (ax.get_xlabel(), colour, ground)
            for face in points.get_facecolors():  # no trial's point fades into a white page
                assert _contrast(face, "white") >= 1.5, face
        assert any(f"best trial {best.number}" in t.get_text() for ax in panels if ax.get_legend()
                   for t in ax.get_legend().get_texts())
