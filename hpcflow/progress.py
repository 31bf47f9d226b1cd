"""Progress bars for long loops (sampling, clustering batches, flow steps, epochs): a tqdm bar on rank 0
when stderr is a terminal, otherwise silent; plain log lines are left to the caller.

    from hpcflow.progress import progress
    for step in progress(range(steps), desc="flow", unit="step", quiet=args.quiet):
        ...
    with progress(total=n_points, desc="sampling", unit="pt") as bar:
        bar.update(chunk)
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from hpcflow.arguments import env_quiet


def enabled(*, quiet: bool = False, comm=None, stream=None) -> bool:
    """True when a bar should show: not quiet, $HPCFLOW_QUIET unset, rank 0 of `comm`, `stream` a terminal.
    ConfigError for a $HPCFLOW_QUIET other than 1 (as every command refuses it: hpcflow.arguments.env_quiet)."""
    if env_quiet() or quiet:
        return False
    from hpcflow.parallel.comm import is_root

    if not is_root(comm):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def progress(iterable=None, *, total=None, desc: str | None = None, unit: str = "it", quiet: bool = False,
             comm=None, stream=None, **kwargs):
    """A tqdm object (iterate it, or `update(n)` it, `close()` or use it as a context manager), disabled
    (no output at all) unless `enabled(...)`; extra keyword arguments go to tqdm."""
    stream = sys.stderr if stream is None else stream
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, leave=False,
                disable=not enabled(quiet=quiet, comm=comm, stream=stream), **kwargs)
