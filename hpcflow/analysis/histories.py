"""sigma histories (eq. B.11, train and test, log scale) of any runs overlaid, and per-rank cost: step time and
communication volume of a flow run, seconds in collectives of a network run.

Flow runs: DIR/checkpoint.h5 history/sigma_train, history/sigma_test (step 0 = FS), and when recorded
history/step_seconds, history/comm_bytes (steps, ranks). nn runs: DIR/nn.h5 history/sigma_train, sigma_val,
history/comm_seconds (epochs, ranks) (an interrupted one: the same histories in DIR/checkpoint.pt,
train.history). The file itself may be passed instead of its directory; paths that stand for one run (its directory,
its nn.h5 and checkpoint.pt) are one run (`by_run`).
"""

from __future__ import annotations

import os

import numpy as np

from hpcflow.analysis.definite import not_positive_definite
from hpcflow.analysis.figure import legend_beside, new_figure, wrapped
from hpcflow.analysis.rundir import (CHECKPOINT, NN, NN_CHECKPOINT, MissingData, check_array, checkpoint_progress,
                                     data_file, dataset_names, label, lost_data, network_checkpoint, network_config,
                                     network_legs, nn_damaged_fix, other_kind, read_attrs, read_datasets, read_summary,
                                     refusal, rerun_fix, run_dir_of, run_state, training_history, unopenable)

HINT = "pass the run directory of a flow or nn job"
PER_RANK = ("history/step_seconds", "history/comm_bytes")  # flow: (steps, ranks)
NN_PER_RANK = ("history/comm_seconds",)  # network: (epochs, ranks)
COUNTS = "val_not_positive_definite"  # network: validation points whose metric is not positive definite, per epoch
NOT_PD = f"history/{COUNTS}"
NDIM = {"history/sigma_train": 1, "history/sigma_test": 1, "history/sigma_val": 1, NOT_PD: 1,
        **dict.fromkeys((*PER_RANK, *NN_PER_RANK), (1, 2))}


def _files(path) -> dict:
    """{'flow' | 'nn' | 'pt': file} of a run directory, or of a data file passed itself (by its own name, or by
    its datasets for a renamed copy); MissingData naming the path when there is none."""
    path = os.fspath(path)
    names = {"flow": CHECKPOINT, "nn": NN, "pt": NN_CHECKPOINT}
    if os.path.isdir(path):
        found = {k: os.path.join(path, n) for k, n in names.items() if os.path.isfile(os.path.join(path, n))}
        if not found:  # a flow or network run's directory without its data files (a partial copy), or no run's
            raise MissingData(lost_data(path) or f"{path}: no {CHECKPOINT}, {NN} or {NN_CHECKPOINT}; {HINT}")
        return found
    if not os.path.isfile(path):
        raise MissingData(f"{path}: no such run directory or file; {HINT}")
    by_name = {n: k for k, n in names.items()}.get(os.path.basename(path))
    if by_name:
        return {by_name: path}
    beside = [n for n in names.values() if os.path.isfile(os.path.join(os.path.dirname(path) or ".", n))]
    if beside and other_kind(path):  # a run's other file (job.toml, model.pt): what it is, and its run's to pass
        data_file(path, beside[0], hint=HINT)
    held = set(dataset_names(path))
    if not held and (refused := refusal(path, hint=HINT)):  # not HDF5, or damaged: said as Table 1 says it
        raise refused
    if "history/sigma_test" in held:
        return {"flow": path}
    if "history/sigma_val" in held:
        return {"nn": path}
    raise MissingData(f"{path}: holds neither 'history/sigma_test' (flow checkpoint) nor 'history/sigma_val' (nn.h5), "
                      f"or is not a readable HDF5 file; {HINT}")


