"""A σ at float64 round-off (a flow run far past its convergence: σ_train 1.5e-16, gain 2.4e15) is marked so in the
runs table and Table 1, beside its gain: the bound is what rounding alone gives for η equal to κ at every point."""

from __future__ import annotations

import numpy as np
import pytest

EPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("n", [10, 1500, 100_000])
def test_sigma_of_a_constant_eta_computed_in_float64_lies_below_the_bound(n):
    from hpcflow.analysis.roundoff import at_roundoff, roundoff_sigma
    from hpcflow.geometry.measures import sigma_measure

    rng = np.random.default_rng(n)
    worst = 0.0
    for _ in range(20):
        a = rng.uniform(0.1, 10.0, n)
        eta = (a * 0.37) / a  # 0.37 at every point, to within the rounding of a product and a quotient
        weights = rng.uniform(0.0, 5.0, n)
        worst = max(worst, float(sigma_measure(eta, weights)))
    assert worst <= roundoff_sigma(n) and at_roundoff(worst, n)
    assert roundoff_sigma(n) < 1e-9  # far below any sigma a flow reports (1e-3 and more)
    assert roundoff_sigma(n) >= 4 * EPS  # a few eps at least
    # a sigma a flow really has is not marked, nor what is not a number
    assert not at_roundoff(1e-6, n) and not at_roundoff(None, n) and not at_roundoff(1e-17, None)


def test_the_runs_table_and_table1_mark_a_sigma_at_round_off_beside_its_gain():
    from hpcflow.analysis import table1
    from hpcflow.report.detect import RunInfo
    from hpcflow.report.runs_table import row

    s = {"status": "finished", "n_train": 1500, "n_test": 1500, "sigma_train_initial": 0.3667,
         "sigma_train_final": 1.5e-16, "sigma_test_initial": 0.36, "sigma_test_final": 0.12,
         "gain_train": 0.3667 / 1.5e-16, "gain_test": 3.0}
    cells = row(RunInfo("/x/qs", "flow", True, "", s))
    assert cells[6] == "0.3667 -> 1.5e-16 (at float64 round-off)"
    assert cells[7] == "0.36 -> 0.12"  # a sigma well above round-off: unmarked
    assert cells[8] == f"{0.3667 / 1.5e-16:.4g} (σ 1.5e-16 at float64 round-off)"
    assert cells[9] == "3"
    g = table1._gains("train", np.array([0.3667, 1e-3, 1.5e-16]), 1500)
    assert g["gain_train"] == pytest.approx(0.3667 / 1.5e-16)
    assert table1._gain(g, "train", ".4g") == f"{0.3667 / 1.5e-16:.4g} (σ 1.5e-16 at float64 round-off)"
    assert table1._gain(table1._gains("train", np.array([0.3667, 0.1]), 1500), "train", ".4g") == "3.667"
