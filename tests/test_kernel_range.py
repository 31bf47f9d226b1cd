"""Kernel parameters whose values leave float64's range are refused before any work (the ReLU NTK's layer recursion
overflows or underflows; the cosine NTK's amplitude (s_w / sqrt(2 pi d))^d does), and a flow whose kernel sums are not
finite anyway says so instead of blaming positive definiteness. The bounds are checked against the closed form of
the diagonal recursion in exact decimal arithmetic."""

from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import pytest

from hpcflow.cli import main
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import CosineNTKKernel, ReluNTKKernel, cosine_ntk, real_features, relu_ntk
from hpcflow.kernels.base import Kernel

ROOT = Path(__file__).resolve().parents[1]
RELU_JOB = str(ROOT / "jobs" / "table1_relu_tuned.toml")
SMALL = ["--set", "geometry.n_train=200", "--set", "geometry.n_test=100", "--set", "flow.steps=3"]
#: the largest kernel value whose sums over up to 1/eps points stay finite, computed here from the format's numbers
LARGEST = Decimal(float(np.finfo(np.float64).max)) * Decimal(2) ** -52
TINY = Decimal(float(np.finfo(np.float64).tiny))
D = 10  # real features of a point of P^4 (the quintic): 2 (4 + 1)


def diagonal_theta(w, b, depth, s0):
    """Theta_depth(x, x) of the (Relu, Dense) recursion in closed form: s_k = a^k s0 + b^2 (a^k - 1)/(a - 1),
    Theta_L = sum_k a^(L-k) s_k, a = w^2/2, exact to 60 digits."""
    with localcontext() as ctx:
        ctx.prec = 60
        a, b2, s0 = Decimal(w) ** 2 / 2, Decimal(b) ** 2, Decimal(s0)
        s = [a ** k * s0 + (b2 * (a ** k - 1) / (a - 1) if a != 1 else b2 * k) for k in range(depth + 1)]
        return sum(a ** (depth - k) * s[k] for k in range(depth + 1))


def all_unit_moduli(n_points=3, coords=5, seed=0):
    """Points whose every homogeneous coordinate has modulus 1: |x|^2 = d/2, the largest a chart-normalised point
    has."""
    phases = np.random.default_rng(seed).uniform(0, 2 * np.pi, size=(n_points, coords))
    return np.exp(1j * phases)


def test_relu_depth_bound_is_where_the_largest_diagonal_passes_the_limit():
    w, b = 5.716, 80.52  # Table 1's
    s0 = Decimal(w) ** 2 / 2 + Decimal(b) ** 2  # Sigma0(x, x) at |x|^2 = d/2
    first_out = next(L for L in range(1, 1000) if diagonal_theta(w, b, L, s0) > LARGEST)
    with pytest.raises(ValueError, match=f"depth to at most {first_out - 1}"):
        ReluNTKKernel(w, b, first_out)
    with pytest.raises(ValueError, match="w_std = 5.716.*depth = 260"):
        relu_ntk(real_features(all_unit_moduli()), None, w_std=w, b_std=b, depth=260)
    kernel = ReluNTKKernel(w, b, first_out - 1)  # the deepest accepted: evaluated without an overflow
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        k = kernel.block(all_unit_moduli(), all_unit_moduli(seed=1))
        z = all_unit_moduli()
        diag = kernel.block(z, z)  # one set: its exact diagonal
    assert np.isfinite(k).all()
    want = float(diagonal_theta(w, b, first_out - 1, s0))
    np.testing.assert_allclose(np.diag(diag), want, rtol=1e-10)
    assert want <= float(LARGEST)


def test_relu_underflow_is_refused_by_the_kernel_and_the_function():
    points = Hypersurface.fermat(3).sample(20, seed=3, chart=(0, 1)).points
    with pytest.raises(ValueError, match="w_std = 1e-200, b_std = 1e-200.*raise w_std or b_std"):
        ReluNTKKernel(1e-200, 1e-200).features(points)
    with pytest.raises(ValueError, match="smallest layer variance"):
        relu_ntk(real_features(points), None, w_std=1e-200, b_std=1e-200)
    # no bias: Sigma(x, x) = (w^2/2)^k w^2 |x|^2 / d shrinks layer by layer; smallest at |x|^2 = 1
    w = 0.5
    first_out = next(k for k in range(2000) if (Decimal(w) ** 2 / 2) ** k * Decimal(w) ** 2 / D < TINY)
    with pytest.raises(ValueError, match=f"depth to at most {first_out - 1}"):
        ReluNTKKernel(w, 0.0, first_out + 5).features(points)
    one = np.zeros((1, 5), dtype=complex)
    one[0, 2] = 1.0  # |x|^2 = 1
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        k = ReluNTKKernel(w, 0.0, first_out - 1).block(np.concatenate([one, points]), np.concatenate([one, points]))
    assert np.isfinite(k).all() and (np.diag(k) > 0).all()


