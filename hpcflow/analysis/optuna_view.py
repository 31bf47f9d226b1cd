"""An Optuna study at a glance: optimisation history, parameter importances and slice plot, drawn by
optuna.visualization.matplotlib (which uses pyplot; its figures are made on Agg canvases here, `figure.agg_pyplot`,
whatever the process's backend)."""

from __future__ import annotations

import math

import warnings

import numpy as np

from hpcflow.analysis.rundir import MissingData

VIEWS = ("history", "importances", "slice")
#: the fewest completed trials whose parameter importances are shown without a warning (`few_trials_note`). The
#: importances are Optuna's default evaluator's (PED-ANOVA): it compares each parameter's distribution over the best
#: 10% of the trials (ceil(0.1 n) of n) with its distribution over all of them, and its documentation asks for at
#: least 5 trials in that best 10% for a stable answer: ceil(0.1 n) >= 5 first holds at n = 41. Below 11 trials the
#: best 10% is one trial, so the bars only say how far that one trial's values lie from the others' (from 2 trials:
#: which parameter differs most between them, whatever the objective). 41 is the least that Optuna's own advice
#: allows; it is no guarantee (a study of many parameters wants more).
MIN_IMPORTANCE_TRIALS = 41


def objectives(study) -> list:
    """(file-name tag, objective index) of each view set to draw: ("", None) for a single-objective study; for a
    multi-objective one ("_objective{i}", i) per objective, each drawn on its own (Optuna's views draw one)."""
    n = len(study.directions)
    return [("", None)] if n == 1 else [(f"_objective{i}", i) for i in range(n)]


def objective_name(study, i) -> str:
    """Objective i's name: the study's metric name (`Study.set_metric_names`), else, for a single-objective study, the
    objective its hpcflow record names ([tune] objective), else 'objective i' ('objective value' alone)."""
    from hpcflow.tune.study import RECORD

    names = study.metric_names
    if names and i < len(names):
        return names[i]
    record = study.user_attrs.get(RECORD)
    if len(study.directions) == 1 and isinstance(record, dict) and isinstance(record.get("objective"), str):
        return record["objective"]
    return "objective value" if len(study.directions) == 1 else f"objective {i}"


def target_label(study, i) -> str:
    """The axis label and legend entry of objective i: its name and direction, 'log_gain_test (maximize)'."""
    return f"{objective_name(study, i)} ({study.directions[i].name.lower()})"


def plot(study, view: str, objective: int | None = None, *, path=None, name: str | None = None):
    """The figure of one view ('history', 'importances' or 'slice') of a study with completed trials; of a
    multi-objective study, of objective `objective` (its values, `Trial.values[i]`, as the target). `path`: the
    study's input (its tune directory, journal or URL), named with the fix where its completed trials are too few.
    `name` (its input's name in a report) heads the view's title: "NAME: Slice Plot". Drawn on an Agg canvas
    (`figure.agg_pyplot`): the process's pyplot backend is left as it is; and in Optuna's style (ggplot), which it
    sets for the process, confined to this figure (`figure.own_style`): the figures drawn after it keep theirs."""
    from hpcflow.analysis.figure import agg_pyplot, own_style

    with agg_pyplot() as plt, own_style() as keep:
        fig = keep(_drawn(study, view, objective, path=path, name=name))
        plt.close(fig)  # pyplot forgets it; the figure object stays usable
    return fig


