"""A training step without autograd: the MetricMLP's forward and backward written out, and Adam's two kernels.

For the networks the job schema allows (MetricMLP: Linear layers, ReLU or GELU, features "reim" or
"reim_abs2", a 3x3 metric, either model kind and loss) `ManualGradient` computes one batch's loss and writes
the parameter gradients straight into the GradientReducer's flat buffer:

    forward   h_0 = embed(x), z_l = h_{l-1} W_lᵀ + b_l, h_l = act(z_l), y = h_L W_outᵀ + b_out
    loss      L and dL/dy from hpcflow.nn.fused_loss.loss_and_output_gradient (κ over the global batch)
    backward  δ = dL/dy; per layer from the top: dW = δᵀ h_in, db = Σ_rows δ, then δ = (δ W) ⊙ act'(z)

(ReLU': threshold_backward(·, h, 0), GELU': gelu_backward(·, z), the kernels autograd itself uses), so one
step is ~45 tensor operations instead of ~100 operator launches plus autograd's graph. In a one-thread process
(an MPI rank's usual setting) on CPU float64 the forward and the backward are one compiled call each
(hpcflow.nn.jit_mlp) below COMPILED_ROWS rows, and the products of larger batches go to NumPy's BLAS
(`ManualGradient.path`). `AdamStep` runs the two kernels of torch's fused Adam (step counts +1,
`_fused_adam_`) on the optimizer's own state, the same update bit for bit without Optimizer.step's per-call
bookkeeping; the state dict stays torch's.
`ManualGradient.build` / `AdamStep.build` return None where they do not apply (another model, layer or
activation, a parameter order the reducer does not share, another optimizer); the Trainer then takes
autograd and Optimizer.step, with the same results to rounding.
"""

from __future__ import annotations

import numpy as np

from hpcflow.nn import jit_loss, jit_mlp
from hpcflow.nn._torch import require_torch
from hpcflow.nn.fused_loss import loss_and_output_gradient
from hpcflow.nn.model import ACTIVATIONS, FEATURES, MetricMLP, embed

torch = require_torch()

_ATEN = torch.ops.aten


#: from this many rows on, a one-thread process (an MPI rank's usual setting) sends CPU float64 products to
#: NumPy's BLAS (OpenBLAS in the wheels), which ran the network's (rows x 64) x (64 x 64) products 1.3-1.7x
#: faster than torch's on the AMD EPYC sandbox (a whole step 1.2x at 256 rows, 1.3-1.4x from 768 on); below it
#: torch's lower per-call cost wins. With more torch threads torch's own products stay: OpenBLAS's threads
#: and torch's spinning OpenMP threads slow each other down ~10x, and OpenBLAS's threads gain little on these
#: narrow products (BENCHMARKS.md)
HOST_BLAS_ROWS = 256
#: below this many rows a one-thread process runs the compiled forward/backward (hpcflow.nn.jit_mlp), which
#: saves ~40 operator calls per step (2.2x at 64 rows, 1.5x at 256, 1.1-1.2x at 768-1024 for ReLU) but whose
#: loops do not beat torch's vector kernels and NumPy's BLAS on large batches (0.91-0.93x at 2048-4096 rows;
#: for GELU, whose erf and exp run per entry, from 256 rows on: 0.96-0.98x)
COMPILED_ROWS = {"relu": 1536, "gelu": HOST_BLAS_ROWS}
#: the compiled forward/backward is specialised on the number of layers (their arrays are tuples): a new depth
#: compiles once into Numba's cache, ~4 s at 8 layers and ~30 s at 64 (Numba refuses 1000); deeper networks
#: take the other paths
COMPILED_MAX_LAYERS = 8


def _host_mm(a, b, *, out=None):
    """torch.mm(a, b, out=out) for CPU float64 tensors by NumPy's matmul (zero-copy views, transposes as flags)."""
    if out is None:
        return torch.from_numpy(np.matmul(a.detach().numpy(), b.detach().numpy()))
    np.matmul(a.detach().numpy(), b.detach().numpy(), out=out.numpy())
    return out


