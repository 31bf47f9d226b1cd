"""Run under mpiexec -n 2 by tests/test_check_mismatch_mpi.py. argv: OUT. Each case calls collective checks of
hpcflow.parallel.comm on both ranks: at different checks (each rank its own call: a programming error), or at the
same call with values that differ; every rank records what it raised (["Type", message, collective] or None) and
the ranks meet at a barrier. Rank 0 writes OUT/outcomes.json: [each rank's {case: outcome}]."""

import json
import os
import sys

from hpcflow.parallel import comm as pcomm

c = pcomm.resolve()
r = c.Get_rank()
FIX = "pass the same values"


def arguments_values():  # one check, a value that differs
    pcomm.arguments_together(lambda: None, comm=c, same=lambda: {"n_points": 40 + r, "seed": 1})


def arguments_named_by_value():  # one check whose names depend on its values (no test_seed without test points)
    pcomm.arguments_together(lambda: None, comm=c, same=lambda: {"n_test": 0} if r == 0 else
                             {"n_test": 20, "test_seed": 1})


def arguments_names():  # each rank's own check of other arguments
    if r == 0:
        pcomm.arguments_together(lambda: None, comm=c, same=lambda: {"n_points": 40, "seed": 1})
    else:
        pcomm.arguments_together(lambda: None, comm=c, same=lambda: {"layout": "share"})


def agreement_values():  # one agreement, a value that differs
    pcomm.agree_together({"command": "hpcflow run" if r == 0 else "hpcflow nn"}, fix=FIX, comm=c)


def agreement_names():  # each rank's own agreement of other values
    if r == 0:
        pcomm.agree_together({"command": "hpcflow run", "hpcflow version": "1"}, fix=FIX, comm=c)
    else:
        pcomm.agree_together({"job": {"seed": 1}}, fix=FIX, comm=c)


def other_checks():  # an argument check on rank 0, an agreement on rank 1
    if r == 0:
        pcomm.arguments_together(lambda: None, comm=c, same=lambda: {"seed": 1})
    else:
        pcomm.agree_together({"seed": 1}, fix=FIX, comm=c)


outcomes = {}
for case in (arguments_values, arguments_named_by_value, arguments_names, agreement_values, agreement_names,
             other_checks):
    try:
        case()
        outcomes[case.__name__] = None
    except Exception as exc:  # noqa: BLE001 - recorded
        outcomes[case.__name__] = [type(exc).__name__, str(exc), bool(getattr(exc, "collective", False))]
    c.Barrier()
every = c.gather(outcomes, root=0)
if r == 0:
    with open(os.path.join(sys.argv[1], "outcomes.json"), "w", encoding="utf-8") as fh:
        json.dump(every, fh)