def _drawn(study, view: str, objective: int | None, *, path, name: str | None):
    """`plot`'s figure, drawn by Optuna with pyplot (`figure.agg_pyplot` active)."""
    import optuna
    from optuna.visualization import matplotlib as ovm

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    need = 2 if view == "importances" else 1
    usable = [t for t in done if t.params] if view != "history" else done
    if len(usable) < need:
        which = "" if view == "history" else " with parameters"
        few, why = f"{len(usable)} completed trial(s){which}", f"; the {view} view needs {need}"
        if path is not None:
            from hpcflow.analysis.study import too_few_trials

            raise too_few_trials(path, study, few, why)
        raise MissingData(f"study {study.study_name!r}: {few}{why}")
    if len(study.directions) > 1 and objective is None:
        raise MissingData(f"study {study.study_name!r} has {len(study.directions)} objectives; draw one at a time "
                          "(objective=i)")
    fn = {"history": ovm.plot_optimization_history, "importances": ovm.plot_param_importances,
          "slice": ovm.plot_slice}[view]
    kw = {"target_name": target_label(study, objective or 0)}
    if objective is not None:  # importances rank parameters by how they lower the target: a maximised one negated
        maximise = view == "importances" and study.directions[objective] == optuna.study.StudyDirection.MAXIMIZE
        sign = -1.0 if maximise else 1.0
        kw["target"] = lambda t: sign * t.values[objective]
    drawn, note, few = study, "", ""
    if view == "importances":
        drawn, note = _importance_study(study, usable)
        few = few_trials_note(len(drawn.trials))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "PedAnovaImportanceEvaluator computes the importances")  # its sign is set
        warnings.filterwarnings("ignore", "Attempting to set identical low and high xlims")  # one value: ranged below
        ax = fn(drawn, **kw)
    if view == "slice":
        for one in np.ravel(ax):
            _range_single_value(one, done)
            _grid_ticks(one, done)
        _shared_trial_scale(np.ravel(ax))
        _mark_best(np.ravel(ax), _best(study, done, objective))
    if view == "history":
        _integer_trials(np.ravel(ax)[0])
    if few:  # in the panel, over its bars, where it is read with them
        import textwrap

        np.ravel(ax)[0].text(0.98, 0.03, textwrap.fill(few, 48), transform=np.ravel(ax)[0].transAxes, ha="right",
                             va="bottom", fontsize="small", color="#8b0000", zorder=6,
                             bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#8b0000", "alpha": 0.9})
    fig = np.ravel(ax)[0].figure
    fig.set_size_inches(max(6.4, fig.get_size_inches()[0]), 4.6)
    if name is not None:
        _named(fig, name)
    if note:  # under the axes, in the space the layout keeps for it
        import textwrap

        fig.supxlabel(textwrap.fill(note, int(13 * fig.get_size_inches()[0])), fontsize="small")
    _legible(fig)
    return fig


def _named(fig, name: str) -> None:
    """`name` heading the view's title (Optuna's generic one, on the figure or on its axes), before the layout
    measures it; a figure without a title gets `name` as its own."""
    from hpcflow.analysis.figure import titled

    if fig._suptitle is not None and fig._suptitle.get_text():
        titled(fig, name)
        return
    said = False
    for ax in fig.axes:
        for loc in ("center", "left", "right"):
            old = ax.get_title(loc=loc)
            if old:
                ax.set_title(f"{name}: {old}", loc=loc)
                said = True
    if not said:
        titled(fig, name)


def _legible(fig) -> None:
    """Optuna's figure with every label whole and apart: a categorical axis's choices slanted, a log axis labelled at
    its decades alone (its 2x10^0, 3x10^0 ... ran into each other), or where fewer than two decades are in view at a
    few values between them (`_log_ticks`), and the layout fitted to the labels (the importances' parameter names were
    cut at the figure's left edge)."""
    from matplotlib.ticker import NullFormatter

    from hpcflow.analysis.figure import literal

    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        if type(ax.xaxis.get_major_formatter()).__name__ == "StrCategoryFormatter":
            ax.tick_params(axis="x", labelrotation=30)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
        if ax.get_xscale() == "log":
            ax.xaxis.set_minor_formatter(NullFormatter())
            _log_ticks(ax)
    literal(fig)  # parameter names and choices as written, before the layout measures them
    if not _solvable(fig):  # a one-panel slice plot: its colour bar's grid has rows of zero height
        _within(fig)
        return
    fig.set_layout_engine("constrained")
    try:  # a layout it cannot solve is left as Optuna made it
        fig.draw_without_rendering()
    except (ZeroDivisionError, ValueError):
        fig.set_layout_engine("none")


def _log_ticks(ax) -> None:
    """A log x axis with fewer than two decades in view (a parameter's trials within one decade: no label at all
    where none is in view) labelled at the values 1, 2, 5 x 10^k in view, else at 1 ... 9 x 10^k, else (a view
    narrower than that) at the linear axis' round values; as plain numbers (%g)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

    low, high = sorted(ax.get_xlim())
    if not (np.isfinite(low) and np.isfinite(high) and 0 < low < high):
        return
    k0, k1 = int(np.floor(np.log10(low))), int(np.ceil(np.log10(high)))
    if sum(low <= 10.0 ** k <= high for k in range(k0, k1 + 1)) >= 2:
        return
    points = []
    for subs in ((1, 2, 5), range(1, 10)):
        points = [v for k in range(k0, k1 + 1) for m in subs if low <= (v := float(f"{m}e{k}")) <= high]
        if len(points) >= 2:
            break
    if len(points) < 2:
        points = [v for v in MaxNLocator(nbins=4, min_n_ticks=2).tick_values(low, high) if low <= v <= high]
    ax.xaxis.set_major_locator(FixedLocator(points))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))


def _solvable(fig) -> bool:
    """Whether the constrained layout can place `fig`'s axes: none lies in a grid with a row of zero height (it
    divides by it)."""
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        ratios = spec.get_gridspec().get_height_ratios() if spec is not None else None
        if ratios is not None and min(ratios) <= 0:
            return False
    return True


def _within(fig, pad: float = 0.08) -> None:
    """Move the subplots' edges in so that every label lies inside the figure, `pad` inches from its edges (the
    layout where the constrained one cannot be solved: a one-panel slice plot's y label was cut at the left edge)."""
    fig.draw_without_rendering()
    box = fig.get_tightbbox()  # inches
    width, height = fig.get_size_inches()
    sp = fig.subplotpars
    left = sp.left + max(0.0, pad - box.x0) / width
    right = sp.right - max(0.0, box.x1 - width + pad) / width
    bottom = sp.bottom + max(0.0, pad - box.y0) / height
    top = sp.top - max(0.0, box.y1 - height + pad) / height
    if left < right and bottom < top:
        fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top)