def _kernel_tag(run_dir, ckpt) -> str:
    """' [kernel]' from summary.json, or from the checkpoint's config when the run has no summary yet; '' where
    neither names it in a [kernel] table (the tag only labels the curve: the histories are read all the same)."""
    kernel = (read_summary(run_dir) or {}).get("kernel") if run_dir else None
    if not isinstance(kernel, str) and ckpt and os.path.isfile(ckpt):
        cfg = read_attrs(ckpt, hint=HINT).get("config")
        table = cfg.get("kernel") if isinstance(cfg, dict) else None
        kernel = table.get("name") if isinstance(table, dict) else None
    return f" [{kernel}]" if isinstance(kernel, str) else ""


def by_run(paths) -> list:
    """(index of its first path, [its paths]) per run, in the order given: a run directory and its data files (by
    their own names), or one given twice, are one run; a renamed data file is a run of its own."""
    groups = {}
    for i, p in enumerate(paths):
        key = os.path.realpath(run_dir_of(p) or p)
        groups.setdefault(key, (i, []))[1].append(p)
    return list(groups.values())


def load(run_dir, *, name: str | None = None, mark: str = "") -> dict:
    """{'label', 'x', 'train', 'test', 'unit', 'file', ...} from checkpoint.h5 (per step) or nn.h5 (per epoch) of a
    run directory, or from such a file passed itself ('file': the one read), or from a list of paths of one run
    (`by_run`: its files together, as its directory's); a network's checkpoint.pt instead of
    nn.h5 where it is further on (an extended run stopped before its new nn.h5) and torch reads it, or where nn.h5
    cannot be read (damaged, or in use: another process holds its lock). The label marks a
    run that did not finish (incomplete, diverged, stopped: rundir.RunState.suffix). Per-rank cost when recorded:
    step_seconds, comm_bytes (flow), comm_seconds (network, nn.h5 or checkpoint.pt). `name`: the run's in the label
    (default: its base name); `mark`: the label's mark of a run that its state calls finished but another reader
    found damaged (the report's: a network whose nn.h5 lacks a Fig. 4 dataset), as its row says it."""
    paths = [os.fspath(p) for p in (run_dir if isinstance(run_dir, (list, tuple)) else [run_dir])]
    path = paths[0]
    files = {}
    for p in paths:
        files.update(_files(p))
    if "flow" in files:
        try:
            d = read_datasets(files["flow"], ("history/sigma_train", "history/sigma_test"), hint=HINT,
                              optional=PER_RANK, ndim=NDIM)
        except MissingData as exc:  # a run's checkpoint.h5 (step 0 is always in it): damaged, not another file
            raise damaged_data(files["flow"], exc) from None
        out = {"train": d["history/sigma_train"], "test": d["history/sigma_test"], "unit": "flow step"}
        out.update({k.split("/")[1]: d[k] for k in PER_RANK if k in d}, file=files["flow"])
        out["legs"] = _legs(files["flow"])
    elif "nn" in files and not (_further_on(files) and (out := _checkpoint_history(files["pt"], quiet=True))):
        try:
            d = read_datasets(files["nn"], ("history/sigma_train", "history/sigma_val"), hint=HINT,
                              optional=(*NN_PER_RANK, NOT_PD), ndim=NDIM)
        except MissingData as exc:  # a damaged nn.h5, or one in use: the training checkpoint holds the whole history
            if "pt" not in files or not unopenable(files["nn"]):
                raise damaged_data(files["nn"], exc) from None
            out = _checkpoint_history(files["pt"])
        else:
            out = {"train": d["history/sigma_train"], "test": d["history/sigma_val"], "unit": "epoch"}
            out.update({k.split("/")[1]: d[k] for k in (*NN_PER_RANK, NOT_PD) if k in d}, file=files["nn"])
    elif "nn" not in files:  # a network run interrupted before nn.h5: its training checkpoint
        out = _checkpoint_history(files["pt"])
    if "pt" in files and out["unit"] == "epoch":  # the ranks of each leg, which nn.h5 does not record
        out["legs"] = network_legs(network_checkpoint(os.path.dirname(os.path.abspath(files["pt"]))))
    suffix = run_state(path).suffix() or (f" ({mark})" if mark else "")
    name = (name or label(path)) + _kernel_tag(run_dir_of(path), files.get("flow")) + suffix
    out["not_positive_definite"] = _definite_mark(out)
    if out["not_positive_definite"]:
        name += f" ({out['not_positive_definite']})"
    out.update(label=name, x=np.arange(len(out["train"])))
    return out


