"""Progress of long loops (sampling, clustering batches, flow steps, epochs): a tqdm bar on rank 0 when stderr is a
terminal; otherwise silent, or, where the caller asks for them (`lines=True`), plain lines at most one a minute for a
batch job's log. Nothing with `quiet` or HPCFLOW_QUIET=1.

    from hpcflow.progress import progress
    for step in progress(range(steps), desc="flow", unit="step", quiet=args.quiet):
        ...
    with progress(total=n_points, desc="sampling", unit="pt", lines=True) as bar:
        bar.update(chunk)
"""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from hpcflow.arguments import env_quiet

#: seconds between two plain progress lines (`Lines`): at most one a minute in a log
LINE_SECONDS = 60.0
#: the clock of `Lines` (seconds, monotonic)
clock = time.monotonic


def wanted(*, quiet: bool = False, comm=None) -> bool:
    """True when progress is shown at all: not quiet, $HPCFLOW_QUIET 0 or unset, rank 0 of `comm`. ConfigError for a
    $HPCFLOW_QUIET other than 0 or 1 (as every command refuses it: hpcflow.arguments.env_quiet)."""
    if env_quiet() or quiet:
        return False
    from hpcflow.parallel.comm import is_root

    return is_root(comm)


def terminal(stream=None) -> bool:
    """True when `stream` (default stderr) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def enabled(*, quiet: bool = False, comm=None, stream=None) -> bool:
    """True when a bar should show: `wanted` and `stream` a terminal."""
    return wanted(quiet=quiet, comm=comm) and terminal(stream)


class Lines:
    """Progress as plain lines on `stream`, "DESC: N of TOTAL UNIT (P%) after S s, about L s left", at most one
    every `seconds` (none for a loop that ends sooner); iterated, updated, closed or used as a context manager as a
    tqdm bar is (TOTAL: `total`, else the iterable's length where it has one)."""

    def __init__(self, iterable=None, *, total=None, desc=None, unit="it", stream=None, seconds=LINE_SECONDS):
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc or "progress", unit
        self.stream, self.seconds, self.n = stream, float(seconds), 0
        self.start = self.said = clock()

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)

    def update(self, n=1) -> None:
        self.n += n
        now = clock()
        if now - self.said >= self.seconds:
            self.said = now
            print(self.line(now - self.start), file=self.stream or sys.stderr, flush=True)

    def line(self, elapsed: float) -> str:
        """The line said after `elapsed` seconds."""
        if not self.total:
            return f"{self.desc}: {self.n:,} {self.unit} after {elapsed:.0f} s"
        left = f", about {(self.total - self.n) * elapsed / self.n:.0f} s left" if self.n else ""
        return (f"{self.desc}: {self.n:,} of {self.total:,} {self.unit} ({self.n / self.total:.0%}) after "
                f"{elapsed:.0f} s{left}")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress(iterable=None, *, total=None, desc: str | None = None, unit: str = "it", quiet: bool = False,
             comm=None, stream=None, lines: bool = False, **kwargs):
    """A tqdm object (iterate it, or `update(n)` it, `close()` or use it as a context manager), disabled
    (no output at all) unless `enabled(...)`; extra keyword arguments go to tqdm. With `lines`, where progress is
    `wanted` but `stream` is no terminal: `Lines` (plain lines, at most one every LINE_SECONDS)."""
    stream = sys.stderr if stream is None else stream
    show = wanted(quiet=quiet, comm=comm)
    if show and lines and not terminal(stream):
        return Lines(iterable, total=total, desc=desc, unit=unit, stream=stream)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, leave=False,
                disable=not (show and terminal(stream)), **kwargs)
