"""One function per figure or table: run directories in, figures (by file name), text files and printed
lines out. Shared by the scripts in analysis/ and by `hpcflow report`; nothing is written here."""

from __future__ import annotations

from dataclasses import dataclass, field

from hpcflow.analysis import fig2, fig3_noise, fig3_scaling, fig4, histories, optuna_view, table1
from hpcflow.analysis.rundir import MissingData, label
from hpcflow.analysis.study import load_study


@dataclass
class Product:
    figures: dict = field(default_factory=dict)  # file name -> matplotlib Figure
    texts: dict = field(default_factory=dict)  # file name -> text (markdown tables)
    lines: list = field(default_factory=list)  # numbers to print


def _stem(stem: str, paths, i: int) -> str:
    """`stem` for one input, else stem_LABEL of input i (LABEL_i when two inputs share a base name, the same
    directory given twice included, so no figure overwrites another)."""
    if len(paths) == 1:
        return stem
    labels = [label(p) for p in paths]
    tag = labels[i] if labels.count(labels[i]) == 1 else f"{labels[i]}_{i}"
    return f"{stem}_{tag}"


def _name(stem: str, paths, i: int) -> str:
    return _stem(stem, paths, i) + ".png"


def _per_run(paths, module, stem: str, extra=()) -> Product:
    """One figure (and its printed numbers) per run directory from `module`'s load/plot/numbers; `extra`:
    (stem, dataset needed, plot function) figures drawn where the run holds that dataset."""
    out = Product()
    for i, p in enumerate(paths):
        data = module.load(p)
        out.figures[_name(stem, paths, i)] = module.plot(data)
        for more, needs, plot in extra:
            if needs in data:
                out.figures[_name(more, paths, i)] = plot(data)
        out.lines += [f"{label(p)}: {line}" for line in module.numbers(data)]
    return out


def fig2_heatmaps(paths, **_):
    return _per_run(paths, fig2, "fig2_heatmaps")


def fig3_noise_scan(paths, **_):
    scans = [fig3_noise.load(p) for p in paths]
    return Product({"fig3_noise.png": fig3_noise.plot(scans)}, {}, fig3_noise.numbers(scans))


def fig3_distance_scaling(paths, **_):
    return _per_run(paths, fig3_scaling, "fig3_scaling")


def fig4_ntk(paths, **_):
    return _per_run(paths, fig4, "fig4_ntk", extra=[("fig4_width_sweep", "width_sweep/width", fig4.plot_sweep)])


def table_1(paths, *, study_name=None, **_):
    rows = table1.load(paths, study_name=study_name)
    md = table1.markdown(rows)
    return Product({}, {"table1.md": md}, table1.numbers(rows))


def sigma_history(paths, **_):
    runs = [histories.load(p) for p in paths]
    out = Product({"sigma_history.png": histories.plot(runs)}, {}, histories.numbers(runs))
    for i, r in enumerate(runs):
        if histories.has_per_rank(r):
            out.figures[_name("per_rank", paths, i)] = histories.plot_per_rank(r)
    return out


def optuna_study(paths, *, study_name=None, **_):
    out = Product()
    for i, p in enumerate(paths):
        study, _ = load_study(p, study_name)
        stem = _stem("optuna", paths, i)
        for view in optuna_view.VIEWS:
            try:
                out.figures[f"{stem}_{view}.png"] = optuna_view.plot(study, view)
            except MissingData as exc:
                if view == "history":
                    raise
                out.lines.append(f"skipped {view}: {exc}")
        out.lines += optuna_view.numbers(study)
    return out


#: script / report name -> product function
PRODUCTS = {
    "fig2_heatmaps": fig2_heatmaps,
    "fig3_noise": fig3_noise_scan,
    "fig3_scaling": fig3_distance_scaling,
    "fig4_ntk": fig4_ntk,
    "table1": table_1,
    "sigma_history": sigma_history,
    "optuna_view": optuna_study,
}