def _legs(ckpt) -> list:
    """The `@legs` of flow checkpoint `ckpt` (each a dict with `from_step`, `to_step`, `ranks`), [] where it records
    none or they cannot be read (they only annotate the per-rank figure)."""
    try:
        legs = read_attrs(ckpt, hint=HINT).get("legs")
    except MissingData:
        return []
    return [g for g in legs if isinstance(g, dict)] if isinstance(legs, list) else []


def damaged_data(path, exc: MissingData, hint: str = HINT) -> MissingData:
    """The error of a run's data file `path` (nn.h5, or a flow's checkpoint.h5) that opens but lacks a dataset the run
    wrote, or holds it malformed or empty (`exc`, ending in '; `hint`'): in a run directory the run wrote it, so it is
    damaged, and the fix is that of its run (a network's nn.h5: `nn_damaged_fix`, `hpcflow nn --resume` writes it
    again from a checkpoint.pt holding the whole training, else a rerun; a flow's: `rerun_fix`), not `hint` (pass
    another directory), which is not where the fault lies; a file of another name (a copy outside its run directory)
    keeps `hint`, and one h5py cannot open (damaged, or in use: another process holds it locked) its own message,
    which names its fixes."""
    if run_dir_of(path) is None or unopenable(path):
        return exc
    run_dir = os.path.dirname(os.fspath(path)) or "."  # as given: the fix names the paths as the run's row does
    fix = nn_damaged_fix(run_dir) if os.path.basename(os.fspath(path)) == NN else rerun_fix(run_dir)
    return MissingData(f"{str(exc).removesuffix(f'; {hint}')}: the file is damaged; {fix}")



def _further_on(files: dict) -> bool:
    """Whether a network run's checkpoint.pt holds more epochs than its nn.h5 (attribute `epoch`)."""
    if "pt" not in files:
        return False
    epoch = checkpoint_progress(files["pt"])
    try:
        return epoch is not None and epoch > int(read_attrs(files["nn"], hint=HINT).get("epoch"))
    except (MissingData, TypeError, ValueError, OverflowError):  # no epoch, or one that is no count (NaN, inf)
        return False


def _checkpoint_history(pt, *, quiet: bool = False) -> dict | None:
    """The sigma histories of a network's checkpoint.pt (torch reads it); MissingData, or None when quiet, when they
    cannot be read."""
    try:
        d = {k: check_array(pt, f"train.history.{k}", v, ndim=(1, 2) if k == "comm_seconds" else 1,
                            nonempty=k in ("sigma_train", "sigma_val"), hint=HINT)
             for k, v in training_history(pt, ("sigma_train", "sigma_val"), optional=("comm_seconds", COUNTS),
                                          hint=HINT).items()}
    except MissingData:
        if quiet:
            return None
        raise
    out = {"train": d["sigma_train"], "test": d["sigma_val"], "unit": "epoch", "file": pt}
    return out | {k: d[k] for k in ("comm_seconds", COUNTS) if k in d}


def _definite_mark(run: dict) -> str:
    """`definite.not_positive_definite` of a network run's history (`load`'s): the count of its last epoch, of the
    validation points of the job its file records ([geometry] n_val); '' for a flow run, or a history without
    counts."""
    counts = run.get(COUNTS)
    if counts is None or len(counts) != len(run["train"]):
        return ""
    return not_positive_definite(counts[-1], _n_val(run["file"]))


def nn_definite_mark(path) -> str:
    """`_definite_mark` of network data file nn.h5 `path` (its history's counts); '' where it holds none or they
    cannot be read (the figures that ask for it draw other datasets: a damaged history is the sigma histories' to
    refuse)."""
    try:
        d = read_datasets(path, (), hint=HINT, optional=("history/sigma_train", NOT_PD), ndim=NDIM)
    except MissingData:
        return ""
    return _definite_mark({"train": d.get("history/sigma_train", ()), COUNTS: d.get(NOT_PD), "file": path})


