"""Run under mpiexec -n 2 by tests/test_flow_on_step_hooks.py: kernel_flow with an on_step that has a
`before_steps` (a collective one, as CheckpointWriter's) on rank 1 alone, then one that `answers_alike` on rank 1
alone; rank 0 prints each rank's "rank R: CASE: ran S steps" or "rank R: CASE: TYPE: MESSAGE"."""

from hpcflow.flow import kernel_flow
from hpcflow.kernels import GaussianKernel
from hpcflow.parallel import comm as pcomm

from test_flow_resume_fit import DT, TEST, TRAIN, WIDTH

c = pcomm.resolve()
r = c.Get_rank()


class Hooked:
    """An on_step with the attributes given."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def __call__(self, view):
        return False


def plain(view):
    return False


def outcome(case: str, hooked) -> str:
    """This rank's line for a flow whose on_step is `hooked` on rank 1, `plain` on rank 0."""
    try:
        res = kernel_flow(GaussianKernel(WIDTH), TRAIN, TEST, dt=DT, steps=2, on_step=hooked if r == 1 else plain,
                          comm=c)
    except ValueError as exc:
        return f"rank {r}: {case}: ValueError: {exc}"
    return f"rank {r}: {case}: ran {res.steps_taken} steps"


said = [outcome("before_steps", Hooked(before_steps=lambda view: c.barrier())),
        outcome("answers_alike", Hooked(answers_alike=True))]
every = c.gather(said, root=0)
if r == 0:
    print(*(line for lines in every for line in lines), sep="\n", flush=True)
