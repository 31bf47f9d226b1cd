"""MetricMLP: an MLP on (Re z, Im z) whose 9 real outputs correct g_FS (paper sec. 3.3, cymetric's models).

kind "multiplicative": g = g_FS + g_FS ⊙ NN(x) (element-wise product of Hermitian matrices),
kind "additive":       g = g_FS + NN(x),
with NN(x) the Hermitian matrix whose packed components (hpcflow.geometry.hermitian.pack order) are the
network's outputs. forward(x, gfs) takes features x (N, 2(n+1)) and packed g_FS (N, m^2) and returns the
packed metric g (N, m^2). `ntk_factors` exposes the per-layer quantities of the exact layer-wise NTK.

features "reim" (the paper's) feeds x = (Re z, Im z) to the first layer; "reim_abs2" appends |z_k|^2 =
(Re z_k)^2 + (Im z_k)^2, a fixed parameter-free map of the same x. On the Fermat quintic η_FS depends on the
|z_k|^2 only, which ReLU layers must otherwise build piecewise from (Re z_k, Im z_k) (see RESULTS.md).
init "torch" keeps PyTorch's Linear initialisation (variance 1/(3 fan_in)); "he" draws the hidden layers'
weights from N(0, 2/fan_in) with zero biases (He et al.), which trained the ReLU baseline faster in our runs.
"""

from __future__ import annotations

import math

from hpcflow.arguments import api_integer, api_number, int_text
from hpcflow.errors import ConfigError
from hpcflow.jobs.schema import SEED_MAX
from hpcflow.nn._torch import dtype_name, require_torch, torch_dtype
from hpcflow.nn.features import hadamard_packed

torch = require_torch()

KINDS = ("multiplicative", "additive")
ACTIVATIONS = ("relu", "gelu")
FEATURES = ("reim", "reim_abs2")
INITS = ("torch", "he")


def embed(name: str, x):
    """First-layer inputs from x = (Re z, Im z): x itself ("reim") or x with |z_k|^2 appended ("reim_abs2")."""
    if name == "reim":
        return x
    n = x.shape[-1] // 2
    return torch.cat([x, x[..., :n] ** 2 + x[..., n:] ** 2], dim=-1)


def _act(name: str, z):
    return torch.relu(z) if name == "relu" else torch.nn.functional.gelu(z)