def _n_val(path):
    """[geometry] n_val of the job that network data file `path` (nn.h5, or checkpoint.pt by its name) records, None
    where it cannot be read so."""
    if os.path.basename(path) == NN_CHECKPOINT:  # no config, or one that is no JSON object: None
        cfg, _ = network_config(network_checkpoint(os.path.dirname(os.path.abspath(path))))
    else:
        try:
            cfg = read_attrs(path, hint=HINT).get("config")
        except MissingData:
            cfg = None
    geo = cfg.get("geometry") if isinstance(cfg, dict) else None
    return geo.get("n_val") if isinstance(geo, dict) else None


def held_out(run) -> str:
    """What the dashed curve of `run` (`load`'s) holds: "validation" for a network's (sigma_val, per epoch), "test"
    for a flow's."""
    return "validation" if run.get("unit") == "epoch" else "test"


def plot(runs):
    """Train and held-out (a flow's test, a network's validation points: `held_out`) sigma per step of every run (one
    `load` result, or a list), each run its colour and pair of line styles (`run_style`: solid and dashed for the
    first ten), log y; the legend beside the axes, where no
    curve runs under it (constrained layout makes room for it).
    Flow runs (per step) and network runs (per epoch) given together are drawn on panels of their own, side by side:
    a network's few epochs on the axis of a flow's hundreds of steps were a line at its left edge. The panels share
    one y scale where that stretches no panel's own range (of its curves' sigmas, log) by more than SPREAD decades;
    else each has its own (a flow reaching 1e-16 beside a network's 0.35 -> 0.33 made the network's a flat line).
    Steps and epochs are ticked whole (a run of 3 epochs had 0.5, 1.5, ...)."""
    from matplotlib.ticker import MaxNLocator  # (matplotlib: checked by new_figure)

    runs = [runs] if isinstance(runs, dict) else runs
    units = sorted({r["unit"] for r in runs}, key=lambda u: (u != "flow step", u))  # steps first, then epochs
    fig, axes = new_figure(1, len(units), size=(7.2 if len(units) == 1 else 11.2, 4.8))
    shared = _one_scale([_decades([r for r in runs if r["unit"] == u]) for u in units])
    for ax in axes[1:] if shared else ():  # shared before any curve is drawn, so that its range holds every panel's
        ax.sharey(axes[0])
    panel, handles, groups = dict(zip(units, axes)), [], []  # every run's lines, in the order given, for the legend
    for i, r in enumerate(runs):
        ax = panel[r["unit"]]
        marker = "o" if len(r["x"]) == 1 else ""  # a line through one point draws nothing
        before = len(handles)
        colour, (train, held) = run_style(i)
        handles += ax.plot(r["x"], r["train"], marker=marker or None, linestyle=train, color=colour,
                           label=wrapped(f"{r['label']} train"))
        if len(r["test"]) == len(r["x"]) and np.isfinite(r["test"]).any():
            handles += ax.plot(r["x"], r["test"], marker=marker or None, linestyle=held, mfc="none", color=colour,
                               label=wrapped(f"{r['label']} {held_out(r)}"))
        groups.append(len(handles) - before)  # a run's lines: listed, or left out, together
    for unit, ax in panel.items():
        ax.set_yscale("log")
        ax.set_xlabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ranges = {u: _decades(runs if shared else [r for r in runs if r["unit"] == u]) for u in units}
    for unit, ax in panel.items():
        if ranges[unit] is not None and ranges[unit][1] - ranges[unit][0] < 1:
            plain_log_ticks(ax)  # under a decade: a log axis would show no tick label, or 3.4x10^-1-style minor ones
    for ax in axes if not shared else axes[:1]:
        ax.set_ylabel("σ (eq. B.11)")
    if len(axes) == 1:
        axes[0].set_title("sigma histories")
    else:
        fig.suptitle("sigma histories")
        for unit, ax in panel.items():
            ax.set_title("flow runs, per step" if unit == "flow step" else f"network runs, per {unit}")
    legend_beside(fig, axes[-1], 6.4 if len(axes) == 1 else 10.4, 4.8, handles=handles, groups=groups,
                 fontsize="x-small")
    if len(axes) > 1:  # over the panels, not over the panels and the legend beside them
        fig.canvas.draw()  # (the constrained layout places the axes)
        fig.suptitle("sigma histories", x=(axes[0].get_position().x0 + axes[-1].get_position().x1) / 2)
    return fig


