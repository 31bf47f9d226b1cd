"""The sigma histories of many runs (a report over runs/*): the legend beside the axes holds every entry inside the
figure, or lists the first and says how many more it leaves out; the constrained layout does not collapse (it warned
and drew the legend cut off at the bottom and the right edge)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest


def _runs(n: int, *, both_units: bool = True) -> list:
    """`n` small runs with long names; every third a network's (per epoch) where `both_units`."""
    runs = []
    for i in range(n):
        unit = "epoch" if both_units and i % 3 == 0 else "flow step"
        sigma = np.geomspace(0.4, 1e-3, 7) * (1 + i / n)
        runs.append({"x": np.arange(7), "train": sigma, "test": sigma * 1.2, "unit": unit,
                     "label": f"runs/flow_gaussian_seed{i:02d}_dt0.65 [gaussian]"})
    return runs


def _drawn(runs):
    """The figure of `runs` drawn (as the report writes it), the warnings its drawing and saving gave, its legend."""
    from hpcflow.analysis import histories
    from hpcflow.analysis.figure import png_bytes

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = histories.plot(runs)
        png_bytes(fig, "sigma_history.png")
        fig.canvas.draw()
    (legend,) = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return fig, [str(w.message) for w in caught if issubclass(w.category, UserWarning)], legend


def _inside(fig, legend):
    renderer = fig.canvas.get_renderer()
    box, frame = legend.get_window_extent(renderer), fig.bbox
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1, (box, frame)
    for text in legend.get_texts():  # no label cut at the figure's edge
        t = text.get_window_extent(renderer)
        assert frame.x0 <= t.x0 and t.x1 <= frame.x1 and frame.y0 <= t.y0 and t.y1 <= frame.y1, (text.get_text(), t)
    for ax in fig.axes:  # the axes kept a size of their own
        assert ax.get_position().height > 0.3 and ax.get_position().width > 0.1, ax.get_position()


@pytest.mark.parametrize("n, both_units", [(30, True), (60, False)])
def test_the_legend_of_many_runs_lies_inside_the_figure_and_lists_every_curve(n, both_units):
    runs = _runs(n, both_units=both_units)
    fig, caught, legend = _drawn(runs)
    assert caught == [], caught
    _inside(fig, legend)
    expected = [f"{r['label']} {kind}" for r in runs
                for kind in ("train", "validation" if r["unit"] == "epoch" else "test")]
    assert [t.get_text() for t in legend.get_texts()] == expected


def test_a_legend_too_long_for_its_columns_lists_the_first_entries_and_says_how_many_more():
    runs = _runs(100, both_units=False)
    fig, caught, legend = _drawn(runs)
    assert caught == [], caught
    _inside(fig, legend)
    texts = [t.get_text() for t in legend.get_texts()]
    match = re.fullmatch(r"\+(\d+) more runs \(not listed\)", texts[-1])  # runs, not legend lines
    assert match, texts[-1]
    listed = texts[:-1]
    every = [f"{r['label']} {kind}" for r in runs for kind in ("train", "test")]
    assert listed == every[:len(listed)] and len(listed) % 2 == 0, listed[-2:]  # a run's test line kept with its train
    assert len(listed) // 2 + int(match.group(1)) == len(runs) == 100
    assert len(listed) > 60  # more than one column's worth


def test_a_long_run_name_is_wrapped_in_the_legend():
    """One run named with 160 characters made the figure over 2000 px wide: its entries are wrapped at 60
    characters, every character kept, and the figure is no wider than with a name of 60."""
    def width(label):
        run = _runs(1, both_units=False)[0]
        fig, caught, legend = _drawn([{**run, "label": label}])
        assert caught == [], caught
        _inside(fig, legend)
        return fig, [t.get_text() for t in legend.get_texts()]

    name = "runs/" + "a_very_long_directory_name_" * 6 + "x" * 3
    assert len(name) > 160
    fig, texts = width(name)
    lines = texts[0].split("\n")
    assert max(map(len, lines)) <= 60 and len(lines) >= 3, lines
    assert texts[0].replace("\n", "").replace(" ", "") == f"{name}train", texts[0]  # (a space at a break dropped)
    short, _ = width(name[:54])  # "NAME train": 60 characters, one line
    assert fig.get_size_inches()[0] <= short.get_size_inches()[0] * 1.05, (fig.get_size_inches(),
                                                                            short.get_size_inches())
