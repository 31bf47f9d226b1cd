"""Run under mpiexec -n R by tests/test_flow_args_mpi.py. argv: OUT [uncaught].

Each case of CASES gives one or two ranks a bad kernel_flow argument (the others good ones); every rank records
what it raised ([type, message, collective]) and rank 0 writes them to OUT/refused_R.json with what one process
raises for the lowest failing rank's arguments, and the failing ranks of each case; then a valid flow runs
(the ranks are still in step) and its sigma_train goes to OUT/after_R.npy; so does, to OUT/fields_R.npy, that of the
whole train set given on every rank as an object holding its four fields alone (each rank keeps its share of its rows). The cases of UNLIKE give the last
rank a valid argument that differs from the others'; what each rank raised is recorded as case "unlike_NAME".
uncaught: the last rank passes a kernel by name, nothing catches it.
"""

import json
import os
import sys
from types import SimpleNamespace

import numpy as np

from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import make_kernel
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import share

#: the fields kernel_flow reads of a set
FIELDS = ("points", "g_fs", "omega2", "weights")
#: case -> [(rank, keyword, bad value), ...] (rank -1: the last); at R = 2 the middle rank 1 is the last
CASES = {
    "kernel_by_name": [(-1, "kernel", "gaussian")],
    "train_not_a_set": [(0, "train", np.zeros((4, 3)))],
    "xp_by_name": [(1, "xp", "numpy")],
    "dt_negative": [(-1, "dt", -1.0)],
    "steps_fraction": [(1, "steps", 2.5)],
    "two_ranks": [(0, "tile", 0), (-1, "kernel", "gaussian")],  # rank 0's is said
    "train_none": [(-1, "train", None)],
    "on_step_not_callable": [(1, "on_step", "stop")],
}
#: valid on every rank, but not the same on the last one: each rank would flow its own way
UNLIKE = {
    "dt": [(-1, "dt", 0.1)],
    "kernel": [(-1, "kernel", make_kernel("gaussian", width=0.31))],
    "early_stop": [(-1, "early_stop", 3)],
}

out = sys.argv[1]
c = pcomm.resolve()
r, R = c.Get_rank(), c.Get_size()
whole = Hypersurface.fermat(3).sample(40, seed=3, chart=(0, 1))
GOOD = dict(kernel=make_kernel("gaussian", width=0.3), train=whole.subset(np.arange(*share(40, R, r))), dt=0.05,
            steps=2, comm=c)


def args(case, rank=r, table=CASES, **kw):
    """kernel_flow's keywords on `rank` in `case` of `table` (GOOD updated by kw, then by the case's values for
    `rank`)."""
    kw = {**GOOD, **kw}
    kw.update({key: value for at, key, value in table[case] if at % R == rank})
    return kw


def alone(case):
    """[type, message] that one process raises for the arguments of the case's lowest failing rank."""
    try:
        kernel_flow(**args(case, min(at % R for at, _, _ in CASES[case]), train=whole, comm=pcomm.SerialComm()))
    except (TypeError, ValueError) as exc:
        return [type(exc).__name__, str(exc)]
    return None


with pcomm.abort_on_error(c):
    if sys.argv[2:] == ["uncaught"]:
        kernel_flow(**args("kernel_by_name"))
        sys.exit(0)  # not reached: refused
    said = {}
    for case in CASES:
        try:
            kernel_flow(**args(case))
            said[case] = None
        except (TypeError, ValueError) as exc:
            said[case] = [type(exc).__name__, str(exc), bool(getattr(exc, "collective", False))]
    for case in UNLIKE:
        try:
            kernel_flow(**args(case, table=UNLIKE))
            said["unlike_" + case] = None
        except (TypeError, ValueError) as exc:
            said["unlike_" + case] = [type(exc).__name__, str(exc), bool(getattr(exc, "collective", False))]
    every = c.gather(said, root=0)
    expected = {case: alone(case) for case in CASES}
    after = kernel_flow(**GOOD).sigma_train
    fields = kernel_flow(**{**GOOD, "train": SimpleNamespace(**{f: getattr(whole, f) for f in FIELDS})}).sigma_train
    if r == 0:
        with open(os.path.join(out, f"refused_{R}.json"), "w", encoding="utf-8") as fh:
            json.dump({"every": every, "alone": expected,
                       "failing": {case: sorted({at % R for at, _, _ in CASES[case]}) for case in CASES}}, fh)
        np.save(os.path.join(out, f"after_{R}.npy"), after)
        np.save(os.path.join(out, f"fields_{R}.npy"), fields)