#: the line styles of a run's (train, held-out) curves, by its group of ten runs (`run_style`): the first ten runs
#: solid and dashed, the next ten dash-dotted and dotted, then long dashes and dash-dot-dots, then dash-dot-dot-dots
#: and sparse dots; eight patterns, none of them twice
STYLES = (("-", "--"), ("-.", ":"), ((0, (10, 3)), (0, (3, 1.5, 1, 1.5, 1, 1.5))),
          ((0, (6, 1.5, 1, 1.5, 1, 1.5, 1, 1.5)), (0, (1, 4))))


def run_style(i: int):
    """(colour, (train line style, held-out line style)) of the i-th run of a sigma-history figure: the ten colours of
    matplotlib's tab10 (its default cycle, named, not "C0".."C9": a style in force with fewer colours, such as the
    ggplot of Optuna's views, repeated them) times the four STYLES, so that up to 40 runs are drawn each in its own
    way (runs 1 and 11 differed in nothing before); from the 41st on they repeat."""
    return TAB10[i % 10], STYLES[(i // 10) % len(STYLES)]


#: matplotlib's tab10 colours (its default colour cycle), by name
TAB10 = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink", "tab:gray",
         "tab:olive", "tab:cyan")


#: the decades by which one y scale shared by the sigma histories' panels may stretch a panel's own range (`plot`)
SPREAD = 1.0


def plain_log_ticks(ax) -> None:
    """Ticks of `ax`'s log y axis at plain values, labelled as such ('0.34'), for a range under a decade, where
    matplotlib's log ticks give no label or minor labels in powers of ten ('3.4×10^-1')."""
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator, NullFormatter, NullLocator

    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, min_n_ticks=3))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _decades(runs):
    """(lowest, highest) log10 of the positive finite sigmas (train and held-out) of `runs`, None where none."""
    values = np.concatenate([np.asarray(r[k], dtype=float).ravel() for r in runs for k in ("train", "test")])
    values = values[np.isfinite(values) & (values > 0)]
    return (float(np.log10(values.min())), float(np.log10(values.max()))) if len(values) else None


def _one_scale(ranges) -> bool:
    """Whether panels of log10 `ranges` ((low, high) each, None: no value) share one y scale: the range holding them
    all is no more than SPREAD decades wider than any panel's own."""
    known = [r for r in ranges if r is not None]
    if len(known) < 2:
        return True
    whole = max(hi for _, hi in known) - min(lo for lo, _ in known)
    return all(whole - (hi - lo) <= SPREAD for lo, hi in known)


#: the space left above the highest per-rank value, a fraction of it (matplotlib's own margin)
MARGIN = 0.05

RANK_PANELS = (("step_seconds", "step time [s]"), ("comm_bytes", "bytes received"),  # flow_step's counters
               ("comm_seconds", "seconds in collectives"))


def has_per_rank(run) -> bool:
    """Whether per-rank figures were recorded for at least one step (a run can stop before its first step)."""
    return any(len(run.get(key, ())) for key, _ in RANK_PANELS)


def _empty(values) -> bool:
    """Whether per-rank values hold nothing: each zero or NaN."""
    values = np.asarray(values, dtype=float)
    return not np.any(np.isfinite(values) & (values != 0))


