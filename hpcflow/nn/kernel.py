"""A network's empirical metric-NTK, frozen at its current parameters, as a kernel for kernel_flow (eq. 3.5).

NetworkNTKKernel(model, manifold) follows hpcflow.kernels' protocol with mixes_components = True:
`block(x1, x2)` is Θ in the layout (N1, 9, N2, 9). `operator(x, x_src)` applies Θ without forming it:
Σ_x' Θ(x, x') u(x') = J(x) [Σ_x' J(x')ᵀ u(x')], the parameter direction d = Σ_x' J(x')ᵀ u(x') from the
sources, then its image J(x) d at the targets. `method` chooses the form as for `empirical_ntk` ("auto":
layer-wise when the model has ntk_factors): layer-wise, with (h_l, δ_l) of MetricMLP.ntk_factors,
dW_l = Σ_x' (u(x') · δ_l(x')) ⊗ h_l(x'), db_l = Σ_x' u(x') · δ_l(x') and (J d)_I(x) = Σ_l δ_l(x)_I · (dW_l h_l(x)
+ db_l); "jacobian": one vector-Jacobian and one Jacobian-vector product (torch.func.vjp / jvp, which import
torch._dynamo, ~2-4 s). A flow with this kernel (eq. 3.5) moves the metric as the network linearised around these
parameters θ0 would move under gradient flow (the paper's g^L, eq. 2.10, whose NTK is this Θ at all times:
dg/dt = -Θ ∂L/∂g): the lazy (kernel) regime the paper contrasts with training. Only the increments are the
linearised network's: kernel_flow starts from g_FS, with this kernel as with every other, not from the network's
own metric at θ0 (g_FS + g_FS ⊙ NN_θ0 for the multiplicative model, g_FS + NN_θ0 for the additive; ≠ g_FS unless
output_scale = 0), so it follows the linearised network's equation from another start, not that network's
trajectory: in `hpcflow nn jobs/nn_smoke.toml` σ of the flow's test points at step 0 is 0.38169 (g_FS), the
network's at epoch 0 0.38229 (summary.json kernel_flow.flow_sigma_test_initial, nn_sigma_test_initial).
Operators built one after another on bitwise-equal sources share them and their last direction d (while an operator
holds them): a flow step applies train x train and test x train to one gradient, and the second product reuses d when
its u has the same bits and tile, so it forms d once a step with unchanged results.
The network's g_FS input at each point is recomputed from the points with `manifold.point_set`, on the host: CuPy
points and gradients (kernel_flow on the CuPy backend) are copied there explicitly (`to_host`), and each product is
returned as an array of its gradient's module.
κ: kernel_flow differentiates κ by default (kappa_gradient = "exact"), and `hpcflow.nn.experiment.ntk_kernel_flow`
(the nn job's [kernel_flow]) passes no other, so a small step lowers the loss with κ recomputed, σ itself for the
σ loss (Θ is PSD; tested to first order): in jobs/nn_width_sweep.toml σ of the flow's train and test points falls at
every step (RESULTS.md). With kappa_gradient = "fixed" a step lowers only the loss at the step's fixed κ, and there
σ rose slowly from g_FS, presumably because the update mostly changes the overall scale of g, which σ does not
reward.
"""

from __future__ import annotations

import copy
import weakref

import numpy as np

from hpcflow.backend import array_module, to_host
from hpcflow.errors import ConfigError
from hpcflow.kernels.base import Kernel, check_gradient
from hpcflow.nn._torch import require_torch
from hpcflow.nn.data import MetricData
from hpcflow.nn.ntk import empirical_ntk, ntk_method

torch = require_torch()


