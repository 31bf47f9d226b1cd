"""The sigma-history figure draws up to 40 runs each in its own way: ten colours times four pairs of line styles
(train, held-out), where the colours alone repeated every ten runs (runs 01, 11, 21 and 31 looked the same)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")


def _run(i: int) -> dict:
    x = np.arange(5.0)
    return {"x": x, "train": 0.5 * 0.9 ** x + i * 1e-3, "test": 0.6 * 0.95 ** x + i * 1e-3, "label": f"run{i:02d}",
            "unit": "flow step"}


def _look(line) -> tuple:
    """What tells a line apart by eye: its colour (RGBA) and its dash pattern as drawn (offset, on/off lengths)."""
    from matplotlib.colors import to_rgba

    offset, dashes = line._unscaled_dash_pattern  # (None: solid)
    return to_rgba(line.get_color()), (float(offset), tuple(map(float, dashes)) if dashes else None)


@pytest.mark.parametrize("style", ["default", "ggplot"])
def test_forty_runs_are_forty_distinct_pairs_of_lines(style):
    """Under matplotlib's default style and under one whose colour cycle has 7 colours (ggplot, which Optuna's views
    set for the whole process: the colours C0..C9 repeated after 7 there)."""
    import matplotlib.style

    from hpcflow.analysis import histories

    with matplotlib.style.context(style):  # (the colours read as drawn, under that style)
        fig = histories.plot([_run(i) for i in range(40)])
        lines = [line for line in fig.axes[0].get_lines() if len(line.get_xdata())]
        assert len(lines) == 80
        looks = [_look(line) for line in lines]
        assert len(set(looks)) == 80, "two curves drawn alike"
        train, held = looks[0::2], looks[1::2]
        assert all(t[0] == h[0] for t, h in zip(train, held))  # a run's two curves share its colour
        assert _look(lines[0])[1][1] is None and lines[0].get_linestyle() == "-"  # the first ten runs as before
        assert lines[1].get_linestyle() == "--"
        assert len({c for c, _ in train}) == 10 and len({d for _, d in train}) == 4 and len({d for _, d in held}) == 4
        assert not {d for _, d in train} & {d for _, d in held}  # a train curve's style is never a held-out one's
