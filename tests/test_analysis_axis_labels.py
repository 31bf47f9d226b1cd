"""The figures' axis labels spell σ and Θ as the paper does, Fig. 3's distances carry their unit on both panels, and
a σ history under a decade (a network's 0.38 -> 0.33) is ticked at plain values a reader can read."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_runs import run_dirs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_fig3_left_labels_spell_sigma_and_give_the_distance_unit(runs):
    from hpcflow.analysis import fig3_noise

    fig = fig3_noise.plot([fig3_noise.load(runs["noise"])])
    ax = fig.axes[0]
    assert ax.get_ylabel() == "gain σ_FS / σ_final (test)"
    assert ax.get_xlabel().endswith("[rad]") and "  " not in ax.get_xlabel() + ax.get_ylabel()


def test_a_network_history_under_a_decade_is_ticked_at_plain_values():
    from hpcflow.analysis.histories import plot

    x = np.arange(6)
    run = {"label": "net", "unit": "epoch", "x": x, "train": np.linspace(0.38, 0.33, 6),
           "test": np.linspace(0.37, 0.335, 6)}
    fig = plot(run)
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_ylabel() == "σ (eq. B.11)" and ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    shown = [(t.get_position()[1], t.get_text()) for t in ax.get_yticklabels() if lo <= t.get_position()[1] <= hi]
    assert len(shown) >= 3, shown
    for value, text in shown:  # each label is its plain value, as a reader reads it
        assert text and "10^" not in text and "times" not in text and float(text) == pytest.approx(value, rel=1e-3)
    assert not [t.get_text() for t in ax.get_yticklabels(minor=True) if t.get_text()]
    # a history over decades keeps the log axis's powers of ten
    wide = plot({**run, "train": np.geomspace(0.4, 1e-4, 6), "test": np.geomspace(0.4, 1e-3, 6)})
    wide.canvas.draw()
    assert any("10^" in t.get_text() for t in wide.axes[0].get_yticklabels())
