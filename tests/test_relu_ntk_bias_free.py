"""A bias-free ReLU network (b_std = 0) has a well-defined NTK (Sigma0(x, x) = W^2 |x|^2/d >= W^2/d > 0): the job
file takes it, and the flow it runs moves the metrics with the arc-cosine kernel without bias, written out here."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import pack
from hpcflow.metric import loss_and_grad

ROOT = Path(__file__).resolve().parents[1]
RELU_JOB = str(ROOT / "jobs" / "table1_relu.toml")
W_STD, DT = 1.3, 1e-3


def features(z):
    """(Re, Im) of z divided by its coordinate of largest modulus (that coordinate becomes exactly 1)."""
    z = np.asarray(z, dtype=np.complex128)
    z = z / z[np.arange(len(z)), np.argmax(np.abs(z), axis=1)][:, None]
    return np.concatenate([z.real, z.imag], axis=1)


def bias_free_relu_ntk(x1, x2, w, depth):
    """NTK of (Dense(w, 0), Relu)^depth, Dense(w, 0) at infinite width, NTK parameterisation, no bias. For
    pre-activations (u, v) ~ N(0, [[s11, s12], [s12, s22]]), cos t = s12 / sqrt(s11 s22):
    E[relu(u) relu(v)] = sqrt(s11 s22) (sin t + (pi - t) cos t) / (2 pi) and E[1(u > 0) 1(v > 0)] = (pi - t) / (2 pi)
    (the arc-cosine kernels of degree 1 and 0); each Dense layer multiplies the former by w^2 and adds
    w^2 E[1 1] Theta to the NTK. A point paired with itself has t = 0 exactly (arccos of a rounded 1 would be ~1e-8
    off)."""
    d = x1.shape[1]
    same = np.all(x1[:, None, :] == x2[None, :, :], axis=2)
    s12 = w * w * (x1 @ x2.T) / d
    s11 = w * w * np.sum(x1 * x1, axis=1)[:, None] / d
    s22 = w * w * np.sum(x2 * x2, axis=1)[None, :] / d
    theta = s12.copy()
    for _ in range(depth):
        t = np.where(same, 0.0, np.arccos(np.clip(s12 / np.sqrt(s11 * s22), -1.0, 1.0)))
        relu = np.sqrt(s11 * s22) * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2 * np.pi)
        step = (np.pi - t) / (2 * np.pi)
        s12, theta = w * w * relu, w * w * relu + w * w * step * theta
        s11, s22 = w * w * s11 / 2, w * w * s22 / 2  # E[relu(u)^2] = s11 / 2
    return theta


@pytest.mark.parametrize("depth", [1, 2])
def test_a_job_with_b_std_zero_flows_with_the_bias_free_relu_ntk(tmp_path, depth):
    out = tmp_path / "out"
    sets = ["geometry.n_train=24", "geometry.n_test=8", "flow.steps=1", f"flow.dt={DT}",
            f"kernel.w_std={W_STD}", "kernel.b_std=0", f"kernel.depth={depth}"]
    assert main(["run", RELU_JOB, "--out", str(out), *(x for s in sets for x in ("--set", s))]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps_taken"] == 1 and summary["rejected_steps"] == 0
    assert summary["kernel_params"]["b_std"] == 0.0
    X = Hypersurface.fermat(3)
    with h5py.File(out / "checkpoint.h5", "r") as f:
        rows = {s: {k: f[f"{s}/{k}"][()] for k in ("points", "weights", "omega2", "g")} for s in ("train", "test")}
    tr = rows["train"]
    g_fs = {s: X.point_set(rows[s]["points"], chart=np.tile((0, 1), (len(rows[s]["points"]), 1))).g_fs for s in rows}
    v0 = {s: pack(g_fs[s]) for s in rows}
    eta = np.linalg.det(g_fs["train"]).real / tr["omega2"]
    kappa = np.sum(tr["weights"] * eta) / np.sum(tr["weights"])
    _, grad = loss_and_grad(v0["train"], tr["omega2"], tr["weights"], kappa)
    ftr = features(tr["points"])
    for s in rows:  # Theta_IJ = delta_IJ K: each packed component moves by -dt K @ (its gradient column)
        K = bias_free_relu_ntk(features(rows[s]["points"]), ftr, W_STD, depth)
        moved = pack(rows[s]["g"]) - v0[s]
        want = -DT * K @ grad
        np.testing.assert_allclose(moved, want, rtol=1e-8, atol=1e-10 * np.abs(want).max())