def _panels(run) -> list:
    """(key, y label) of the per-rank panels of `run` that carry something: those recorded, but the communication
    ones of a one-rank run (nothing received, no collective waited for: all zero) where another panel is left."""
    recorded = [(key, ylabel) for key, ylabel in RANK_PANELS if len(run.get(key, ()))]
    kept = [(key, ylabel) for key, ylabel in recorded
            if key == "step_seconds" or not (_rank_count(run[key]) == 1 and _empty(run[key]))]
    return kept or recorded


def _rank_count(values) -> int:
    values = np.asarray(values)
    return 1 if values.ndim < 2 else values.shape[1]


def per_rank_note(run) -> str:
    """What a run's per-rank figure does not show, '' when nothing: its steps whose rows are NaN, each said by the leg
    of the run's `legs` that did it (the one whose from_step-to_step span holds it). A leg at another rank count than
    the last leg's: 'flow steps 1-580 ran at 1 rank (this run resumed at 2 ranks): not shown', 'epoch 1 ran at 2 ranks
    (this run resumed at 1 rank): not shown'; an epoch begun at another count and finished at this one (a leg stopped
    within it: its `to_step` counts whole epochs) is 'part of epoch 2'. A leg at this count whose rows a later resume at
    another count dropped (a checkpoint keeps one row width, so each such resume blanks every earlier row): 'epochs 1-2
    ran at 2 ranks but were not recorded (dropped by a resume at another rank count)'. Steps no leg records ran 'at
    another rank count'."""
    from hpcflow.analysis.optuna_view import _ranges

    key = next((k for k, _ in RANK_PANELS if len(run.get(k, ()))), None)
    if key is None:
        return ""
    values = np.asarray(run[key], dtype=float).reshape(len(run[key]), -1)
    unrecorded = (np.flatnonzero(np.all(np.isnan(values), axis=1)) + 1).tolist()  # steps are 1-based
    if not unrecorded:
        return ""
    size, unit = values.shape[1], run.get("unit", "flow step")
    legs = [g for g in (run.get("legs") or []) if isinstance(g, dict)]
    ranks = [_count(g.get("ranks")) for g in legs]
    spans = [(_count(g.get("from_step")), _count(g.get("to_step"))) for g in legs]
    ran, part, dropped = {}, {}, []  # {count (None: unknown): steps}, steps of this count dropped later
    for s in unrecorded:
        i = next((i for i in reversed(range(len(legs))) if None not in spans[i] and spans[i][0] < s <= spans[i][1]),
                 None)
        if i is None or ranks[i] is None:  # no leg records it, or not its count
            ran.setdefault(None, []).append(s)
        elif ranks[i] != size:
            ran.setdefault(ranks[i], []).append(s)
        elif any(r != size for r in ranks[i + 1:]):  # a resume at another count after the leg blanked its rows
            dropped.append(s)
        else:  # begun by a leg at another count that stopped within it, finished by this count's leg
            began = {r for r, (_, last) in zip(ranks[:i], spans[:i]) if last == spans[i][0] and r != size}
            for r in sorted(began, key=lambda r: (r is None, r)) or [None]:
                part.setdefault(r, []).append(s)

    def steps(numbers) -> str:
        return f"{unit}{'s' if len(numbers) > 1 else ''} {_ranges(numbers)}"

    def at(count) -> str:
        return "at another rank count" if count is None else f"at {count} rank{'' if count == 1 else 's'}"

    clauses, notes = [], []
    for count in sorted(set(ran) | set(part), key=lambda r: min(ran.get(r, []) + part.get(r, []))):  # in order
        whole, begun = ran.get(count, []), part.get(count, [])
        what = " and ".join(([steps(whole)] if whole else []) + ([f"part of {steps(begun)}"] if begun else []))
        clauses.append(f"{what} {'' if clauses else 'ran '}{at(count)}")
    if clauses:
        other = sorted(set().union(*ran.values(), *part.values()))
        notes.append((other[0], f"{', '.join(clauses)} (this run resumed at {size} rank{'' if size == 1 else 's'})"))
    if dropped:
        notes.append((dropped[0], f"{steps(dropped)} ran {at(size)} but {'was' if len(dropped) == 1 else 'were'} not "
                                  "recorded (dropped by a resume at another rank count)"))
    return "; ".join(n for _, n in sorted(notes)) + ": not shown"


