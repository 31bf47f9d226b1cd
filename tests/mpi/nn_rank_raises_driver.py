"""Run under mpiexec -n 2 by tests/test_nn_rank_raises_mpi.py: `train` through the Python API with an on_step that
raises at optimiser step STEP. Usage: nn_rank_raises_driver.py MODE STEP. MODE "one": rank 1 alone raises (the
default `abort_on_error`); rank 0 would wait for it in the next step's Allreduce. MODE "together": every rank raises
at the same step with abort_on_error=False, catches it and says so on stdout after one more collective, "rank R
caught: MESSAGE". MODE "stopped" / "interrupt": every rank raises a `Stopped` (SIGTERM) / KeyboardInterrupt at
the same step, the default `abort_on_error`, catches it and says so the same way. Rank 0 prints "rank 0 trained" should its training ever return."""

import signal
import sys

from hpcflow.geometry import Hypersurface
from hpcflow.nn.data import MetricData
from hpcflow.nn.model import MetricMLP
from hpcflow.nn.train import TrainConfig, train
from hpcflow.parallel import comm as pcomm
from hpcflow.stop_signals import Stopped

mode, step = sys.argv[1], int(sys.argv[2])
c = pcomm.resolve()
r = c.Get_rank()
X = Hypersurface.fermat(3)
tr, va = MetricData.from_pointset(X.sample(200, seed=0)), MetricData.from_pointset(X.sample(40, seed=1))
cfg = TrainConfig(epochs=10, batch_size=20, lr=1e-3, seed=0)  # 10 steps an epoch


def failing_callback(trainer):
    if trainer.step == step and mode == "stopped":
        raise Stopped(signal.SIGTERM)
    if trainer.step == step and mode == "interrupt":
        raise KeyboardInterrupt(f"interrupted on rank {r} at step {trainer.step}")
    if trainer.step == step and (mode == "together" or r == 1):
        raise RuntimeError(f"injected failure on rank {r} at step {trainer.step}")


if mode == "one":
    train(MetricMLP(10, depth=1, width=4, seed=0), tr, va, cfg, comm=c, on_step=failing_callback)
    print(f"rank {r} trained", flush=True)
elif mode in ("stopped", "interrupt"):
    try:
        train(MetricMLP(10, depth=1, width=4, seed=0), tr, va, cfg, comm=c, on_step=failing_callback)
    except KeyboardInterrupt as exc:
        c.Barrier()  # every rank got here: the world was not ended
        print(f"rank {r} caught {type(exc).__name__}: {exc}", flush=True)
else:
    try:
        train(MetricMLP(10, depth=1, width=4, seed=0), tr, va, cfg, comm=c, on_step=failing_callback,
              abort_on_error=False)
    except RuntimeError as exc:
        c.Barrier()  # the communicator is still usable: the caller handles the error collectively
        print(f"rank {r} caught: {exc}", flush=True)