#: the margin on either side of a slice plot's x range, as a share of its width (Optuna's own padding)
PADDING = 0.05


def _range_single_value(ax, trials) -> None:
    """Give a slice-plot axis whose points all lie at one x (one completed trial, a parameter newly searched) a range
    around that value, which Optuna leaves empty (low = high: matplotlib warns and widens it arbitrarily): the range
    the completed `trials` searched the parameter (its xlabel) in, with Optuna's padding (logarithmic on a log axis);
    where that is one value too (a fixed range), a decade either side on a log axis, 5 % (or 0.05 at 0) either side
    on a linear one; a categorical axis: half a category either side."""
    offsets = [c.get_offsets() for c in ax.collections]
    xs = np.concatenate([np.asarray(o)[:, 0] for o in offsets if len(o)]) if any(len(o) for o in offsets) else []
    if len(xs) == 0 or np.ptp(np.asarray(xs, dtype=float)) > 0:
        return
    x, log = float(xs[0]), ax.get_xscale() == "log"
    dists = [t.distributions[ax.get_xlabel()] for t in trials if ax.get_xlabel() in t.distributions]
    if dists and not hasattr(dists[0], "low"):  # categorical: one category shown at position 0
        ax.set_xlim(x - 0.5, x + 0.5)
        return
    low, high = min([x, *(d.low for d in dists)]), max([x, *(d.high for d in dists)])
    if log:
        low, high = np.log10(low), np.log10(high)
    pad = (high - low) * PADDING if high > low else (1.0 if log else max(abs(low) * PADDING, PADDING))
    ends = (low - pad, high + pad)
    ax.set_xlim(*(10.0 ** np.array(ends) if log else ends))


