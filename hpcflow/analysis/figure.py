"""Figures without pyplot's global state: an Agg-canvas Figure, and a PNG writer that refuses bare axes.

matplotlib is imported when a figure is made, so what draws none (Table 1) reads and writes without it."""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from contextlib import contextmanager
from itertools import accumulate

from hpcflow.atomic import atomic_file
from hpcflow.errors import MissingDependencyError

#: the fix for a missing matplotlib
INSTALL_HINT = "pip install matplotlib"
#: the variable naming matplotlib's backend, which matplotlib reads (and validates) once, at its import
BACKEND_VARIABLE = "MPLBACKEND"


def require_matplotlib() -> None:
    """MissingDependencyError naming the install line where matplotlib, which draws every figure, cannot be
    imported. The figures here are drawn on Agg canvases (`new_figure`, `agg_pyplot`) whatever the backend, so
    matplotlib is imported without MPLBACKEND (`_import_matplotlib`): a name it does not know (a typo, or Jupyter's
    `module://matplotlib_inline.backend_inline` outside Jupyter) would end its import in a ValueError."""
    try:
        _import_matplotlib()
    except ImportError:
        raise MissingDependencyError(f"drawing figures needs matplotlib, which is not installed; run {INSTALL_HINT}"
                                     ) from None


def _import_matplotlib() -> None:
    """Import matplotlib (once) with MPLBACKEND out of the environment for the import alone, then give its
    rcParams['backend'] the variable's value where matplotlib takes it, as its import would have (a caller in the
    same process that draws with pyplot afterwards gets the backend it asked for); a value it refuses is left
    unused. The variable is put back at once, so child processes see it as the user set it."""
    if sys.modules.get("matplotlib") is not None:  # (None: an import that failed, or was blocked, before)
        return
    backend = os.environ.pop(BACKEND_VARIABLE, None)
    try:
        matplotlib = importlib.import_module("matplotlib")
    finally:
        if backend is not None:
            os.environ[BACKEND_VARIABLE] = backend
    if backend:
        try:
            matplotlib.rcParams["backend"] = backend
        except ValueError:  # no backend matplotlib knows: the figures here need none
            pass


@contextmanager
def agg_pyplot():
    """pyplot (yielded) whose new figures are made on Agg canvases for the block: Optuna's views draw with pyplot,
    whose backend is the process's (MPLBACKEND, an in-process caller's choice, or one picked for a display); here it
    is neither looked up nor switched (switching closes the caller's open figures), and no window system is asked
    for. The figures drawn in the block are pyplot's until closed (`plt.close(fig)`)."""
    require_matplotlib()
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new_figure_manager(num, *args, FigureClass=Figure, **kwargs):
        return FigureCanvasAgg.new_manager(FigureClass(*args, **kwargs), num)

    def draw_if_interactive(*args, **kwargs):  # an Agg figure is drawn when saved
        pass

    saved = plt.new_figure_manager, plt.draw_if_interactive
    plt.new_figure_manager, plt.draw_if_interactive = new_figure_manager, draw_if_interactive
    try:
        yield plt
    finally:
        plt.new_figure_manager, plt.draw_if_interactive = saved


#: the attribute of a figure holding the rcParams it was drawn under where they are not the process's (`own_style`)
STYLE = "_hpcflow_style"


@contextmanager
def own_style():
    """A block whose changes to matplotlib's rcParams (Optuna's views call plt.style.use("ggplot"), which would restyle
    every figure drawn after them: the sigma histories of a report with a study) are undone at its end; yields a
    function that gives a figure drawn in the block those settings for its saving (`save_png`), so it is written as
    it was drawn."""
    import matplotlib

    def keep(fig):
        inside = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
        setattr(fig, STYLE, {k: v for k, v in inside.items() if outside.get(k) != v})
        return fig

    outside = {k: v for k, v in matplotlib.rcParams.items() if k != "backend"}
    with matplotlib.rc_context():
        yield keep


