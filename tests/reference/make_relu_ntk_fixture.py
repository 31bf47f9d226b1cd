"""Regenerate tests/data/relu_ntk_reference.json: the infinite-width NTK of the paper's ReLU network, computed by
neural-tangents (the package the paper used, sec. 3.2), on 20 fixed network inputs built by hpcflow; and
tests/data/relu_ntk_deep_reference.json: the same for deeper networks, (Dense, Relu) x depth, then Dense.

Run by hand, not in CI (neural-tangents is not a dependency of hpcflow). From the repository root:

    python3 -m venv /tmp/ntenv
    /tmp/ntenv/bin/pip install neural-tangents==0.6.5 jax==0.4.30 jaxlib==0.4.30 tf2jax==0.3.6 numpy scipy h5py
    PYTHONPATH=$PWD /tmp/ntenv/bin/python tests/reference/make_relu_ntk_fixture.py

(newer jax releases removed jax.core.Jaxpr, which neural-tangents 0.6.5 imports, and the newest tf2jax, which it
also imports, needs a newer jax). With these versions a rerun on the machine that made the committed file
reproduced it bit for bit; another CPU may move last bits, far inside the test's rounding bounds.

The network is stax.serial(Dense(W_std, b_std), Relu(), Dense(W_std, b_std)) in the NTK parameterisation, in
float64 (jax_enable_x64). The inputs are hpcflow's real features (Re z, Im z) of chart-normalised points z on
the Fermat quintic: 16 sampled points, 3 near duplicates of sampled points (relative perturbations 1e-9, 1e-7,
1e-5, scale coordinate reset to 1) and one exact duplicate, so that the fixture covers the arccos branch point.
The fixture holds the points, the inputs, the NTK and NNGP matrices for each (W_std, b_std) setting, the NNGP
diagonal as neural-tangents propagates it without an angle (cov1), and the versions used;
tests/test_relu_ntk_reference.py compares hpcflow with it.
"""

import json
import platform
import sys
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

from hpcflow.geometry import Hypersurface  # noqa: E402
from hpcflow.kernels import real_features  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "data" / "relu_ntk_reference.json"
SEED = 2310
#: (W_std, b_std): the paper's Table 1 setting, a small-bias one (wide angles) and a bias-free one
SETTINGS = [(5.716, 80.52), (1.5, 0.3), (1.0, 0.0)]
#: (W_std, b_std, depth) of the deep reference: the paper's setting at depth 3, and small-bias kernels from 2 to 64
#: layers (the deep ReLU NTK's angles shrink layer by layer towards the arccos branch point)
DEEP_SETTINGS = [(5.716, 80.52, 3), (1.5, 0.3, 2), (1.414, 0.01, 8), (1.414, 0.0, 32), (1.2, 0.05, 64)]
DEEP_OUT = OUT.parent / "relu_ntk_deep_reference.json"
WIDTH = 512  # hidden width: irrelevant to the infinite-width kernel, required by the layer constructor


def make_points():
    """20 chart-normalised points (N, 5) complex: sampled, near duplicates, and an exact duplicate."""
    z = Hypersurface.fermat(3).sample(16, seed=SEED).points[:16]
    rng = np.random.default_rng(SEED)
    near = []
    for k, eps in zip((0, 1, 2), (1e-9, 1e-7, 1e-5)):
        i = int(np.argmax(np.abs(z[k]) == 1.0))  # the chart's scale coordinate, exactly 1
        p = z[k] * (1.0 + eps * (rng.normal(size=5) + 1j * rng.normal(size=5)))
        p = p / p[i]
        p[i] = 1.0
        near.append(p)
    return np.concatenate([z, np.array(near), z[3:4]])


def ntk_nngp(x, w_std, b_std, depth=1):
    """(NTK, NNGP, NNGP diagonal) of the paper's network (depth 1) or its deeper form on inputs x (N, d) by
    neural-tangents' analytic kernel_fn; the diagonal is its cov1, which it propagates without an angle (no arccos
    branch point)."""
    layers = [stax.Dense(WIDTH, W_std=w_std, b_std=b_std, parameterization="ntk"), stax.Relu()]
    for _ in range(depth - 1):
        layers += [stax.Dense(WIDTH, W_std=w_std, b_std=b_std, parameterization="ntk"), stax.Relu()]
    _, _, kernel_fn = stax.serial(*layers, stax.Dense(1, W_std=w_std, b_std=b_std, parameterization="ntk"))
    xj = jnp.asarray(x, dtype=jnp.float64)
    k = kernel_fn(xj, None, ("ntk", "nngp", "cov1"))
    ntk, nngp, diag = np.asarray(k.ntk), np.asarray(k.nngp), np.asarray(k.cov1)
    assert ntk.dtype == nngp.dtype == diag.dtype == np.float64 and diag.shape == (len(x),)
    return ntk, nngp, diag


def main():
    z = make_points()
    x = real_features(z)
    data = {
        "description": "infinite-width NTK and NNGP of stax.serial(Dense(W_std, b_std), Relu(), Dense(W_std, b_std)),"
                       " NTK parameterisation, by neural-tangents kernel_fn(x, None, ...) in float64; inputs are"
                       " hpcflow real_features (Re z, Im z) of the chart-normalised points; regenerate with"
                       " tests/reference/make_relu_ntk_fixture.py",
        "points_real": z.real.tolist(),
        "points_imag": z.imag.tolist(),
        "inputs": x.tolist(),
        "settings": [],
        "versions": {"neural_tangents": nt.__version__, "jax": jax.__version__,
                     "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else "",
                     "numpy": np.__version__, "python": platform.python_version()},
    }
    for w_std, b_std in SETTINGS:
        ntk, nngp, diag = ntk_nngp(x, w_std, b_std)
        data["settings"].append({"w_std": w_std, "b_std": b_std, "ntk": ntk.tolist(), "nngp": nngp.tolist(),
                                 "nngp_diagonal": diag.tolist()})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT} ({len(x)} inputs, d = {x.shape[1]}, settings {SETTINGS})", file=sys.stderr)
    deep = dict(data, settings=[], description=data["description"].replace(
        "stax.serial(Dense(W_std, b_std), Relu(), Dense(W_std, b_std))",
        "stax.serial((Dense(W_std, b_std), Relu()) x depth, Dense(W_std, b_std))"))
    for w_std, b_std, depth in DEEP_SETTINGS:
        ntk, nngp, diag = ntk_nngp(x, w_std, b_std, depth)
        deep["settings"].append({"w_std": w_std, "b_std": b_std, "depth": depth, "ntk": ntk.tolist(),
                                 "nngp": nngp.tolist(), "nngp_diagonal": diag.tolist()})
    DEEP_OUT.write_text(json.dumps(deep, indent=1) + "\n")
    print(f"wrote {DEEP_OUT} (settings {DEEP_SETTINGS})", file=sys.stderr)


if __name__ == "__main__":
    main()
