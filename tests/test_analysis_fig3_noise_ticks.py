"""Fig. 3 left labels every decade of its symlog distance axis that is in view: the decade in the margin beyond the
farthest distance (0.1 beyond a scan's 0.093) was a tick without a label at the axis's right end."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from analysis_runs import run_dirs

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def test_every_decade_in_view_is_a_labelled_tick(runs):
    from hpcflow.analysis import products

    fig = products.fig3_noise_scan([runs["noise"]]).figures["fig3_noise.png"]
    fig.canvas.draw()
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    with h5py.File(f"{runs['noise']}/noise_scan.h5", "r") as f:  # the distances drawn
        d = f["table/mean_distance_to_nearest_train"][()]
    near, far = float(np.min(d[d > 0])), float(np.max(d))  # the linear part of the axis ends at the nearest
    assert hi > far  # the farthest distance is in view
    labelled = {float(t.get_position()[0]) for t in ax.get_xticklabels()
                if t.get_text() and lo <= t.get_position()[0] <= hi}
    decades = [10.0 ** k for k in range(-6, 3) if near <= 10.0 ** k <= hi]
    assert decades and all(any(math.isclose(d, t) for t in labelled) for d in decades), (decades, labelled)