def new_figure(nrows: int = 1, ncols: int = 1, *, size=(6.4, 4.8)):
    """(fig, axes) on an Agg canvas; axes is a flat list."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    return fig, axes


#: the tallest a figure grows to hold the legend beside its axes, times the height it is drawn at (`legend_beside`)
TALLEST = 2.0
#: the most columns that legend takes; entries beyond what they hold are said by a last "+N more" entry
COLUMNS = 3
#: the room kept below the legend beside the axes, inches
SLACK = 0.1
#: the most characters of a line of a run's legend entry (`wrapped`): a longer entry (a long run name) is wrapped, so
#: that the legend beside the axes does not make the figure as wide
LABEL_WIDTH = 60


def wrapped(label: str, width: int = LABEL_WIDTH) -> str:
    """`label` in lines of at most `width` characters, broken at spaces where it has them and anywhere in a longer
    word (a path, a run name); as it is where it fits one line."""
    import textwrap

    if len(label) <= width:
        return label
    return "\n".join(textwrap.wrap(label, width, break_long_words=True, break_on_hyphens=False)) or label


def legend_beside(fig, ax, width: float, height: float, *, groups=None, **kwargs):
    """`ax`'s legend (`kwargs`: Axes.legend's) to the right of the axes, where no curve or point runs under it, and
    `fig` made `width` inches plus the legend's width wide and `height` tall, so that the axes keep their width
    however long the entries (run names, paths, the scales a noise scan has no points at); the legend.
    A legend taller than the axes (many runs) is not cut off, and the layout does not collapse: the figure grows to
    hold it, up to TALLEST times `height`; beyond that the entries are set in up to COLUMNS columns, and what those
    cannot hold is said by a last entry, '+N more (not listed)'. `groups`: the number of consecutive entries of each
    thing listed (a run's train and test lines), which are then listed or left out whole, the last entry saying
    '+N more runs (not listed)'."""
    handles = kwargs.pop("handles", None)
    labels = kwargs.pop("labels", None)
    if handles is None:
        handles, found = ax.get_legend_handles_labels()
        labels = found if labels is None else labels
    elif labels is None:
        labels = [h.get_label() for h in handles]
    handles, labels = list(handles), list(labels)
    unit = " runs" if groups is not None else ""
    groups = list(groups) if groups is not None else [1] * len(handles)
    ends = list(accumulate(groups))  # the entry after each group's last

    def make(ncol, hs, ls):
        legend = ax.legend(hs, ls, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, ncol=ncol,
                           **kwargs)
        literal(fig)  # the texts as written, before the legend is measured
        return legend, legend.get_window_extent(fig.canvas.get_renderer())

    fig.set_size_inches(width, height)
    legend, box = make(1, handles, labels)
    legend.set_in_layout(False)  # the room the axes' own decorations take (titles, tick labels, axis labels)
    fig.set_size_inches(width + box.width / fig.dpi, height)
    fig.canvas.draw()
    around = height - ax.get_position().height * height  # (inches; constrained layout keeps them as the figure grows)
    room = TALLEST * height - around - SLACK  # the tallest the legend may be
    ncol = 1
    while box.height / fig.dpi > room and ncol < min(COLUMNS, len(handles)):
        ncol += 1
        legend, box = make(ncol, handles, labels)
    if box.height / fig.dpi > room and len(handles) > 1:  # more than COLUMNS columns hold: the first, and how many more
        from matplotlib.lines import Line2D

        per_row = box.height / fig.dpi / -(-len(handles) // ncol)  # (an upper bound: the frame's padding included)
        fit = max(1, int(room / per_row) * ncol - 1)
        shown = max(1, sum(end <= fit for end in ends))  # whole groups only: at least the first
        while True:
            keep = ends[shown - 1]
            more = Line2D([], [], linestyle="none", marker="none")
            legend, box = make(ncol, handles[:keep] + [more],
                               labels[:keep] + [f"+{len(groups) - shown} more{unit} (not listed)"])
            if box.height / fig.dpi <= room or shown <= 1:
                break
            fewer = ends[shown - 1] - ncol  # a row of entries fewer, in whole groups
            shown = max(1, min(shown - 1, sum(end <= fewer for end in ends)))
    fig.set_size_inches(width + box.width / fig.dpi, max(height, box.height / fig.dpi + around + SLACK))
    legend.set_in_layout(True)  # constrained layout makes room for it
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
    no UTF-8 it cannot draw (`rundir.shown`: as \\xff); numeric tick labels keep their mathtext (a log axis's 10^k),
    and so do the texts `mathtext` marks (formulas written here, holding no name). `fig` itself."""
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
        if getattr(text, "_hpcflow_math", False):  # a formula drawn as mathtext on purpose (`mathtext`)
            continue
        text.set_parse_math(False)
        text.set_text(shown(text.get_text()))  # a file name's bytes that are no UTF-8: as \xff, not a traceback
    return fig


def mathtext(text):
    """Matplotlib Text `text` (an axis label: `ax.xaxis.label`) marked as a formula that `literal` leaves to
    mathtext, so that its subscripts ($B_{IJ}$, $\\|\\Theta_0\\|_F$) are typeset; only for texts written here, never
    for a run's or study's name. `text` itself."""
    text.set_parse_math(True)
    text._hpcflow_math = True
    return text


def _escaped(text: str) -> str:
    """`text` whose '$' matplotlib draws as written where the text's math is parsed (a tick label's), as `shown`."""
    from hpcflow.analysis.rundir import shown

    return shown(text).replace("$", "\\$")


def drawn(ax) -> bool:
    """True when the axes shows data: a line with points, an image, a bar/patch or a collection."""
    if any(len(line.get_xdata()) for line in ax.get_lines()):
        return True
    return bool(ax.images or ax.collections or ax.patches)


def save_png(fig, path, *, dpi: int = 110, opener=None) -> str:
    """Write `fig` as PNG (`png_bytes`) atomically, or through `opener(path, "wb")` (`owned.write_owned`'s, which
    writes a temporary renamed once every file of the call is written); ValueError before anything is written when
    any of its axes draws no data (a bare figure). Its path."""
    _check_drawn(fig, path)
    if opener is None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with (opener or atomic_file)(path, "wb") as fh:
        fh.write(png_bytes(fig, path, dpi=dpi))
    return os.fspath(path)


#: matplotlib's warning for a character its fonts lack (a run named in Japanese: DejaVu Sans has no CJK glyphs), once
#: per character, with a source line, at every drawing of the text
GLYPH_MISSING = r"Glyph \d+ .*missing from (current )?font"  # (matplotlib < 3.9 says "from current font")


@contextmanager
def glyphs_quiet():
    """Drawing in the block without matplotlib's GLYPH_MISSING warnings: such a character shows as a box, which the
    name in the printed lines, captions and tables beside the figure says as written."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", GLYPH_MISSING, Warning)
        yield


def png_bytes(fig, path, *, dpi: int = 110) -> bytes:
    """`fig` as the bytes of a PNG file (for `path`, named in its errors), its title (suptitle) also as the file's
    Title text, so that what the title says (the run, its marks) can be read without looking at the image, drawn
    under the rcParams it was drawn with where they were its own (`own_style`); ValueError when any of its axes draws
    no data (a bare figure)."""
    import io

    import matplotlib

    _check_drawn(fig, path)
    literal(fig)  # a run's name, path or study's name drawn as written ('$' pairs are no mathtext)
    buf = io.BytesIO()
    with matplotlib.rc_context(getattr(fig, STYLE, None)), glyphs_quiet():  # (`own_style`)
        title = fig._suptitle.get_text() if fig._suptitle is not None else ""  # as `titled` reads it
        fit_titles(fig)
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Title": title} if title else None)
    return buf.getvalue()


#: the space kept between a title and the figure's edge, inches
EDGE = 0.05


def fit_titles(fig, *, tries: int = 4):
    """`fig` with its titles (the figure's suptitle and supxlabel, each axes' titles) broken into lines
    where one is wider than the figure, or than the room it has about the point it is centred on (a run's long name,
    an 'incomplete: ...' mark), so that the whole text is drawn inside the figure (matplotlib cuts it off at both
    ends); words longer than a line are broken too. The lines a title holds are kept. `fig` itself."""
    import textwrap

    texts = [t for t in (fig._suptitle, fig._supxlabel) if t is not None]
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title]
    texts = [t for t in texts if t.get_text()]
    if not texts:
        return fig
    if not hasattr(fig.canvas, "get_renderer"):  # a pyplot figure closed (Optuna's views): measured on Agg
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    for _ in range(tries):
        fig.canvas.draw()  # (the constrained layout places the texts)
        renderer = fig.canvas.get_renderer()
        width, changed = fig.bbox.width, False
        for text in texts:
            box = text.get_window_extent(renderer)
            room = _room(text, box, width, fig.dpi * EDGE)
            if box.width <= room or box.width <= 0:
                continue
            lines = text.get_text().split("\n")
            longest = max(map(len, lines))
            chars = max(8, int(longest * room / box.width * 0.95))
            text.set_text("\n".join(textwrap.fill(line, chars) if len(line) > chars else line for line in lines))
            changed = True
        if not changed:
            break
    return fig


def _room(text, box, width: float, edge: float) -> float:
    """The width (pixels) text `text`, drawn at `box`, may take inside a figure `width` pixels wide: twice the room
    on its nearer side for a centred text, the room on its open side for one aligned left or right."""
    align = text.get_horizontalalignment()
    if align == "left":
        return width - edge - box.x0
    if align == "right":
        return box.x1 - edge
    middle = (box.x0 + box.x1) / 2
    return 2 * max(0.0, min(middle, width - middle) - edge)


def _check_drawn(fig, path) -> None:
    """ValueError naming `path` where `fig` has no axes, or axes (but colour bars) that draw no data."""
    bare = [i for i, ax in enumerate(fig.axes) if ax.get_label() != "<colorbar>" and not drawn(ax)]
    if not fig.axes or bare:
        raise ValueError(f"{path}: figure has bare axes {bare}; nothing to draw")
