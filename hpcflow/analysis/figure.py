"""Figures without pyplot's global state: an Agg-canvas Figure, and a PNG writer that refuses bare axes.

matplotlib is imported when a figure is made, so what draws none (Table 1) reads and writes without it."""

from __future__ import annotations

import importlib
import os

from hpcflow.atomic import atomic_file
from hpcflow.errors import MissingDependencyError

#: the fix for a missing matplotlib
INSTALL_HINT = "pip install matplotlib"


def require_matplotlib() -> None:
    """MissingDependencyError naming the install line where matplotlib, which draws every figure, cannot be
    imported."""
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise MissingDependencyError(f"drawing figures needs matplotlib, which is not installed; run {INSTALL_HINT}"
                                     ) from None


def new_figure(nrows: int = 1, ncols: int = 1, *, size=(6.4, 4.8)):
    """(fig, axes) on an Agg canvas; axes is a flat list."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    return fig, axes


def titled(fig, name: str):
    """`fig` with run `name` heading its title ("NAME: title"; NAME alone where it has none), so that a figure of
    one run among several says whose it is; `fig` itself."""
    old = fig._suptitle.get_text() if fig._suptitle is not None else ""  # Figure.get_suptitle: matplotlib >= 3.8
    fig.suptitle(f"{name}: {old}" if old else name)
    return fig


def drawn(ax) -> bool:
    """True when the axes shows data: a line with points, an image, a bar/patch or a collection."""
    if any(len(line.get_xdata()) for line in ax.get_lines()):
        return True
    return bool(ax.images or ax.collections or ax.patches)


def save_png(fig, path, *, dpi: int = 110) -> str:
    """Write `fig` as PNG atomically, its title (suptitle) also as the file's Title text, so that what the title
    says (the run, its marks) can be read without looking at the image; ValueError when any of its axes draws no
    data (a bare figure)."""
    bare = [i for i, ax in enumerate(fig.axes) if ax.get_label() != "<colorbar>" and not drawn(ax)]
    if not fig.axes or bare:
        raise ValueError(f"{path}: figure has bare axes {bare}; nothing to draw")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_file(path) as fh:
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""  # as `titled` reads it
        fig.savefig(fh, format="png", dpi=dpi, metadata={"Title": title} if title else None)
    return os.fspath(path)
