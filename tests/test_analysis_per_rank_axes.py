"""The per-rank figure of a one-rank run: its bytes-received panel (all zero: no other rank) is left out, the figure
saying why, its collectives panel (a network's only one) starts at 0 instead of a -0.04..0.04 band around it and
says it has none, and its steps and epochs are ticked whole."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from analysis_runs import run_dirs

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _drawn(fig):
    fig.canvas.draw()
    return fig


@pytest.mark.parametrize("kind", ["flow", "nn"])
def test_a_one_rank_runs_per_rank_axes_start_at_zero_with_whole_ticks(runs, kind, tmp_path):
    from hpcflow.analysis import histories

    run = histories.load(runs[kind])
    fig = _drawn(histories.plot_per_rank(run))
    if kind == "flow":
        with h5py.File(f"{runs[kind]}/checkpoint.h5", "r") as f:
            received = f["history/comm_bytes"][()]
        assert received.shape[1] == 1 and not received.any()  # the premise: one rank, nothing received
        assert [a.get_ylabel() for a in fig.axes] == ["step time [s]"]
        assert "one rank: no communication" in fig._supxlabel.get_text()
    else:
        (ax,) = fig.axes
        assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 0, ax.get_ylim()
        assert [t.get_text() for t in ax.texts] == ["one rank: no collectives"]
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        ys = np.concatenate([line.get_ydata() for line in ax.get_lines()])
        assert ax.get_ylim()[0] <= ys.min() and ax.get_ylim()[0] >= 0, (ax.get_ylim(), ys.min())


@pytest.mark.parametrize("kinds", [("nn",), ("flow", "nn")])
def test_the_sigma_histories_tick_steps_and_epochs_whole(runs, kinds):
    """A 3-epoch network run's sigma-history axis had ticks at 0.5, 1.5, ... (alone, and on its panel beside a flow
    run's)."""
    from hpcflow.analysis import histories

    fig = _drawn(histories.plot([histories.load(runs[k]) for k in kinds]))
    assert [ax.get_xlabel() for ax in fig.axes] == [{"flow": "flow step", "nn": "epoch"}[k] for k in kinds]
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), (ax.get_xlabel(), ticks)


def test_a_one_epoch_networks_per_rank_figure_is_ticked_at_its_epoch_alone():
    """A network run of one epoch: its per-rank axis had ticks 0.945, 0.96, ..., 1.05; its printed line said
    '(1 epochs)'."""
    from hpcflow.analysis import histories

    run = {"label": "net", "unit": "epoch", "comm_seconds": np.array([[0.5, 0.6]]), "x": np.arange(2),
           "train": np.array([0.35, 0.33]), "test": np.array([0.36, 0.34])}
    fig = _drawn(histories.plot_per_rank(run))
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert [t for t in ax.get_xticks() if lo <= t <= hi] == [1.0], ax.get_xticks()
    (line,) = histories.numbers(run)
    assert line.endswith("(1 epoch)"), line
    assert histories.numbers({**run, "x": np.arange(3), "train": np.ones(3), "test": np.ones(3)})[0].endswith(
        "(2 epochs)")
