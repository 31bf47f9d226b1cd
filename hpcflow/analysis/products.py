"""One function per figure or table: run directories in, figures (by file name), text files and printed
lines out. Shared by the scripts in analysis/ and by `hpcflow report`; nothing is written here."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field

from hpcflow.analysis import fig2, fig3_noise, fig3_scaling, fig4, histories, optuna_view, table1
from hpcflow.analysis.figure import glyphs_quiet, titled
from hpcflow.analysis.rundir import MissingData, unread_checkpoint
from hpcflow.analysis.rundir import names as rundir_names
from hpcflow.analysis.study import load_study


@dataclass
class Product:
    figures: dict = field(default_factory=dict)  # file name -> matplotlib Figure
    texts: dict = field(default_factory=dict)  # file name -> text (markdown tables)
    lines: list = field(default_factory=list)  # numbers to print
    printed: dict = field(default_factory=dict)  # file name -> its text as printed, where it differs from the file
    captions: dict = field(default_factory=dict)  # figure file name -> the run it shows (one run's figures)


def run_names(paths, names=None) -> list:
    """The name of each input in legends, rows and printed lines: names[path] where `names` (a dict) gives it (the
    report's runs table), else `rundir.names` of the inputs (x/run and y/run where base names repeat)."""
    return [names[p] for p in paths] if names else rundir_names(paths)


#: characters of a run's name that a file name does not hold as they are: path separators, those Windows refuses
#: (a report is read on a laptop after copying) and control characters (a line break); each is '_' in a file name
UNSAFE = re.compile(r'[/\\<>:"|?*\x00-\x1f\x7f-\x9f]')


def file_part(name: str) -> str:
    """Run name `name` as part of a file name: each of its UNSAFE characters as '_' (the name itself, in legends,
    captions and rows, stays as it is)."""
    return UNSAFE.sub("_", name.replace(os.sep, "_"))


def _tags(names) -> list:
    """A distinct file-name tag per input: its name as a file name holds it (`file_part`), NAME_i (i its position)
    where two inputs share one (the same directory given twice, or names alike but for such characters), and '_i'
    more on a tag already taken, so no figure overwrites another."""
    base = [file_part(n) for n in names]
    tags = []
    for i, tag in enumerate(base):
        tag = tag if base.count(tag) == 1 else f"{tag}_{i}"
        while tag in tags:
            tag += f"_{i}"
        tags.append(tag)
    return tags


def _stems(stem: str, names) -> list:
    """`stem` for one input, else stem_TAG per input (`_tags`)."""
    return [stem] if len(names) == 1 else [f"{stem}_{tag}" for tag in _tags(names)]


def _per_run(paths, module, stem: str, extra=(), names=None, needs=None, load=None) -> Product:
    """One figure (and its printed numbers) per run directory from `module`'s load (or `load`), plot and numbers
    (where the run holds dataset `needs`, when given); `extra`: (stem, dataset needed, plot function) figures drawn
    where the run holds that dataset. A network not positive definite at validation points after its last epoch (load's
    'not_positive_definite') has the mark beside its name in its printed lines and captions, as in its sigma
    histories' legend; a run that did not finish (load's 'note': 'incomplete: nn.h5 damaged', which its figures' titles
    carry and its printed lines say first) has it in its captions too."""
    out = Product()
    named = run_names(paths, names)
    stems = {s: _stems(s, named) for s in (stem, *(more for more, _, _ in extra))}
    for i, p in enumerate(paths):
        data = (load or module.load)(p)
        marks = [data[k] for k in ("note", "not_positive_definite") if data.get(k)]
        shown = named[i] + (f" ({data['not_positive_definite']})" if data.get("not_positive_definite") else "")
        for name, held, plot in ((stem, needs, module.plot), *extra):
            if held is None or held in data:
                out.figures[stems[name][i] + ".png"] = titled(plot(data), named[i])
                out.captions[stems[name][i] + ".png"] = named[i] + "".join(f" ({m})" for m in marks)
        out.lines += [f"{shown}: {line}" for line in module.numbers(data)]
    return out


def fig2_heatmaps(paths, *, names=None, **_):
    return _per_run(paths, fig2, "fig2_heatmaps", names=names)


def fig3_noise_scan(paths, *, names=None, **_):
    scans = [{**fig3_noise.load(p), "label": name} for p, name in zip(paths, run_names(paths, names))]
    return Product({"fig3_noise.png": fig3_noise.plot(scans)}, {}, fig3_noise.numbers(scans))


def fig3_distance_scaling(paths, *, names=None, **_):
    return _per_run(paths, fig3_scaling, "fig3_scaling", names=names)


def fig4_ntk(paths, *, names=None, spectrum=None, **_):
    """Fig. 4 and the width sweep per nn run; `spectrum`: the NTK spectrum drawn (`fig4.load`: None, the paper's
    where nn.h5 holds it)."""
    return _per_run(paths, fig4, "fig4_ntk", extra=[("fig4_width_sweep", "width_sweep/width", fig4.plot_sweep)],
                    names=names, needs="ntk/spectrum", load=lambda p: fig4.load(p, spectrum))


def table_1(paths, *, study_name=None, names=None, **_):
    rows = table1.load(paths, study_name=study_name, names=run_names(paths, names))
    return Product({}, {"table1.md": table1.markdown(rows)}, table1.numbers(rows),
                   printed={"table1.md": table1.markdown(rows, entities=False)})


def sigma_history(paths, *, names=None, marks=None, **_):
    """One curve pair, and one per-rank figure where recorded, per run: a run's directory, nn.h5 and checkpoint.pt
    given together are one run (`histories.by_run`). `marks`: {path: mark} of runs that another product found
    damaged (`histories.load`'s `mark`)."""
    named = run_names(paths, names)
    groups = histories.by_run(paths)
    damaged = {first: unread_checkpoint(group[0]) for first, group in groups}
    if len(groups) > 1 and not all(damaged.values()):  # one run alone is refused by its reader's one-line error
        groups = [(first, group) for first, group in groups if not damaged[first]]
    marks = marks or {}
    runs = [histories.load(group, name=named[first], mark=marks.get(paths[first], "")) for first, group in groups]
    out = Product({"sigma_history.png": histories.plot(runs)}, {}, histories.numbers(runs))
    out.lines += [f"{named[first]} ({why}): not drawn" for first, why in damaged.items()
                  if why and first not in dict(groups)]
    for stem, r in zip(_stems("per_rank", [named[first] for first, _ in groups]), runs):
        if histories.has_per_rank(r):
            out.figures[stem + ".png"] = histories.plot_per_rank(r)  # what it leaves out is said under it
            out.captions[stem + ".png"] = r["label"]
    return out


def optuna_study(paths, *, study_name=None, names=None, **_):
    """Each study's history, importances and slice views, titled and captioned with its input's name (two studies
    of one Optuna name told apart by their directories); its printed lines, a view skipped among them, together,
    each headed by that name where several studies are given."""
    out = Product()
    named = run_names(paths, names)
    for p, name, stem in zip(paths, named, _stems("optuna", named)):
        study, base = load_study(p, study_name)
        skipped = []
        for tag, objective in optuna_view.objectives(study):
            for view in optuna_view.VIEWS:
                try:
                    out.figures[f"{stem}_{view}{tag}.png"] = optuna_view.plot(
                        study, view, objective, path=p if view == "history" else None, name=name)
                    out.captions[f"{stem}_{view}{tag}.png"] = name
                except MissingData as exc:
                    if view == "history":
                        raise
                    skipped.append(f"skipped {view}{tag.replace('_', ' ')}: {exc}")
        lines = optuna_view.numbers(study, base) + skipped
        out.lines += [f"{name}: {line}" for line in lines] if len(paths) > 1 else lines
    return out


#: products that draw no figure: they need no matplotlib
TABLES = ("table1",)


def _quiet(product):
    """`product` drawing without matplotlib's warning for each character its fonts lack (`figure.glyphs_quiet`)."""
    @functools.wraps(product)
    def drawn(*args, **kw):
        with glyphs_quiet():
            return product(*args, **kw)
    return drawn


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
PRODUCTS = {name: _quiet(product) for name, product in PRODUCTS.items()}