def test_cosine_amplitude_out_of_range_is_refused():
    points = Hypersurface.fermat(3).sample(20, seed=3, chart=(0, 1))
    with pytest.raises(ValueError, match="sigma_w = 1e-40.*below"):
        CosineNTKKernel(1e-40).features(points)
    with pytest.raises(ValueError, match="sigma_w = 1e-40"):
        cosine_ntk(real_features(points), None, sigma_w=1e-40)
    with pytest.raises(ValueError, match="amplitude = 1e-200"):
        CosineNTKKernel(1.0, amplitude=1e-200)
    with pytest.raises(ValueError, match="amplitude = 1e\\+200.*above"):
        CosineNTKKernel(1.0, amplitude=1e200)
    k = CosineNTKKernel(1e-20).block(points, points)  # A^2/2 = (s_w / sqrt(2 pi d))^d, 1e-211: in range
    with localcontext() as ctx:
        ctx.prec = 40
        want = float((Decimal(1e-20) / (2 * Decimal(np.pi) * D).sqrt()) ** D)
    np.testing.assert_allclose(np.diag(k), want, rtol=1e-12)


@pytest.mark.parametrize("sets, words", [
    (["kernel.depth=260"], ("w_std = 5.716", "depth = 260", "at most 236")),
    (["kernel.w_std=1e-200", "kernel.b_std=1e-200"], ("w_std = 1e-200", "b_std = 1e-200", "raise w_std or b_std")),
    (["kernel.name=cosine_ntk", "kernel.w_std=none", "kernel.b_std=none", "kernel.sigma_w=1e-40"],
     ("sigma_w = 1e-40", "raise sigma_w")),
])
def test_hpcflow_run_refuses_a_kernel_out_of_range_before_any_work(tmp_path, capsys, sets, words):
    out = tmp_path / "out"
    assert main(["run", RELU_JOB, "--out", str(out), *SMALL, *(x for s in sets for x in ("--set", s))]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert "[kernel]" in err and "RuntimeWarning" not in captured.err and not out.exists(), err


class Infinite(Kernel):
    """A kernel whose entries are not finite (inf)."""

    name = "huge"
    symmetric = True

    def tile_block(self, f1, f2):
        return np.full((len(f1), len(f2)), np.inf)


def test_a_flow_whose_kernel_sums_overflow_says_so():
    from hpcflow.flow import kernel_flow

    train = Hypersurface.fermat(3).sample(30, seed=5, chart=(0, 1))
    with np.errstate(over="ignore", invalid="ignore"):
        res = kernel_flow(Infinite(), train, dt=1.0, steps=2, max_halvings=2)
    assert res.stop_kind == "kernel_not_finite" and res.steps_taken == 0, res.stopped
    assert res.stopped.startswith("step 1: the kernel's sums") and "not finite" in res.stopped
    assert "positive definite" not in res.stopped


def test_a_resume_of_a_flow_stopped_by_its_kernel_suggests_other_kernel_parameters_not_a_smaller_dt():
    """The checkpoint of a flow its kernel's overflow stopped ('diverged', its `stopped` the flow's words): a resume
    has nothing to do, and the fix is other [kernel] parameters; a dt too large keeps its smaller-dt advice."""
    from types import SimpleNamespace

    from hpcflow.experiments.flow_job import resume_done
    from hpcflow.flow import kernel_flow

    train = Hypersurface.fermat(3).sample(30, seed=5, chart=(0, 1))
    with np.errstate(over="ignore", invalid="ignore"):
        res = kernel_flow(Infinite(), train, dt=1.0, steps=2, max_halvings=2)
    cfg = {"flow": {"dt": 1.0, "steps": 2, "early_stop": 0}}
    done = resume_done(SimpleNamespace(status="diverged", step=0, stopped=res.stopped), cfg)
    assert "[kernel] parameters" in done.fix and "dt" not in done.fix, done
    other = resume_done(SimpleNamespace(status="diverged", step=3, stopped="step 4: no dt >= 0.1 keeps ..."), cfg)
    assert "smaller dt" in other.fix, other
