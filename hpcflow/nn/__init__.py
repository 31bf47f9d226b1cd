"""Finite neural-network metrics and their empirical metric-NTK (paper sec. 3.3, Fig. 4); needs torch.

torch is an optional dependency (`pip install -e '.[nn]'` in the hpcflow checkout): this package imports it only
inside its submodules, which raise MissingDependencyError when it is absent. Submodules, one concept each:
`features` (network inputs, packed Hermitian algebra), `model` (MetricMLP), `loss` (sigma / ultra-local
losses), `fused_loss` (their closed-form backward), `jit_loss` / `jit_mlp` (its per-row part and the MLP's
forward/backward compiled by Numba), `fast_step` (the training step without autograd), `data` (PointSet ->
tensors), `replicas` (data parallelism over MPI ranks: shards, global sums, the gradient Allreduce), `train`
(Adam, epochs, validation sigma, resumable `Trainer`), `ntk` (empirical metric-NTK and its spectra), `kernel`
(the epoch-0 NTK as a fixed kernel for kernel_flow), `checkpoint` (model and training checkpoints, state dicts
only), `experiment` (training with NTK tracking, width sweep, NTK kernel flow) and `job` (job kind "nn",
`hpcflow nn JOB.toml --out DIR`).
"""

from hpcflow.nn._torch import require_torch, torch_available

__all__ = ["require_torch", "torch_available"]