class ManualGradient:
    """Loss of one batch (this rank's rows) and its parameter gradients, written into `grads` in place."""

    def __init__(self, model: MetricMLP, grads, *, loss: str, detach_kappa: bool):
        self.model = model
        self.weights = [layer.weight for layer in model.layers]
        self.biases = [layer.bias for layer in model.layers]
        self.grad_w, self.grad_b = list(grads[0::2]), list(grads[1::2])
        self.relu = model.activation == "relu"
        self.host = all(p.device.type == "cpu" and p.dtype == torch.float64 for p in self.weights)
        self.compiled = None
        if self.host and jit_loss.available():  # both compiled parts need only Numba
            jit_loss.warm()  # before the first epoch's clock starts
        if self.host and jit_loss.available() and len(self.weights) <= COMPILED_MAX_LAYERS:
            self.compiled = jit_mlp.CompiledMLP(
                [w.detach().numpy() for w in self.weights], [b.detach().numpy() for b in self.biases],
                [g.numpy() for g in self.grad_w], [g.numpy() for g in self.grad_b], features=model.features,
                relu=self.relu)
            self.compiled.warm()
        self.flags = dict(multiplicative=model.kind == "multiplicative", squared=loss == "ultralocal",
                          detach_kappa=bool(detach_kappa))

    @classmethod
    def build(cls, model, params, grads, *, loss: str, detach_kappa: bool):
        """A ManualGradient if `model` is a MetricMLP of the schema's kinds whose parameters are exactly
        `params` in layer order (weight, bias per layer) with gradient buffers `grads`; else None."""
        if type(model) is not MetricMLP or model.activation not in ACTIVATIONS or model.features not in FEATURES:
            return None
        if model.config["n_out"] != 9 or any(type(layer) is not torch.nn.Linear for layer in model.layers):
            return None
        expected = [p for layer in model.layers for p in (layer.weight, layer.bias)]
        if len(expected) != len(params) or any(a is not b for a, b in zip(expected, params)):
            return None
        if any(not p.requires_grad for p in expected) or len(list(model.parameters())) != len(expected):
            return None
        if any(g.shape != p.shape or not g.is_contiguous() for g, p in zip(grads, params)):
            return None
        return cls(model, grads, loss=loss, detach_kappa=detach_kappa)

    def path(self, rows: int) -> str:
        """How a batch of `rows` rows runs: "compiled" (hpcflow.nn.jit_mlp: one thread, below COMPILED_ROWS),
        "numpy" (torch's element-wise kernels, NumPy's BLAS for the products: one thread, HOST_BLAS_ROWS rows or
        more) or "torch" (GPU, float32, more than one torch thread, or small batches without Numba)."""
        if not self.host or torch.get_num_threads() != 1:
            return "torch"
        if self.compiled is not None and rows < COMPILED_ROWS[self.model.activation]:
            return "compiled"
        return "numpy" if rows >= HOST_BLAS_ROWS else "torch"

    @torch.no_grad()
    def __call__(self, batch, *, comm=None) -> float:
        """This rank's part of the global batch loss; the gradients of its rows are in the buffers after."""
        path = self.path(batch.x.shape[0])
        if path == "compiled":
            y = torch.from_numpy(self.compiled.forward(batch.x.detach().contiguous().numpy()))
            loss, delta = loss_and_output_gradient(y, batch.gfs, batch.omega2, batch.weights, comm=comm,
                                                   **self.flags)
            self.compiled.backward(delta.contiguous().numpy())
            return loss
        ws, bs = self.weights, self.biases
        host = path == "numpy"
        mm = _host_mm if host else torch.mm

        def affine(h, w, b):  # h wᵀ + b
            return _host_mm(h, w.t()).add_(b) if host else torch.addmm(b, h, w.t())

        hs, zs = [embed(self.model.features, batch.x)], []
        for w, b in zip(ws[:-1], bs[:-1]):
            z = affine(hs[-1], w, b)
            if self.relu:  # in place: ReLU's backward needs h only
                hs.append(torch.relu_(z))
            else:
                zs.append(z)
                hs.append(torch.nn.functional.gelu(z))
        y = affine(hs[-1], ws[-1], bs[-1])
        loss, delta = loss_and_output_gradient(y, batch.gfs, batch.omega2, batch.weights, comm=comm, **self.flags)
        for layer in range(len(ws) - 1, -1, -1):
            mm(delta.t(), hs[layer], out=self.grad_w[layer])
            torch.sum(delta, 0, out=self.grad_b[layer])
            if layer:
                dh = mm(delta, ws[layer])
                delta = (_ATEN.threshold_backward.grad_input(dh, hs[layer], 0.0, grad_input=dh) if self.relu
                         else _ATEN.gelu_backward(dh, zs[layer - 1]))
        return loss


