"""Fig. 4 (sec. 3.3): metric-NTK eigenvalue histograms at epoch 0 and the last epoch, Wasserstein distance and
relative Frobenius change of the NTK versus epoch, and the width sweep (NTK change versus width).

Reads DIR/nn.h5 of an "nn" job: ntk/spectrum (epochs + 1, 81 P pooled eigenvalues: P train probe points),
ntk/wasserstein, ntk/rel_frobenius when [ntk] was enabled, and ntk/spectrum_train_test, ntk/wasserstein_train_test
where the job had as many test as train probe points; width_sweep/* when the job ran a sweep (with or without [ntk]).

The histograms and the Wasserstein curve are of one spectrum (SPECTRA), which the histogram panel's title names:
"train_test", the paper's statistic (sec. 3.3: the eigenvalues of the 10 x 10 train x test blocks Theta_IJ(x_a,
x'_b) for each of the 81 (I, J), pooled; complex, the blocks not being symmetric: their real parts are drawn, as
ntk/wasserstein_train_test compares them), or "train", the eigenvalues of the symmetrised train x train blocks
(ntk/spectrum). By default the paper's, where nn.h5 holds it, else the train x train one (said in the printed lines);
`fig4_ntk.py --spectrum` picks one.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from hpcflow.analysis.figure import mathtext, new_figure
from hpcflow.analysis.histories import damaged_data, nn_definite_mark
from hpcflow.analysis.rundir import (NN, NN_CHECKPOINT, MissingData, check_range, data_file, dataset_names, h5_source,
                                     nn_continuation, read_attrs, read_datasets, run_state, same_length)
from hpcflow.h5read import one_line, read_h5
from hpcflow.nn.h5schema import PER_PROBE  # (81: the 9 x 9 blocks pooled; docs/outputs.md: shape (E+1, 81 P))

HINT = ("pass the run directory of an nn job with [ntk] enabled or a [width_sweep] (hpcflow nn "
        "jobs/nn_ntk_evolution.toml --out DIR)")
NTK = ("ntk/spectrum", "ntk/wasserstein", "ntk/rel_frobenius")
SWEEP = ("width_sweep/width", "width_sweep/rel_frobenius_final", "width_sweep/wasserstein_final",
         "width_sweep/sigma_val_final")
NDIM = {"ntk/spectrum": 2, **dict.fromkeys((*NTK[1:], *SWEEP, "ntk/wasserstein_train_test"), 1)}
BINS = 60
#: the spectra Fig. 4 draws: name -> (eigenvalue dataset, its Wasserstein dataset, the histogram panel's title, the
#: x axis's label); the first is the default
SPECTRA = {
    "train_test": ("ntk/spectrum_train_test", "ntk/wasserstein_train_test",
                   "train x test blocks (the paper's statistic)",
                   r"Re eigenvalue of the train x test blocks $B_{IJ}$ (pooled over $I$, $J$)"),
    "train": ("ntk/spectrum", "ntk/wasserstein", "symmetrised train x train blocks",
              r"eigenvalue of the symmetrised train x train blocks (pooled over $I$, $J$)"),
}
#: the blocks whose eigenvalues each spectrum is, in the words of docs/outputs.md, for the labels of its
#: Wasserstein distance (the width sweep's `wasserstein_final` is of the "train" one, as nn.h5's ntk/wasserstein and
#: summary.json's `ntk_wasserstein`)
SPECTRUM_OF = {"train_test": "train x test blocks", "train": "symmetrised train x train blocks"}
#: the relative Frobenius change's axis label, ‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F in mathtext (subscripts typeset)
FROBENIUS_LABEL = r"$\|\Theta_t - \Theta_0\|_F \;/\; \|\Theta_0\|_F$"
#: why the default draws the train x train spectrum of an nn.h5 without the paper's
NO_TRAIN_TEST = ("nn.h5 holds no ntk/spectrum_train_test (recorded where [ntk] has as many test as train probe "
                 "points): the symmetrised train x train spectrum is drawn")


def load(run_dir, spectrum: str | None = None) -> dict:
    """The NTK datasets (NTK, and the train x test ones where nn.h5 holds them) of nn.h5 and its width sweep's (SWEEP)
    where complete and not empty; the sweep's alone of a run without [ntk]; MissingData naming the first NTK dataset
    missing or malformed otherwise (HINT where nn.h5 holds no NTK dataset; a run's nn.h5 that holds some is damaged:
    `histories.damaged_data`), or the spectrum asked for (`spectrum`, a key of SPECTRA) where nn.h5 lacks it.
    'spectrum': the one drawn (`spectrum`, else the paper's where nn.h5 holds it, else "train"), 'spectrum_note' why
    the default is not the paper's ('' otherwise). 'note': the
    mark of a run that did not finish (rundir.RunState.note: an extended run killed before its new nn.h5 is drawn
    from the old one, marked incomplete), '' for a finished one; 'not_positive_definite': the mark of a network whose
    last epoch's metric is not positive definite at validation points (`histories.nn_definite_mark`), '' otherwise,
    which its figures' titles (`_marked`), its printed lines and the report's caption carry beside its name
    (`products._per_run`)."""
    if os.path.isdir(run_dir) and not os.path.isfile(os.path.join(run_dir, NN)) and os.path.isfile(
            os.path.join(run_dir, NN_CHECKPOINT)):  # no nn.h5 beside checkpoint.pt: not an nn job's fault
        state = run_state(run_dir)
        if state.missing:  # a finished run's nn.h5 gone (a partial copy): written again from checkpoint.pt
            fix = state.missing.removeprefix(f"{NN} missing: ")
            raise MissingData(f"{run_dir}: no {NN}: the run ended ({state.status or 'finished'}), but its {NN} is "
                              f"missing from the directory (a partial copy?); {fix}, then draw Fig. 4")
        raise MissingData(f"{run_dir}: no {NN} yet ({state.note() or 'incomplete'}): the run was interrupted before it "
                          f"wrote it; {nn_continuation(run_dir)}, then draw Fig. 4")
    if spectrum is not None and spectrum not in SPECTRA:
        raise ValueError(f"spectrum={spectrum!r} is not one of {', '.join(SPECTRA)}")
    path = data_file(run_dir, NN, hint=HINT)
    try:
        data = _datasets(path)
    except MissingData as exc:
        if not any(name.startswith("ntk/") for name in dataset_names(path)):  # no NTK recorded: not such a run
            raise
        raise damaged_data(path, exc, HINT) from None  # the run recorded its NTK: the file is damaged
    shown, why = spectrum or "train_test", ""
    if "ntk/spectrum" in data and SPECTRA["train_test"][0] not in data:
        if spectrum == "train_test":
            raise MissingData(f"{path}: no dataset 'ntk/spectrum_train_test', the paper's statistic (an nn job records "
                              "it where [ntk] has as many test as train probe points, n_test_points = "
                              "n_train_points); pass --spectrum train to draw the symmetrised train x train spectrum, "
                              "or rerun the job with such probe points")
        shown, why = "train", "" if spectrum else NO_TRAIN_TEST
    return {**data, "spectrum": shown, "spectrum_note": why, "note": run_state(run_dir).note(),
            "not_positive_definite": nn_definite_mark(path)}


def _check_width(path, shape, name: str = "ntk/spectrum") -> None:
    """MissingData where the rows of spectrum `name` (ntk/spectrum, ntk/spectrum_train_test) are not 81 P eigenvalues
    wide (docs/outputs.md), P the train probe points: the rows of ntk/points_train, else the job's
    [ntk].n_train_points (@config), else any P (a multiple of 81)."""
    probes = _train_probes(path)
    if probes is not None and shape[1] != PER_PROBE * probes:
        raise MissingData(f"{path}: dataset '{name}' has shape {shape}, not (E+1, 81 P) = ({shape[0]}, "
                          f"{PER_PROBE * probes}) for its P = {probes} train probe points; {HINT}")
    if probes is None and shape[1] % PER_PROBE:
        raise MissingData(f"{path}: dataset '{name}' has shape {shape}, whose rows are not 81 P eigenvalues "
                          f"(P train probe points) wide; {HINT}")


def _train_probes(path) -> int | None:
    """P, the NTK's train probe points of nn.h5 `path`: the rows of ntk/points_train, else the job's [ntk].
    n_train_points (@config); None where neither says."""
    refused = lambda exc: MissingData(f"{path}: not a readable HDF5 file ({one_line(exc)}); {HINT}")  # noqa: E731
    with h5_source(path) as source, read_h5(source, refused) as f:
        points = f.get("ntk/points_train")  # (P, 5) complex: only its shape is read
        if isinstance(points, h5py.Dataset) and points.ndim == 2:
            return points.shape[0]
    cfg = read_attrs(path, hint=HINT).get("config")
    ntk = cfg.get("ntk") if isinstance(cfg, dict) else None
    n = ntk.get("n_train_points") if isinstance(ntk, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def _datasets(path) -> dict:
    sweep = read_datasets(path, (), hint=HINT, optional=SWEEP, ndim=NDIM)
    complete = all(name in sweep for name in SWEEP)
    sweep = sweep if complete and same_length(path, sweep, SWEEP, hint=HINT) else {}  # lengths differing: MissingData
    if sweep and not set(NTK) & set(dataset_names(path)):  # a sweep of a run without [ntk]: drawn alone
        return sweep
    data = read_datasets(path, NTK, hint=HINT, ndim=NDIM, optional=(SPECTRA["train_test"][1],))
    square = _complex_spectrum(path, SPECTRA["train_test"][0])
    if square is not None:
        data[SPECTRA["train_test"][0]] = square
    if (square is None) != (SPECTRA["train_test"][1] not in data):  # a run writes both or neither
        have, lack = SPECTRA["train_test"][:2] if square is not None else SPECTRA["train_test"][1::-1]
        raise MissingData(f"{path}: dataset '{have}' is there without '{lack}', which a run writes beside it; {HINT}")
    same_length(path, data, (*NTK, *SPECTRA["train_test"][:2]), hint=HINT)
    for _, wasserstein, _, _ in SPECTRA.values():  # the curve of the spectrum drawn
        if wasserstein in data:
            check_range(path, wasserstein, data[wasserstein], 0.0, np.inf, what="Wasserstein distance")
    for name, _, _, _ in SPECTRA.values():
        if name not in data:
            continue
        _check_width(path, data[name].shape, name)
        bad = np.flatnonzero(~np.isfinite(data[name]).all(axis=1))
        if len(bad):  # a run writes the NTK of finite epochs only: the histogram's bins would be NaN
            raise MissingData(f"{path}: dataset '{name}' holds a non-finite value (NaN or inf) at epoch {bad[0]}; "
                              f"{HINT}")
    return {**data, **sweep}  # no sweep, a partial or an empty one: Fig. 4 alone


def _complex_spectrum(path, name: str):
    """Dataset `name` of nn.h5 `path`, 2-D numbers (complex included, which `read_datasets` refuses), non-empty; None
    where absent; MissingData where it holds anything else."""
    refused = lambda exc: MissingData(f"{path}: not a readable HDF5 file ({one_line(exc)}); {HINT}")  # noqa: E731
    with h5_source(path) as source, read_h5(source, refused) as f:
        if not isinstance(f.get(name), h5py.Dataset):
            return None
        value = np.asarray(f[name][()])
    if value.dtype.kind not in "iufc" or value.ndim != 2 or value.size == 0:
        raise MissingData(f"{path}: dataset '{name}' holds {value.dtype} data of shape {value.shape}, not a non-empty "
                          f"(E+1, 81 P) array of eigenvalues; {HINT}")
    return value


def load_sweep(run_dir) -> dict:
    path = data_file(run_dir, NN, hint="pass the run directory of an nn job with a [width_sweep]")
    hint = "pass the run directory of an nn job with [width_sweep].widths set"
    data = read_datasets(path, SWEEP, hint=hint, ndim=NDIM)
    same_length(path, data, SWEEP, hint=hint)
    return {**data, "note": run_state(run_dir).note(), "not_positive_definite": nn_definite_mark(path)}


def _marked(title: str, data, *, whose: str = "") -> str:
    """`title` with the mark of a run that did not finish (' (incomplete: ...)') and, on a line of its own, that of a
    network not positive definite at validation points after its last epoch ('not_positive_definite': `load`), as its
    sigma histories' legend carries them; `whose` names the network the mark is about where the figure draws others."""
    title = f"{title} ({data['note']})" if data.get("note") else title
    mark = data.get("not_positive_definite")
    return f"{title}\n({whose}{mark})" if mark else title


def symlog_edges(values, bins: int = BINS):
    """Bin edges uniform in asinh(x / t), t = 1e-6 max|x|: the spectra span many decades of both signs."""
    t = 1e-6 * float(np.max(np.abs(values))) or 1.0
    lo, hi = np.arcsinh(np.min(values) / t), np.arcsinh(np.max(values) / t)
    if hi <= lo:  # one distinct value: a bin around it
        return t * np.sinh(np.array([lo - 1.0, hi + 1.0])), t
    edges = t * np.sinh(np.linspace(lo, hi, bins + 1))
    edges[0], edges[-1] = np.min(values), np.max(values)  # exact ends: the round trip may lose the extremes
    return edges, t


def _ticks(edges, t):
    """0 and +-10^k every few decades between t and the largest |edge| (at most four per side)."""
    top = np.log10(np.max(np.abs(edges)))
    exps = np.arange(np.ceil(np.log10(t)), np.floor(top) + 1)
    exps = exps[:: max(1, int(np.ceil(len(exps) / 4)))]
    pos = 10.0 ** exps
    return np.concatenate([-pos[::-1][pos[::-1] <= -edges[0]], [0.0], pos[pos <= edges[-1]]])


def shown(data) -> str:
    """The spectrum of `data` that Fig. 4 draws (a key of SPECTRA): load's 'spectrum', else the paper's where `data`
    holds it, else the train x train one."""
    return data.get("spectrum") or ("train_test" if SPECTRA["train_test"][0] in data else "train")


def plot(data):
    """Histograms (epoch 0, last) of the spectrum `shown` names (the real parts of a complex one) and the two
    NTK-change curves versus epoch; the histogram panel's title names the spectrum."""
    name, wasserstein, title, xlabel = SPECTRA[shown(data)]
    spec = np.real(data[name])
    last = len(spec) - 1
    fig, axes = new_figure(1, 3, size=(15, 4.4))
    from matplotlib.ticker import MaxNLocator  # (matplotlib: checked by new_figure)
    edges, t = symlog_edges(np.concatenate([spec[0], spec[last]]))
    for epoch, color in ((0, "C0"), (last, "C3")):
        counts, _ = np.histogram(spec[epoch], bins=edges)
        axes[0].stairs(counts, edges, color=color, fill=epoch == 0, alpha=0.5 if epoch == 0 else 1.0,
                       label=f"epoch {epoch}")
    axes[0].set_xscale("symlog", linthresh=t)
    axes[0].set_xticks(_ticks(edges, t))
    axes[0].tick_params(axis="x", labelsize="small", labelrotation=45)
    mathtext(axes[0].set_xlabel(xlabel))
    axes[0].set_ylabel("count")
    axes[0].set_title(f"metric-NTK spectrum: {title}", fontsize="medium")
    axes[0].legend()
    epochs = np.arange(len(spec))
    axes[1].plot(epochs, data[wasserstein], "o-")
    axes[1].set_ylabel(f"Wasserstein distance to epoch 0\n({SPECTRUM_OF[shown(data)]}' spectrum)")
    axes[2].plot(epochs, data["ntk/rel_frobenius"], "o-", color="C2")
    mathtext(axes[2].set_ylabel(FROBENIUS_LABEL))
    for ax in axes[1:]:
        ax.set_xlabel("epoch")
        # whole epochs only (a short run had 0.5, 1.5, ...; one epoch: 0.945, ..., 1.050 with min_n_ticks 2)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    fig.suptitle(_marked("Fig. 4: metric-NTK evolution", data))
    return fig


def plot_sweep(data):
    """NTK change after training and final validation sigma versus hidden width (log-log)."""
    fig, axes = new_figure(1, 2, size=(11, 4.2))
    w = data["width_sweep/width"]
    axes[0].plot(w, data["width_sweep/rel_frobenius_final"], "o-", label="relative Frobenius change")
    axes[0].plot(w, data["width_sweep/wasserstein_final"], "s--",
                 label=f"Wasserstein distance\n({SPECTRUM_OF['train']}' spectrum)")
    axes[0].set_ylabel("NTK change after training")
    axes[0].legend(fontsize="small")
    axes[1].plot(w, data["width_sweep/sigma_val_final"], "o-", color="C3")
    axes[1].set_ylabel("σ (validation) after training")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(w, [f"{x:g}" for x in w])  # every width labelled (a log axis labels decades alone)
        ax.set_xticks([], minor=True)
        ax.set_xlabel("hidden width")
    fig.suptitle(_marked("Width sweep: lazy (NTK fixed) versus feature-learning regime", data,
                         whose="the job's main network: "))  # the count nn.h5 holds is of that network alone
    return fig


def numbers(data) -> list:
    out = [data["note"]] if data.get("note") else []
    if "ntk/spectrum" in data:
        name, wasserstein, title, _ = SPECTRA[shown(data)]
        out += [f"spectrum: {title} ({name})"] + ([data["spectrum_note"]] if data.get("spectrum_note") else [])
        out += [f"epochs: {len(data[name]) - 1}",
                f"Wasserstein distance to epoch 0 of the {SPECTRUM_OF[shown(data)]}' spectrum (last epoch): "
                f"{data[wasserstein][-1]:.4g}",
                f"relative Frobenius change (last epoch): {data['ntk/rel_frobenius'][-1]:.4g}"]
    if "width_sweep/width" in data:
        out += [f"width {int(w)}: rel. Frobenius {f:.4g}, sigma_val {s:.4g}" for w, f, s in
                zip(data["width_sweep/width"], data["width_sweep/rel_frobenius_final"], data["width_sweep/sigma_val_final"])]
    return out
