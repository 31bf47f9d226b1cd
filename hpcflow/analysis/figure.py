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


def legend_beside(fig, ax, width: float, height: float, **kwargs):
    """`ax`'s legend (`kwargs`: Axes.legend's) to the right of the axes, where no curve or point runs under it, and
    `fig` made `width` inches plus the legend's width wide and `height` tall, so that the axes keep their width
    however long the entries (run names, paths, the scales a noise scan has no points at); the legend."""
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)
    literal(fig)  # the texts as written, before the legend is measured
    wide = legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    fig.set_size_inches(width + wide, height)  # constrained layout makes room for it
    return legend


def titled(fig, name: str):
    """`fig` with run `name` heading its title ("NAME: title"; NAME alone where it has none), so that a figure of
    one run among several says whose it is; `fig` itself."""
    old = fig._suptitle.get_text() if fig._suptitle is not None else ""  # Figure.get_suptitle: matplotlib >= 3.8
    fig.suptitle(f"{name}: {old}" if old else name)
    return literal(fig)


def literal(fig):
    """`fig` with its texts drawn as written: titles, axis labels, legends, free texts and the tick labels of named
    categories (a study's parameters and their choices) come from run names, paths and a study's names, whose '$'
    pairs matplotlib would otherwise parse as mathtext (a traceback, or a name drawn wrong), and whose bytes that are
    no UTF-8 it cannot draw (`rundir.shown`: as \\xff); numeric tick labels keep their mathtext (a log axis's 10^k).
    No figure here draws mathtext on purpose. `fig` itself."""
    from matplotlib.ticker import FixedFormatter, FuncFormatter

    from hpcflow.analysis.rundir import shown

    texts = [t for t in (fig._suptitle, fig._supxlabel, fig._supylabel) if t is not None] + list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += [*legend.get_texts(), legend.get_title()]
        for axis in (ax.xaxis, ax.yaxis):
            for which in ("major", "minor"):
                fmt = getattr(axis, which).formatter
                named = isinstance(fmt, (FixedFormatter, FuncFormatter)) or type(fmt).__name__ == "StrCategoryFormatter"
                if named and not getattr(fmt, "_literal", False):  # labels given as text, not numbers formatted
                    escaped = FuncFormatter(lambda x, pos, fmt=fmt: _escaped(fmt(x, pos)))
                    escaped._literal = True
                    escaped.format_ticks = lambda values, fmt=fmt: [_escaped(v) for v in fmt.format_ticks(values)]
                    getattr(axis, f"set_{which}_formatter")(escaped)
    for text in texts:
        text.set_parse_math(False)
        text.set_text(shown(text.get_text()))  # a file name's bytes that are no UTF-8: as \xff, not a traceback
    return fig


def _escaped(text: str) -> str:
    """`text` whose '$' matplotlib draws as written where the text's math is parsed (a tick label's), as `shown`."""
    from hpcflow.analysis.rundir import shown

    return shown(text).replace("$", "\\$")


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
    literal(fig)  # a run's name, path or study's name drawn as written ('$' pairs are no mathtext)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_file(path) as fh:
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""  # as `titled` reads it
        fig.savefig(fh, format="png", dpi=dpi, metadata={"Title": title} if title else None)
    return os.fspath(path)