class NetworkNTKKernel(Kernel):
    """Θ_IJ(x, x') = Σ_θ ∂g_I(x)/∂θ ∂g_J(x')/∂θ of `model` at a fixed copy of its current parameters: the kernel
    evaluates its own deep copy of `model` made here, so training `model` afterwards leaves Θ as built."""

    name = "network_ntk"
    mixes_components = True
    _caches = {"_last_sources": lambda: None}  # a weak reference: not pickled, empty in a copy

    def __init__(self, model, manifold, *, method: str = "auto"):
        ntk_method(model, method)  # a method the model cannot take is refused here, before any work
        self.model = copy.deepcopy(model)  # the fixed copy: `model` may be trained on after the kernel is built
        self.manifold = manifold
        self.method = method
        self.theta0 = {k: v.detach().clone() for k, v in self.model.named_parameters()}
        self._last_sources = None  # weak reference to the last operator's _Sources

    def features(self, x) -> MetricData:
        ps = self.manifold.point_set(to_host(x))
        if len(ps) != len(x):
            raise ConfigError(f"{len(x) - len(ps)} points have an ambiguous chart; use points from X.sample")
        return MetricData.from_pointset(ps, dtype=self.model.dtype, device=next(self.model.parameters()).device)

    def _model_at_theta0(self):
        with torch.no_grad():
            for k, p in self.model.named_parameters():
                if not torch.equal(p, self.theta0[k]):
                    raise ConfigError("the kernel's own copy of the network (kernel.model) was changed after "
                                      "NetworkNTKKernel was built; build a new NetworkNTKKernel from the network")
        return self.model

    def tile_block(self, f1: MetricData, f2: MetricData):
        theta = empirical_ntk(self._model_at_theta0(), f1.x, f1.gfs, f2.x, f2.gfs, method=self.method)
        return theta.transpose(2, 0, 3, 1)  # (9, 9, N1, N2) -> (N1, 9, N2, 9)

    def _operator(self, x, x_src, *, tile: int, threads: int | None, cache_bytes: int):
        """Matrix-free Θ application (never forms Θ; `threads` is not needed). The layer-wise form keeps the tiles'
        ntk_factors that fit in `cache_bytes` for the next call (a flow applies Θ to the same points every step)."""
        return _NTKOperator(self, self.features(x), self._sources(x_src), tile=tile, cache_bytes=cache_bytes)

    def _sources(self, x_src) -> "_Sources":
        """The previous operator's sources when x_src has the same bits (their direction is then shared), else new."""
        x_src = to_host(x_src)
        last = self._last_sources and self._last_sources()
        if last is None or not _same_bits(last.points, x_src):
            last = _Sources(x_src.copy(), self.features(x_src))
            self._last_sources = weakref.ref(last)
        return last

    def params(self) -> dict:
        return {"model": dict(self.model.config), "method": self.method}