def few_trials_note(n: int) -> str:
    """The warning said with importances computed from `n` completed trials, fewer than MIN_IMPORTANCE_TRIALS
    (whose comment says why so few rank nothing); "" for enough."""
    if n >= MIN_IMPORTANCE_TRIALS:
        return ""
    return (f"only {n} completed trial{'' if n == 1 else 's'}: too few for the importances to mean much "
            f"(at least {MIN_IMPORTANCE_TRIALS} wanted)")


def _compared(study, trials) -> tuple:
    """(the parameters whose importances are compared, the completed `trials` that searched every one of them, the
    note said with them): a study that changed its search space has trials of different parameter sets, and Optuna's
    evaluator rated parameters that no trial varied together; the set compared is the largest that two or more trials
    share (of equal ones, the latest trial's). A parameter with a single value in every trial (one categorical
    choice, a range of one point) is left out: it would get the whole importance while explaining nothing. The note
    names what was left out ("" for nothing). MissingData where no two trials share a parameter that varies."""
    names = {n for t in trials for n in t.params}
    single = sorted(n for n in names if all(t.distributions[n].single() for t in trials if n in t.distributions))
    varied = names - set(single)
    sets = {frozenset(varied & t.params.keys()) for t in trials} - {frozenset()}

    def having(s):
        return [t for t in trials if s <= t.params.keys()]

    pairs = [s for s in sets if len(having(s)) >= 2]
    if not pairs:
        why = f" ({', '.join(single)}: a single value)" if single else ""
        raise MissingData(f"study {study.study_name!r}: no two completed trials searched the same varying "
                          f"parameters{why}; the importances view needs two")
    chosen = max(pairs, key=lambda s: (len(s), len(having(s)), max(t.number for t in having(s))))
    kept = having(chosen)
    said = []
    if len(kept) < len(trials):
        said.append(f"importances over the {len(kept)} of {len(trials)} completed trials that searched "
                    f"{', '.join(sorted(chosen))} (trials {_ranges([t.number for t in kept])}); the others searched "
                    "other parameters")
    if single:
        said.append(f"left out: {', '.join(single)} (a single value, nothing to rate)")
    return sorted(chosen), kept, "; ".join(said)


def _importance_study(study, trials):
    """(the study whose importances are drawn, the note said under them): an in-memory study of the trials that
    searched every parameter compared (`_compared`), holding those parameters alone."""
    import optuna

    chosen, kept, note = _compared(study, trials)
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" line
    try:
        sub = optuna.create_study(directions=study.directions)
    finally:
        optuna.logging.set_verbosity(level)
    dists = {n: _merged([t.distributions[n] for t in kept], [t.params[n] for t in kept]) for n in chosen}
    for t in kept:
        sub.add_trial(optuna.trial.create_trial(params={n: t.params[n] for n in chosen}, distributions=dists,
                                                values=t.values))
    return sub, note