def _act_deriv(name: str, z):
    """Derivative of the activation: ReLU' = 1[z > 0]; exact GELU' = Φ(z) + z φ(z)."""
    if name == "relu":
        return (z > 0).to(z.dtype)
    cdf = 0.5 * (1.0 + torch.erf(z / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    return cdf + z * pdf


def _last(t):
    return t.shape[-1] if getattr(t, "ndim", 0) else "?"


def check_sizes(n_in, depth, width, n_out, output_scale, seed):
    """MetricMLP's sizes as ints, its output_scale as a float and its seed as None or an int; TypeError (not a number,
    a bool) or ValueError (fractional, < 1, not finite; n_out not m² for a packed m x m metric) naming the argument,
    the value and what to pass, before any layer is built."""
    n_in = api_integer("MetricMLP: n_in", n_in, "an integer >= 1: the input features, 2(n+1) = (Re z, Im z) of "
                       "points in P^n (10 for the quintic)", lo=1)
    depth = api_integer("MetricMLP: depth", depth, "an integer >= 1 (hidden layers)", lo=1)
    width = api_integer("MetricMLP: width", width, "an integer >= 1 (units per hidden layer)", lo=1)
    n_out = api_integer("MetricMLP: n_out", n_out, "a square m² >= 1: the packed components of an m x m metric (9 "
                        "for 3 x 3)", lo=1)
    if math.isqrt(n_out) ** 2 != n_out:
        raise ValueError(f"MetricMLP: n_out={n_out} is invalid; pass a square m² >= 1: the packed components of an "
                         "m x m metric (9 for 3 x 3)")
    output_scale = api_number("MetricMLP: output_scale", output_scale, "a finite number (the last layer's initial "
                              "weights and biases times this; 1 = PyTorch's initialisation)")
    seed = None if seed is None else api_integer("MetricMLP: seed", seed, f"None or an integer in [0, "
                                                 f"{int_text(SEED_MAX)}]", lo=0, hi=SEED_MAX)  # (a job file's seeds)
    return n_in, depth, width, n_out, output_scale, seed


class MetricMLP(torch.nn.Module):
    """g(x) = g_FS ∘ NN(x) for an MLP NN with `depth` hidden layers of `width` units (sec. 3.3)."""

    def __init__(self, n_in: int, *, depth: int = 3, width: int = 64, activation: str = "relu",
                 kind: str = "multiplicative", n_out: int = 9, dtype: str = "float64", seed: int | None = None,
                 output_scale: float = 1.0, features: str = "reim", init: str = "torch"):
        super().__init__()
        n_in, depth, width, n_out, output_scale, seed = check_sizes(n_in, depth, width, n_out, output_scale, seed)
        dtype = dtype_name(dtype)  # 'float64' or 'float32', as MetricData.from_pointset takes it (torch dtypes too)
        if kind not in KINDS:
            raise ConfigError(f"model kind = {kind!r} is not one of {KINDS}; use 'multiplicative' or 'additive'")
        if activation not in ACTIVATIONS:
            raise ConfigError(f"activation = {activation!r} is not one of {ACTIVATIONS}; use 'relu' or 'gelu'")
        if features not in FEATURES:
            raise ConfigError(f"features = {features!r} is not one of {FEATURES}; use 'reim' or 'reim_abs2'")
        if features != "reim" and n_in % 2:
            raise ConfigError(f"features = {features!r} needs (Re z, Im z) inputs, an even count; got {n_in}")
        if init not in INITS:
            raise ConfigError(f"init = {init!r} is not one of {INITS}; use 'torch' or 'he'")
        self.config = dict(n_in=n_in, depth=depth, width=width, activation=activation, kind=kind, n_out=n_out,
                           dtype=dtype, output_scale=output_scale, features=features, init=init)
        sizes = [n_in + (n_in // 2 if features == "reim_abs2" else 0)] + [width] * depth + [n_out]
        gen_state = None
        if seed is not None:
            gen_state = torch.random.get_rng_state()
            torch.manual_seed(seed)
        try:
            self.layers = torch.nn.ModuleList(
                torch.nn.Linear(a, b, dtype=torch.float64) for a, b in zip(sizes[:-1], sizes[1:])
            )  # drawn in float64 whatever the dtype: a float32 network is the float64 one of its seed, rounded
            if init == "he":  # hidden layers: W ~ N(0, 2/fan_in), b = 0, so ReLU keeps the activations' scale
                for layer in self.layers[:-1]:
                    torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                    torch.nn.init.zeros_(layer.bias)
        finally:
            if gen_state is not None:
                torch.random.set_rng_state(gen_state)
        with torch.no_grad():  # output_scale < 1 starts the metric closer to g_FS (1 = PyTorch's default init)
            self.layers[-1].weight.mul_(output_scale)
            self.layers[-1].bias.mul_(output_scale)
        self.layers.to(torch_dtype(dtype))
        self.activation = activation
        self.kind = kind
        self.features = features

    @property
    def dtype(self):
        return self.layers[0].weight.dtype

    def check_inputs(self, x, gfs=None) -> None:
        """ValueError (one line: expected and received, and the fix) unless x is (N, n_in) and gfs (N, n_out), with
        the same N where both are given, both of the weights' dtype: what a mismatch would otherwise end in is a bare
        torch error deep in a layer."""
        n_in, n_out, dtype = self.config["n_in"], self.config["n_out"], self.dtype
        for name, t, width, fix in (("x", x, n_in, f"build the network with n_in={_last(x)} (the data's feature "
                                                   "count, 2(n+1) for points in P^n) or pass (Re z, Im z) features"),
                                    ("gfs", gfs, n_out, f"pass packed g_FS of {n_out} components per point")):
            if t is None:
                continue
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"MetricMLP: {name} is a {type(t).__module__}.{type(t).__name__}, not a torch.Tensor; "
                                f"pass torch.as_tensor({name})")
            if t.ndim != 2 or t.shape[-1] != width:
                raise ValueError(f"MetricMLP: {name} has shape {tuple(t.shape)}, expected (N, {width}); {fix}")
            want, got = (str(d).removeprefix("torch.") for d in (dtype, t.dtype))
            if t.dtype not in (torch.float64, torch.float32):  # a network of none of these dtypes is not built
                raise ValueError(f"MetricMLP: {name} is {got}, not real numbers of the weights' dtype {want}; pass "
                                 f"MetricData.from_pointset(ps, dtype='{want}'), whose x holds the real features "
                                 "(Re z, Im z) of the complex points and gfs the packed g_FS")
            if t.dtype != dtype:
                raise ValueError(f"MetricMLP: {name} is {got} but the weights are {want}; build the network with "
                                 f"dtype='{got}' or make the data {want}: MetricData.from_pointset(ps, dtype='{want}')")
        if x is not None and gfs is not None and x.shape[0] != gfs.shape[0]:
            raise ValueError(f"MetricMLP: x has {x.shape[0]} rows but gfs {gfs.shape[0]}; pass one row of packed g_FS "
                             "per point of x (the same rows of one MetricData: d.x[rows], d.gfs[rows])")

    def raw(self, x):
        """The MLP's outputs NN(x) (N, n_out), before combining with g_FS."""
        self.check_inputs(x)
        h = embed(self.features, x)
        for layer in self.layers[:-1]:
            h = _act(self.activation, layer(h))
        return self.layers[-1](h)

    def combine(self, gfs, y):
        """Packed metric from packed g_FS and network outputs y (multiplicative or additive model)."""
        return gfs + (hadamard_packed(gfs, y) if self.kind == "multiplicative" else y)

    def forward(self, x, gfs):
        self.check_inputs(x, gfs)
        return self.combine(gfs, self.raw(x))

    def output_map(self, gfs):
        """M (N, n_out, n_out) with g = g_FS + M y: ∂g_I/∂y_K (g_FS ⊙ · for multiplicative, identity else)."""
        n_out = gfs.shape[-1]
        eye = torch.eye(n_out, dtype=gfs.dtype, device=gfs.device)
        if self.kind == "additive":
            return eye.expand(gfs.shape[0], n_out, n_out)
        return hadamard_packed(gfs[:, None, :], eye[None, :, :]).transpose(1, 2)  # [n, I, K]

    @torch.no_grad()
    def ntk_factors(self, x, gfs):
        """Per linear layer l: (h_l (N, fan_in), δ_l (N, n_out, fan_out)) with δ_l = ∂g/∂(W_l h_l + b_l).

        Then ∂g_I(x)/∂W_l[i, j] = δ_l[I, i] h_l[j] and ∂g_I/∂b_l[i] = δ_l[I, i], so the metric-NTK is
        Θ_IJ(x, x') = Σ_l (δ_l(x)_I · δ_l(x')_J) (h_l(x) · h_l(x') + 1) exactly (layer-wise form).
        """
        self.check_inputs(x, gfs)
        hs, zs = [embed(self.features, x)], []
        for layer in self.layers[:-1]:
            z = layer(hs[-1])
            zs.append(z)
            hs.append(_act(self.activation, z))
        delta = self.output_map(gfs)  # ∂g/∂y_L
        deltas = [delta]
        for layer, z in zip(reversed(self.layers[1:]), reversed(zs)):
            delta = (delta @ layer.weight) * _act_deriv(self.activation, z)[:, None, :]
            deltas.append(delta)
        return list(zip(hs, reversed(deltas)))
