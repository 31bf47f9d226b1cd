"""A network's empirical metric-NTK, frozen at its current parameters, as a kernel for kernel_flow (eq. 3.5).

NetworkNTKKernel(model, manifold) follows hpcflow.kernels' protocol with mixes_components = True:
`block(x1, x2)` is Θ in the layout (N1, 9, N2, 9). `operator(x, x_src)` applies Θ without forming it:
Σ_x' Θ(x, x') u(x') = J(x) [Σ_x' J(x')ᵀ u(x')], one vector-Jacobian product over the sources and one
Jacobian-vector product over the targets (torch.func.vjp / jvp). A flow with this kernel is gradient flow of
the network linearised around these parameters: the lazy (kernel) regime the paper contrasts with training.
The network's g_FS input at each point is recomputed from the points with `manifold.point_set`.
Observed: with κ fixed within each step (as kernel_flow does), a small step lowers the fixed-κ loss (Θ is
PSD; tested to first order), yet σ with κ recomputed rose slowly in our runs from g_FS, presumably because
the update mostly changes the overall scale of g, which σ does not reward.
"""

from __future__ import annotations

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.kernels.base import DEFAULT_TILE, Kernel
from hpcflow.nn._torch import require_torch
from hpcflow.nn.data import MetricData
from hpcflow.nn.ntk import empirical_ntk

torch = require_torch()


class NetworkNTKKernel(Kernel):
    """Θ_IJ(x, x') = Σ_θ ∂g_I(x)/∂θ ∂g_J(x')/∂θ of `model` at a fixed copy of its current parameters."""

    name = "network_ntk"
    mixes_components = True

    def __init__(self, model, manifold, *, method: str = "auto"):
        self.model = model
        self.manifold = manifold
        self.method = method
        self.theta0 = {k: v.detach().clone() for k, v in model.named_parameters()}

    def features(self, x) -> MetricData:
        ps = self.manifold.point_set(np.asarray(x))
        if len(ps) != len(x):
            raise ConfigError(f"{len(x) - len(ps)} points have an ambiguous chart; use points from X.sample")
        return MetricData.from_pointset(ps, dtype=self.model.dtype, device=next(self.model.parameters()).device)

    def _model_at_theta0(self):
        with torch.no_grad():
            for k, p in self.model.named_parameters():
                if not torch.equal(p, self.theta0[k]):
                    raise ConfigError("the network changed after NetworkNTKKernel was built; build the kernel "
                                      "from a frozen copy of the network (copy.deepcopy) instead")
        return self.model

    def tile_block(self, f1: MetricData, f2: MetricData):
        theta = empirical_ntk(self._model_at_theta0(), f1.x, f1.gfs, f2.x, f2.gfs, method=self.method)
        return theta.transpose(2, 0, 3, 1)  # (9, 9, N1, N2) -> (N1, 9, N2, 9)

    def operator(self, x, x_src, *, tile: int = DEFAULT_TILE, threads=None, cache_bytes: int = 0):
        """Matrix-free Θ application (never forms Θ, so `cache_bytes` and `threads` are not needed)."""
        return _NTKOperator(self, self.features(x), self.features(x_src), tile=tile)

    def params(self) -> dict:
        return {"model": dict(self.model.config), "method": self.method}


class _NTKOperator:
    """u (N_src, 9) -> J(x) Σ_x' J(x')ᵀ u(x'), tiled over sources and targets (bounded memory)."""

    def __init__(self, kernel: NetworkNTKKernel, f: MetricData, f_src: MetricData, *, tile: int):
        self.kernel, self.f, self.f_src, self.tile = kernel, f, f_src, max(1, int(tile))

    def __call__(self, grad):
        from torch.func import functional_call, jvp, vjp

        model = self.kernel._model_at_theta0()
        params = self.kernel.theta0
        u = torch.as_tensor(np.asarray(grad), dtype=model.dtype, device=self.f.x.device)
        direction = {k: torch.zeros_like(v) for k, v in params.items()}
        for s in range(0, len(self.f_src), self.tile):
            b = self.f_src[s:s + self.tile]
            _, pull = vjp(lambda p: functional_call(model, p, (b.x, b.gfs)), params)  # noqa: B023
            (dp,) = pull(u[s:s + self.tile])
            for k in direction:
                direction[k] += dp[k]
        out = []
        for s in range(0, len(self.f), self.tile):
            b = self.f[s:s + self.tile]
            _, tangent = jvp(lambda p: functional_call(model, p, (b.x, b.gfs)), (params,), (direction,))  # noqa: B023
            out.append(tangent.detach())
        return torch.cat(out).to(torch.float64).cpu().numpy()
