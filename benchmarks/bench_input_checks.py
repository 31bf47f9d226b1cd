"""Cost of the checks that run before any work: kernel_flow's global row indices and charts, a study journal.

- `partition.check_indices`: every rank's train_idx (rows r::R of N) checked to be, over the ranks, each of 0..N-1
  once (one allgather of counts and bounds, one Allreduce of an N-bit bitmap).
- `flow_inputs.check_sets`: each rank's rows (shapes, finite points, every g_fs Hermitian positive definite,
  omega2 > 0, weights >= 0), then train and test of one chart (and manifold) over the ranks (one allgather), for
  sets of one chart (the usual case) and of many charts (the refusal, which counts them). The rows are quintic
  points from the sampler (SAMPLED of them per set and rank, repeated to fill the rank's rows).
- `tune.storage.journal_problem`: a study journal of T trials read line by line and replayed with Optuna's own
  reader (what `hpcflow tune` and the analysis scripts do before opening it), against Optuna opening it.

Prints one JSON line: per check best-of-`--repeats` seconds, the slowest rank's (`charts`: rank 0's charts in the
many-charts case). Usage:

    .venv/bin/python benchmarks/bench_input_checks.py [--n 1000000] [--trials 1000] [--repeats 5]
    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/bench_input_checks.py
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np

import _args


def best(fn, repeats: int, comm, *, refused: bool = False) -> float:
    """Smallest over repeats of the slowest rank's seconds for fn() (ranks start together); with `refused`, fn()
    must refuse (ValueError), else it must not."""
    times = []
    for _ in range(repeats):
        comm.Barrier()
        t = time.perf_counter()
        try:
            fn()
        except ValueError:
            if not refused:
                raise
        else:
            if refused:
                raise AssertionError("the case timed as a refusal was not refused")
        times.append(max(comm.allgather(time.perf_counter() - t)))
    return min(times)


#: sampled points repeated to fill a rank's rows (sampling 10^6 points would take minutes; the checks' work depends
#: on the rows' count and values, not on their being distinct)
SAMPLED = 2000


def rows(n: int, chart, seed: int):
    """n rows of quintic points as the sampler gives them (points, g_fs, omega2, weights, chart, manifold: all that
    check_sets reads and checks), SAMPLED points repeated; chart (I, J) or None for points of every chart."""
    from hpcflow.geometry import Hypersurface
    from hpcflow.parallel.comm import SerialComm

    # each rank samples its own rows alone (its own seed), as a rank of kernel_flow holds its own rows
    ps = Hypersurface.fermat(3).sample(min(max(n, 1), SAMPLED), seed=seed, chart=chart, threads=1, comm=SerialComm())
    return ps[np.arange(n) % len(ps)]


class Unmixed:
    """A kernel as check_sets sees it: one that does not mix components (the paper's four)."""

    mixes_components = False


def journal(path: str, trials: int) -> None:
    """A study journal of `trials` finished trials (two parameters, one value each)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(study_name="bench", storage=JournalStorage(JournalFileBackend(path)))
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0), "y": optuna.distributions.FloatDistribution(0, 1)}
    rng = np.random.default_rng(0)
    for _ in range(trials):
        t = study.ask(dist)
        study.tell(t, float(rng.uniform()))


def main() -> None:
    p = _args.parser(__doc__)  # every rank parses the same arguments: all refuse them together, rank 0 says why
    p.add_argument("--n", type=_args.POSITIVE, default=1_000_000, help="rows of train and of test over all ranks")
    p.add_argument("--trials", type=_args.POSITIVE, default=1000, help="trials in the journal")
    p.add_argument("--repeats", type=_args.POSITIVE, default=5)
    args = p.parse_args()
    with _args.together() as comm:  # one rank's exception ends every rank, none left in a collective
        measure(args, comm)


def measure(args, comm) -> None:
    """The checks' seconds, one JSON line (rank 0)."""
    R, r = comm.Get_size(), comm.Get_rank()
    from hpcflow.flow_inputs import check_sets
    from hpcflow.parallel.partition import check_indices

    mine = np.arange(r, args.n, R, dtype=np.int64)
    out = {"ranks": R, "n": args.n}
    out["check_indices_s"] = best(lambda: check_indices([("train_idx", mine, len(mine))], comm=comm),
                                  args.repeats, comm)
    for name, chart in (("one_chart", (0, 1)), ("many_charts", None)):
        train, test = rows(len(mine), chart, 2 * r), rows(len(mine), chart, 2 * r + 1)
        if chart is None:
            out["charts"] = len(np.unique(np.concatenate([train.chart, test.chart]), axis=0))
        out[f"check_sets_{name}_s"] = best(lambda: check_sets(Unmixed(), train, test, None, comm=comm),
                                           args.repeats, comm, refused=chart is None)
    if r == 0:
        from hpcflow.tune.storage import journal_problem

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "study.journal")
            journal(path, args.trials)
            with open(path, "rb") as fh:
                out["journal_lines"] = fh.read().count(b"\n")
            t = time.perf_counter()
            problem = journal_problem(path)
            out["journal_check_s"] = time.perf_counter() - t
            assert problem is None, problem
            from optuna.storages import JournalStorage
            from optuna.storages.journal import JournalFileBackend

            t = time.perf_counter()
            JournalStorage(JournalFileBackend(path)).get_all_studies()
            out["optuna_open_s"] = time.perf_counter() - t
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    _args.run(main)