def _merged(dists, values=()):
    """One distribution holding every value of `dists` (one parameter's, of trials whose range changed) and every
    one of the trials' own `values`, which a trial queued with `enqueue_trial` may hold outside its distribution's
    range or off its grid: the first where all are equal and it holds them, else the union of their ranges widened
    to the values (a step only where all share it and their low end, and every value lies on its grid; a log scale
    only where every value is > 0)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    first, values = dists[0], list(values)
    if isinstance(first, CategoricalDistribution):
        choices = list(dict.fromkeys([*(c for d in dists for c in d.choices), *values]))
        return first if choices == list(first.choices) else CategoricalDistribution(choices)
    if all(d == first for d in dists) and all(first._contains(first.to_internal_repr(v)) for v in values):
        return first
    low, high = min([*(d.low for d in dists), *values]), max([*(d.high for d in dists), *values])
    log = first.log and low > 0
    step = first.step if len({(d.low, d.step) for d in dists}) == 1 else None
    if step is not None and not all(_on_grid(v, first.low, step) for v in values):
        step = None
    if isinstance(first, IntDistribution):
        return IntDistribution(int(low), int(high), log=log, step=1 if log or step is None else step)
    if step is not None and log:
        step = None
    if step is not None:  # optuna's high lies on the grid from low
        high = low + math.floor((high - low) / step + 1e-9) * step
    return FloatDistribution(low, high, log=log, step=step)


def _on_grid(value, low, step) -> bool:
    """Whether `value` lies on the grid low + k step (k a whole number, within rounding)."""
    k = (value - low) / step
    return abs(k - round(k)) <= 1e-8 * max(1.0, abs(k))


def _ranges(numbers) -> str:
    """'0-2, 5' of sorted trial numbers."""
    out, numbers = [], sorted(numbers)
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out)


def _shared_trial_scale(axes) -> None:
    """Colour every slice panel's points on one trial-number scale (Optuna scales each panel on its own trials and
    draws the colour bar of the last), with integer ticks on the colour bar; one trial: the bar spans it +- 0.5."""
    from matplotlib.ticker import MaxNLocator

    cols = [c for ax in axes for c in ax.collections if c.get_array() is not None and len(c.get_array())]
    if not cols:
        return
    values = np.concatenate([np.asarray(c.get_array(), dtype=float) for c in cols])
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    for c in cols:
        c.set_clim(low, high)
    for bar in {id(c.colorbar): c.colorbar for c in cols if c.colorbar is not None}.values():
        bar.locator = MaxNLocator(integer=True, min_n_ticks=1)
        bar.update_ticks()


#: the slice plot's trial-number colours: Optuna's "Blues" from this share of its range up, so that no trial's point
#: is drawn near white (Blues at 0, trial 0's colour, is #f7fbff: invisible on a white page, faint on ggplot's grey)
SLICE_COLOURS_FROM = 0.3
#: the best trial's mark on every slice panel: a large star of its own colour, outlined in black, over its point
BEST_MARK = {"marker": "*", "s": 260, "facecolors": "#d62728", "edgecolors": "black", "linewidths": 1.2,
             "zorder": 5}


def _best(study, done, objective):
    """The best of the completed trials `done` by the objective drawn (a multi-objective study's `objective`, by its
    direction); None where none has a value."""
    import optuna

    i = objective or 0
    valued = [t for t in done if t.values is not None and len(t.values) > i]
    if not valued:
        return None
    pick = max if study.directions[i] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(valued, key=lambda t: t.values[i])


def _mark_best(axes, best) -> None:
    """Draw the slice panels' trial colours on a scale that starts clear of white (SLICE_COLOURS_FROM), and mark
    `best`'s point in every panel that shows it with BEST_MARK, labelled 'best trial N' in the first panel's
    legend: Optuna draws it as any other trial, in a colour by its number (near white for trial 0)."""
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    blues = colormaps["Blues"]
    cmap = ListedColormap(blues(np.linspace(SLICE_COLOURS_FROM, 1.0, 256)), name="Blues_visible")
    marked = []
    for ax in axes:
        for c in list(ax.collections):
            numbers = c.get_array()
            if numbers is None or not len(numbers):
                continue
            c.set_cmap(cmap)
            at = np.flatnonzero(np.asarray(numbers, dtype=float) == (best.number if best else np.nan))
            if len(at):
                x, y = c.get_offsets()[at[0]]
                marked.append(ax.scatter([x], [y], label=f"best trial {best.number}", **BEST_MARK))
    for c in {id(c.colorbar): c.colorbar for ax in axes for c in ax.collections
              if getattr(c, "colorbar", None) is not None}.values():
        c.update_normal(c.mappable)
    if marked:  # the mark alone (not Optuna's empty "Infeasible Trial" entry)
        marked[0].axes.legend(handles=marked[:1], loc="best", fontsize="small", framealpha=0.9)


def _integer_trials(ax) -> None:
    """The history's trial axis with integer ticks; one trial: half a trial either side (its number the one tick)."""
    from matplotlib.ticker import MaxNLocator

    low, high = ax.get_xlim()
    if high - low < 1:
        middle = round((low + high) / 2)
        ax.set_xlim(middle - 0.5, middle + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


#: the most ticks a stepped parameter's slice axis gets (its grid thinned to every k-th point above that)
GRID_TICKS = 8


def _grid_ticks(ax, trials) -> None:
    """Ticks of a slice panel whose parameter takes a grid of values (an int, a float with a step) at grid points
    (4, 8, 12 of a range with step 4, not 5, 6, 7), every k-th where there are more than GRID_TICKS in view; an int of
    step 1 at integers; where the trials' grids differ (the study changed the range's low end or step), at the values
    the trials took. A log axis keeps Optuna's ticks."""
    from matplotlib.ticker import FixedLocator, MaxNLocator
    from optuna.distributions import FloatDistribution, IntDistribution

    name = ax.get_xlabel()
    dists = [t.distributions[name] for t in trials if name in t.distributions]
    grid = [d for d in dists if isinstance(d, (IntDistribution, FloatDistribution)) and not d.log]
    if not grid or len(grid) != len(dists) or any(d.step is None for d in grid):
        return
    left, right = ax.get_xlim()
    if len({(d.low, d.step) for d in grid}) > 1:
        taken = sorted({t.params[name] for t in trials if name in t.params and left <= t.params[name] <= right})
        points = taken[::int(np.ceil(len(taken) / GRID_TICKS)) if taken else 1]
    elif isinstance(grid[0], IntDistribution) and grid[0].step == 1:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        return
    else:  # the grid points in view alone, every k-th (a range may hold up to 10^15 of them: tune.space)
        low, step = grid[0].low, grid[0].step
        last = int(np.floor((max(d.high for d in grid) - low) / step + 1e-9))
        k0 = max(0, int(np.ceil((left - low) / step - 1e-9)))
        k1 = min(last, int(np.floor((right - low) / step + 1e-9)))
        every = _nice_multiple((k1 - k0 + 1) / GRID_TICKS)  # (1, 2, 5 x 10^n grid steps: 0.1 apart, not 0.069)
        points = [low + k * step for k in range(-(-k0 // every) * every, k1 + 1, every)]
        if isinstance(grid[0], FloatDistribution):
            digits = max(0, -int(np.floor(np.log10(step))) + 6)
            points = [p for p in (round(p, digits) for p in points) if left <= p <= right]
    ax.xaxis.set_major_locator(FixedLocator(points))


def _nice_multiple(x: float) -> int:
    """The least whole number of the form 1, 2 or 5 times a power of ten that is >= x (1 for x <= 1)."""
    if x <= 1:
        return 1
    mag = 10 ** int(np.floor(np.log10(x)))
    return next(m * mag for m in (1, 2, 5, 10) if m * mag >= x)


def numbers(study, base=None) -> list:
    """The study's trial counts by state (`study.trial_counts`, as the report's row counts them: with `base`, the
    study's directory or storage as `load_study` gives it, a RUNNING trial whose worker is gone is "interrupted") and
    its best trial (single objective) or Pareto front (several)."""
    import optuna

    from hpcflow.analysis.study import by_state, diverged_count, judged_states, trial_counts
    from hpcflow.tune.space import params_text

    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    _, trials, states = judged_states(study, base) if base is not None else (None, study.trials, by_state(study.trials))
    out = [f"study {study.study_name}: {trial_counts(len(trials), states, diverged_count(trials))}"]
    if done and len(study.directions) == 1:
        best = study.best_trial
        out.append(f"best trial {best.number}: value {best.value:.6g}, params {params_text(best.params)}")
    elif done:
        names = ", ".join(f"{objective_name(study, i)} ({d.name.lower()})" for i, d in enumerate(study.directions))
        out.append(f"objectives: {names}")
        out += [f"Pareto-front trial {t.number}: values {[float(f'{v:.6g}') for v in t.values]}, "
                f"params {params_text(t.params)}"
                for t in study.best_trials]
    try:  # what the importances view leaves out, and whether its trials are too few, said beside its figure too
        _, kept, note = _compared(study, [t for t in done if t.params])
        few = few_trials_note(len(kept))
    except MissingData:  # no importances drawn: the skipped view says why
        note = few = ""
    out += [note[0].upper() + note[1:]] if note else []
    return out + ([f"Parameter importances: {few}"] if few else [])
