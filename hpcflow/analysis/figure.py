"""Figures without pyplot's global state: an Agg-canvas Figure, and a PNG writer that refuses bare axes."""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hpcflow.atomic import atomic_file


def new_figure(nrows: int = 1, ncols: int = 1, *, size=(6.4, 4.8)):
    """(fig, axes) on an Agg canvas; axes is a flat list."""
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    return fig, axes


def drawn(ax) -> bool:
    """True when the axes shows data: a line with points, an image, a bar/patch or a collection."""
    if any(len(line.get_xdata()) for line in ax.get_lines()):
        return True
    return bool(ax.images or ax.collections or ax.patches)


def save_png(fig, path, *, dpi: int = 110) -> str:
    """Write `fig` as PNG atomically; ValueError when any of its axes draws no data (a bare figure)."""
    bare = [i for i, ax in enumerate(fig.axes) if ax.get_label() != "<colorbar>" and not drawn(ax)]
    if not fig.axes or bare:
        raise ValueError(f"{path}: figure has bare axes {bare}; nothing to draw")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_file(path) as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    return os.fspath(path)