class AdamStep:
    """`opt.step()` of a torch Adam built with fused=True, as its two kernels on the optimizer's state."""

    def __init__(self, opt):
        self.opt = opt
        self.params = list(opt.param_groups[0]["params"])
        self.lists = None

    @classmethod
    def build(cls, opt):
        """An AdamStep for a fused, plain Adam (one parameter group, no amsgrad / weight decay / maximize /
        capturable / differentiable / decoupled decay); else None."""
        if type(opt) is not torch.optim.Adam or len(opt.param_groups) != 1 or not hasattr(torch, "_fused_adam_"):
            return None
        g = opt.param_groups[0]
        plain = dict(fused=True, amsgrad=False, weight_decay=0, maximize=False, capturable=False,
                     differentiable=False, decoupled_weight_decay=False)
        if any(g.get(k, v) != v for k, v in plain.items()) or any(torch.is_tensor(a) for a in (g["lr"], *g["betas"])):
            return None
        if any(p.device.type != "cpu" or p.grad is None or p.is_complex() for p in g["params"]):
            return None
        return cls(opt)

    def _state_lists(self):
        """(exp_avgs, exp_avg_sqs, steps) of the optimizer's current state (rebuilt after load_state_dict); a
        parameter without state gets Adam's initial one, as torch's first step forms it (step: a float32 scalar for
        the fused kernel; both moments zero), so that no step goes through Optimizer.step."""
        st = self.opt.state.get(self.params[0])
        if self.lists is None or st is None or st.get("exp_avg") is not self.lists[0][0]:
            for p in self.params:
                if not self.opt.state[p]:
                    self.opt.state[p].update(step=torch.zeros((), dtype=torch.float32, device=p.device),
                                             exp_avg=torch.zeros_like(p, memory_format=torch.preserve_format),
                                             exp_avg_sq=torch.zeros_like(p, memory_format=torch.preserve_format))
            states = [self.opt.state[p] for p in self.params]
            self.lists = tuple([s[k] for s in states] for k in ("exp_avg", "exp_avg_sq", "step"))
        return self.lists

    @torch.no_grad()
    def __call__(self, lr: float) -> None:
        group = self.opt.param_groups[0]  # load_state_dict replaces the group
        group["lr"] = lr
        exp_avgs, exp_avg_sqs, steps = self._state_lists()
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(self.params, [p.grad for p in self.params], exp_avgs, exp_avg_sqs, [], steps,
                           amsgrad=False, lr=lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                           eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)


class SgdStep:
    """`opt.step()` of a plain torch SGD on CPU (no momentum, weight decay, dampening, Nesterov or maximize):
    p <- p - lr grad per parameter, the single-tensor update torch runs there."""

    def __init__(self, opt):
        self.opt = opt
        self.params = list(opt.param_groups[0]["params"])

    @classmethod
    def build(cls, opt):
        """An SgdStep for a plain SGD of one parameter group on CPU parameters with gradients; else None."""
        if type(opt) is not torch.optim.SGD or len(opt.param_groups) != 1:
            return None
        g = opt.param_groups[0]
        plain = dict(momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False, foreach=None,
                     fused=None, differentiable=False)
        if any(g.get(k, v) != v for k, v in plain.items()) or torch.is_tensor(g["lr"]):
            return None
        if any(p.device.type != "cpu" or p.grad is None or p.grad.is_sparse for p in g["params"]):
            return None
        return cls(opt)

    @torch.no_grad()
    def __call__(self, lr: float) -> None:
        self.opt.param_groups[0]["lr"] = lr
        for p in self.params:
            p.add_(p.grad, alpha=-lr)


def optimizer_step(opt):
    """`opt.step()` of Adam (fused) or plain SGD without Optimizer.step's bookkeeping (which also imports
    torch._dynamo, ~2 s of a process's start-up), as a callable of the learning rate; None for other optimizers."""
    for kind in (AdamStep, SgdStep):
        step = kind.build(opt)
        if step is not None:
            return step
    return None
