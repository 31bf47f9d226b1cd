"""`hpcflow nn ...` with SIGTERM delivered inside one of the job's trainings, for tests/test_nn_stop_sweep.py.

Usage: python nn_step_stop_driver.py TRAINER STEP RANK nn JOB --out DIR ...
The job's trainings are numbered in the order they start: 0 the main training, then one per width of the width
sweep, then the network trained on the kernel flow's points. Rank RANK signals itself once optimiser step STEP
(counted from 1 over the whole training) of training TRAINER is done, before the run looks at that step. Every
step a training > 0 takes is appended to stderr as one line "training T step S".

`watch(trainer, step, rank, log)` installs the same (in-process tests); it returns a function that undoes it.
"""

import os
import signal
import sys


def watch(trainer, step, rank, log):
    from hpcflow.nn import train as _train

    init, started = _train.Trainer.__init__, []

    def _init(self, *args, on_step=None, **kwargs):
        index = len(started)
        started.append(index)

        def watched(t):
            if index:
                log(f"training {index} step {t.step}")
            if (index, t.step, t.comm.Get_rank()) == (trainer, step, rank):
                os.kill(os.getpid(), signal.SIGTERM)
            if on_step is not None:
                on_step(t)

        init(self, *args, on_step=watched, **kwargs)

    _train.Trainer.__init__ = _init
    return lambda: setattr(_train.Trainer, "__init__", init)


if __name__ == "__main__":
    from hpcflow.cli import main

    watch(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), lambda s: print(s, file=sys.stderr, flush=True))
    sys.exit(main(sys.argv[4:]))
