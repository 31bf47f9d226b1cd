"""The GPU's one-pass Gaussian tile (`gaussian.fused_poly_source`, a CUDA C body) computes what the array passes of
the polynomial path compute, bit for bit: its statements run here as Python float64 arithmetic (each operation
rounded once, as __dmul_rn / __dadd_rn and IEEE sqrt and division are on the GPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.kernels.gaussian import GaussianKernel, fused_poly_source


def run_body(body: str, c: float) -> float:
    """Execute the C body for one input c with Python floats (IEEE double, round to nearest per operation)."""
    env = {"c": c, "sqrt": math.sqrt, "fmin": min, "fmax": max, "__dmul_rn": lambda a, b: a * b,
           "__dadd_rn": lambda a, b: a + b}
    for line in body.splitlines():
        stmt = line.split("//")[0].strip().rstrip(";").removeprefix("double ")
        exec(stmt, {}, env)
    return env["out"]


@pytest.mark.parametrize("width, form", [(1 / 30, "exp"), (1.0, "exp"), (0.3, "gauss")])
def test_the_fused_body_is_the_array_passes_bit_for_bit(width, form):
    kern = GaussianKernel(width, form=form, method="poly", engine="numpy")
    pts = Hypersurface.fermat(3).sample(40, seed=5).points
    f = kern.features(pts)
    c = f @ f.T  # cos^2 d of every pair, the diagonal's 1 and roundoff above it included
    want = kern.tile_block(f, f).copy()
    body = fused_poly_source(tuple(kern.coef), kern.squarings)
    got = np.array([[run_body(body, float(v)) for v in row] for row in c])
    assert got.tobytes() == want.tobytes()