def _count(value):
    """`value` where it is a whole number (not a bool), else None: a leg's ranks, from_step or to_step as recorded
    (null for a leg of unknown count)."""
    return value if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else None


def _one_rank_note(run) -> str:
    """'one rank: ...' of a one-rank run whose communication panels carry nothing (said where they are left out),
    '' otherwise."""
    comm = [k for k, _ in RANK_PANELS[1:] if len(run.get(k, ()))]
    if comm and all(_rank_count(run[k]) == 1 and _empty(run[k]) for k in comm):
        return "one rank: no communication (nothing received from other ranks, no collectives)"
    return ""


def plot_per_rank(run):
    """Step time and bytes received from other ranks per flow step, or seconds in collectives per epoch (those
    recorded and carrying something: `_panels`), one line per rank; what the figure does not show (`per_rank_note`:
    steps run at another rank count; a one-rank run's communication) said under it; a one-rank network's only panel,
    its zeros, says it has no collectives."""
    from matplotlib.ticker import MaxNLocator  # (matplotlib: checked by new_figure)

    panels = _panels(run)
    fig, axes = new_figure(1, len(panels), size=(5.5 * len(panels), 4.2))
    for ax, (key, ylabel) in zip(axes, panels):
        values = np.asarray(run[key], dtype=float).reshape(len(run[key]), -1)
        steps = np.arange(1, len(values) + 1)
        ax.set_xlabel(run.get("unit", "flow step"))
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole steps and epochs only
        if key != "step_seconds" and values.shape[1] == 1 and _empty(values):  # its zeros: said what they are
            ax.text(0.5, 0.5, "one rank: no collectives" if key == "comm_seconds" else "one rank: nothing received",
                    transform=ax.transAxes, ha="center", va="center")
        for r in range(values.shape[1]):
            ax.plot(steps, values[:, r], "o-" if len(steps) == 1 else "-", lw=1, label=f"rank {r}")
        top = np.nanmax(values) if np.isfinite(values).any() else 0.0
        if top <= 0:  # nothing received (one rank): from 0, not a band around it
            ax.set_ylim(0.0, 1.0)
        elif np.nanmin(values) >= 0:  # times and counts: from 0, and a margin above the highest (a constant line,
            ax.set_ylim(0.0, top * (1 + MARGIN))  # as bytes received each step, would lie on the top spine)
    axes[0].legend(fontsize="x-small", ncol=2)
    fig.suptitle(f"per-rank cost: {run['label']}")
    left_out = len(panels) < sum(1 for key, _ in RANK_PANELS if len(run.get(key, ())))  # a one-rank run's zeros
    note = "; ".join(n for n in (per_rank_note(run), _one_rank_note(run) if left_out else "") if n)
    if note:
        import textwrap

        fig.supxlabel(textwrap.fill(note, int(13 * fig.get_size_inches()[0])), fontsize="small")
    return fig


def numbers(runs) -> list:
    """One line per run (one `load` result, or a list), its held-out sigma named as in the legend (`held_out`):
    'test -' for a flow without test points (its test history is NaN), as Table 1 and the report's runs table show
    what does not exist."""
    runs = [runs] if isinstance(runs, dict) else runs
    return [f"{r['label']}: sigma train {r['train'][0]:.4g} -> {r['train'][-1]:.4g}, {held_out(r)} "
            f"{_span(r['test'])} ({_count_of(len(r['x']) - 1, r['unit'])})" for r in runs]


def _count_of(n: int, unit: str) -> str:
    """'1 epoch', '3 epochs', '1 flow step'."""
    return f"{n} {unit}{'' if n == 1 else 's'}"


def _span(values) -> str:
    """'first -> last' of a sigma history, '-' where it holds no number."""
    return f"{values[0]:.4g} -> {values[-1]:.4g}" if np.isfinite(values).any() else "-"
