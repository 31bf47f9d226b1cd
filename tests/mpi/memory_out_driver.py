"""The hpcflow command line with memory that runs out mid-run, as under a tight `ulimit -v`, when the points are
sampled, for tests/test_out_of_memory.py.

Usage: python memory_out_driver.py KIND ARGS...
KIND "memory": the sampling raises MemoryError; "thread": no thread can start from then on (threading raises
CPython's RuntimeError "can't start new thread", as where no stack can be mapped).
"""

import sys
import threading

from hpcflow.cli import main
from hpcflow.geometry import sampling

kind = sys.argv[1]
sample_waves = sampling.sample_waves


def no_thread(*args, **kwargs):
    raise RuntimeError("can't start new thread")


def out_of_memory(*args, **kwargs):
    if kind == "memory":
        raise MemoryError()
    threading._start_new_thread = no_thread
    return sample_waves(*args, **kwargs)


sampling.sample_waves = out_of_memory
sys.exit(main(sys.argv[2:]))
