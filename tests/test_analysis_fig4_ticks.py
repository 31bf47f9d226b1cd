"""Fig. 4's epoch axes (the Wasserstein distance and the relative Frobenius change versus epoch) are labelled at
whole epochs only: a run of a few epochs had ticks at 0.5, 1.5, ... (matplotlib's default locator)."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")


def _data(epochs: int) -> dict:
    """nn.h5's NTK datasets of a run of `epochs` epochs: 810 pooled eigenvalues per epoch, growing changes."""
    rng = np.random.default_rng(epochs)
    return {"ntk/spectrum": rng.lognormal(size=(epochs + 1, 810)), "ntk/wasserstein": np.linspace(0, 1, epochs + 1),
            "ntk/rel_frobenius": np.linspace(0, 0.1, epochs + 1), "note": ""}


@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 50])
def test_the_epoch_axes_have_integer_ticks(epochs):
    from matplotlib import pyplot as plt

    from hpcflow.analysis import fig4

    fig = fig4.plot(_data(epochs))
    try:
        fig.canvas.draw()
        for ax in fig.axes[1:]:
            assert ax.get_xlabel() == "epoch"
            lo, hi = ax.get_xlim()
            ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
            assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks), ticks
            labels = [lab.get_text() for lab in ax.get_xticklabels() if lo <= lab.get_position()[0] <= hi]
            assert labels == [str(int(t)) for t in ticks], labels  # labelled as whole numbers too
    finally:
        plt.close(fig)