def _same_bits(a, b) -> bool:
    """Arrays (NumPy or torch) of one dtype and shape with identical bytes (NaN, -0.0 and 0.0 told apart)."""
    if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
        return False
    if isinstance(a, np.ndarray):
        return np.array_equal(np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


class _Sources:
    """An operator's source points, their features and the last direction d = Σ_x' J(x')ᵀ u(x') formed from them,
    with the u (a copy) and tile it came from; every operator built on these sources reuses d for bitwise-equal u."""

    def __init__(self, points: np.ndarray, f: MetricData):
        self.points, self.f, self.last = points, f, None

    def direction(self, u, tile: int, form):
        """d for u summed over tiles of `tile` sources: the kept one when u and tile match it, else form()'s."""
        if self.last is not None and self.last[0] == tile and _same_bits(self.last[1], u):
            return self.last[2]
        d = form()
        self.last = (tile, u.clone(), d)
        return d


class _NTKOperator:
    """u (N_src, 9) -> J(x) Σ_x' J(x')ᵀ u(x'), tiled over sources and targets (bounded memory)."""

    def __init__(self, kernel: NetworkNTKKernel, f: MetricData, src: _Sources, *, tile: int, cache_bytes: int = 0):
        self.kernel, self.f, self.src, self.f_src, self.tile = kernel, f, src, src.f, max(1, int(tile))
        self.layerwise = ntk_method(kernel.model, kernel.method) == "layerwise"
        self.cache, self.cache_left = {}, cache_bytes

    def __call__(self, grad_src):
        """(N, 9) float64 = Σ_x' Θ(x, x') grad_src(x'), grad_src (N_src, 9) real (`check_gradient`), an array of
        grad_src's module: the network runs on torch's device, so a CuPy gradient is copied to the host and back."""
        xp = array_module(grad_src)
        grad = check_gradient(to_host(grad_src), len(self.f_src), self.f_src.gfs.shape[-1])
        model = self.kernel._model_at_theta0()
        u = torch.as_tensor(grad, dtype=model.dtype, device=self.f.x.device)
        if self.layerwise:
            direction = self.src.direction(u, self.tile, lambda: self._layerwise_direction(model, u))
            out = self._layerwise(model, u, direction)
        else:
            direction = self.src.direction(u, self.tile, lambda: self._jacobian_direction(model, u))
            out = self._jacobian(model, direction)
        return xp.asarray(torch.cat(out).to(torch.float64).cpu().numpy() if out else np.zeros((0, u.shape[1])))

    def _tiles(self, f: MetricData):
        return ((s, f[s:s + self.tile]) for s in range(0, len(f), self.tile))

    def _factors(self, model, which: str, s: int, b: MetricData) -> list:
        """model.ntk_factors of the tile at row s of the targets or sources, kept while the cache budget lasts."""
        found = self.cache.get((which, s))
        if found is None:
            found = model.ntk_factors(b.x, b.gfs)
            size = sum(h.nbytes + d.nbytes for h, d in found)
            if size <= self.cache_left:
                self.cache[(which, s)], self.cache_left = found, self.cache_left - size
        return found

    @torch.no_grad()
    def _layerwise_direction(self, model, u):
        """Per layer (dW_l, db_l) from MetricMLP.ntk_factors, summed over source tiles (None without sources)."""
        direction = None
        for s, b in self._tiles(self.f_src):
            vh = [(torch.einsum("aI,aIk->ak", u[s:s + self.tile], d), h) for h, d in self._factors(model, "src", s, b)]
            part = [(v.T @ h, v.sum(0)) for v, h in vh]
            direction = part if direction is None else [(w + pw, c + pc) for (w, c), (pw, pc) in zip(direction, part)]
        return direction

    @torch.no_grad()
    def _layerwise(self, model, u, direction) -> list:
        """Σ_l δ_l(x) · (dW_l h_l(x) + db_l) for each target tile, from MetricMLP.ntk_factors."""
        return [sum(torch.einsum("aIk,ak->aI", d, torch.addmm(db, h, dw.T))
                    for (h, d), (dw, db) in zip(self._factors(model, "dst", s, b), direction))
                for s, b in self._tiles(self.f)] if direction is not None else [u.new_zeros(len(self.f), u.shape[1])]

    def _jacobian_direction(self, model, u) -> dict:
        """The direction as one vjp per source tile (torch.func, any model)."""
        from torch.func import functional_call, vjp

        params = self.kernel.theta0
        direction = {k: torch.zeros_like(v) for k, v in params.items()}
        for s, b in self._tiles(self.f_src):
            _, pull = vjp(lambda p: functional_call(model, p, (b.x, b.gfs)), params)  # noqa: B023
            (dp,) = pull(u[s:s + self.tile])
            for k in direction:
                direction[k] += dp[k]
        return direction

    def _jacobian(self, model, direction) -> list:
        """The direction's image as one jvp per target tile (torch.func, any model)."""
        from torch.func import functional_call, jvp

        params = self.kernel.theta0
        out = []
        for _, b in self._tiles(self.f):
            _, tangent = jvp(lambda p: functional_call(model, p, (b.x, b.gfs)), (params,), (direction,))  # noqa: B023
            out.append(tangent.detach())
        return out
