"""Command lines of the benchmark scripts: bad arguments refused in one line (exit 2) before any work, and a child
process's failure told in one line with its own message and exit status.

The scripts import it as `_args` (it sits beside them, on their sys.path).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import subprocess
import sys


def parser(doc: str, **kwargs) -> argparse.ArgumentParser:
    """hpcflow's argparse (one-line errors, exit 2; under mpiexec printed by rank 0 alone, every rank exiting):
    `doc`'s first paragraph, on one line, is the description, the rest of it the epilog, as written. Its parse_args
    checks the environment too, as hpcflow's commands do (`environment`)."""
    first, _, rest = doc.strip().partition("\n\n")
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return _parser_class()(description=" ".join(first.split()), epilog=rest.strip("\n") or None, **kwargs)


def _parser_class():
    """hpcflow.cli's parser, whose parse_args then checks the environment (`environment`)."""
    from hpcflow.cli import _Parser

    class Parser(_Parser):
        def parse_args(self, args=None, namespace=None):
            namespace = super().parse_args(args, namespace)
            environment(self)
            return namespace

    return Parser


def environment(ap: argparse.ArgumentParser) -> None:
    """Refuse a bad HPCFLOW_THREADS, HPCFLOW_BACKEND, OMP_NUM_THREADS, ... (`hpcflow.resources.check_environment`,
    the check of every hpcflow command), and HPCFLOW_BACKEND=cupy where no GPU is usable, in one line naming the
    variable, exit 2, before any work: the children the scripts start failed on it after their header, or the script
    ran without reading it."""
    from hpcflow.arguments import env_backend
    from hpcflow.errors import UserError
    from hpcflow.resources import check_environment

    try:
        check_environment()
        if env_backend() == "cupy":  # on a node without a usable GPU (only then: "auto" would import CuPy here)
            from hpcflow.backend import refuse_unusable

            refuse_unusable()
    except UserError as exc:  # (under mpiexec every rank has the launcher's environment: all refuse it together)
        ap.exit(2, f"{ap.prog}: error: {' '.join(str(exc).split())}\n")


def whole(lo: int = 1, hi: int | None = None):
    """An argparse type: an integer in [lo, hi] (an integral float such as 1e5 too), else a one-line refusal."""
    want = f"an integer >= {lo}" if hi is None else f"an integer from {lo} to {hi}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                f = math.nan
            if not (math.isfinite(f) and f.is_integer()):
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; pass {want}") from None
            value = int(f)
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{text} is out of range; pass {want}")
        return value

    parse.__name__ = want  # argparse names the type in some messages
    return parse


def real(lo: float = 0.0, *, above: bool = True):
    """An argparse type: a finite float > lo (>= lo with above=False), else a one-line refusal."""
    want = f"a number {'>' if above else '>='} {lo:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; pass {want}") from None
        if not math.isfinite(value) or value < lo or (above and value == lo):
            raise argparse.ArgumentTypeError(f"{text} is out of range; pass {want}")
        return value

    parse.__name__ = want
    return parse


def directory(text: str) -> str:
    """An argparse type: an existing directory."""
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is not an existing directory; create it or pass another")
    return text


def file(text: str) -> str:
    """An argparse type: an existing file."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"{text} is not an existing file; pass the path of one")
    return text


POSITIVE = whole(1)
NONNEGATIVE = whole(0)
#: MPI ranks per core at most (more only time-slices the cores: hours of waiting, no measurement)
RANKS_PER_CORE = 4


def cores() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ranks(text: str) -> int:
    """An argparse type: a number of MPI ranks on this machine, 1 to RANKS_PER_CORE x its cores."""
    most = RANKS_PER_CORE * cores()
    value = whole(1)(text)
    if value > most:
        raise argparse.ArgumentTypeError(f"{value} ranks on {cores()} cores is more than {RANKS_PER_CORE} per core; "
                                         f"pass at most {most} (or run on a machine with more cores)")
    return value


def layout(ranks: int, threads: int) -> str:
    """'1 process x 2 threads', '2 ranks x 1 thread': R processes of T threads each, in words."""
    return f"{ranks} {'process' if ranks == 1 else 'ranks'} x {threads} thread{'' if threads == 1 else 's'}"


def error_line(stderr: str) -> str:
    """The line of a failed child's stderr that says why: hpcflow's tagged line of a rank that raised, else the
    exception line of the last Python traceback, else the last line with 'error', else the last line."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    tagged = [line for line in lines if line.startswith("hpcflow: rank ")]
    if tagged:
        return tagged[0]
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback (most recent call last)")]
    if starts:
        after = [line for line in lines[starts[-1] + 1:] if not line.startswith((" ", "\t"))]
        if after:
            return after[0]
    errors = [line for line in lines if re.search(r"error", line, re.IGNORECASE)]
    return (errors or lines or ["(nothing on stderr)"])[-1].strip()


#: seconds a stopped child (and what it started: mpiexec's ranks) has to end after the stop request it is passed
#: before it is killed
STOP_GRACE = 10.0


class _Stop(BaseException):
    """A SIGTERM, SIGHUP or SIGINT to this process while a child runs (`child`)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _Requests:
    """Stop requests to this process (SIGTERM, SIGHUP; SIGINT where Ctrl-C raises KeyboardInterrupt) while `child`
    runs: raised as `_Stop` while armed (once: that disarms), noted while not (the first of them), so that one
    arriving before the child is bound, or while a stop is under way, is not lost nor raised in the middle of it."""

    def __init__(self):
        self.armed = False
        self.noted = None
        self.replaced = {}

    def _handler(self, signum, frame):  # noqa: ARG002 - signal handler signature
        if self.armed:
            self.armed = False  # a repeat of the request (often sent twice) waits for the stop under way
            raise _Stop(signum)
        if self.noted is None:
            self.noted = signum

    def install(self) -> None:
        """Handle the stop requests where this is the main thread and a request is not ignored."""
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None), signal.SIGINT):
            if sig is None:
                continue
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN or (sig == signal.SIGINT and current is not signal.default_int_handler):
                continue
            self.replaced[sig] = signal.signal(sig, self._handler)

    def arm(self) -> None:
        """Raise `_Stop` for a request noted so far, and for the next one."""
        self.armed = True
        if self.noted is not None:
            self.armed = False
            raise _Stop(self.noted)

    def restore(self) -> None:
        import signal

        for sig, handler in self.replaced.items():
            signal.signal(sig, handler)


def _signal_group(pgid: int, sig: int) -> None:
    """Send `sig` to process group `pgid` (a child's: it leads one of its own, `child`)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):  # (ended, its group with it)
        pass


def _group_runs(pgid: int) -> bool:
    """Whether a process of group `pgid` runs (one ended, not yet reaped by its new parent, does not)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        names = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:  # (no /proc: a member, perhaps ended, is there)
        return True
    for name in names:
        try:
            with open(f"/proc/{name}/stat") as fh:
                state, _ppid, pgrp = fh.read().rsplit(")", 1)[1].split()[:3]
        except (OSError, ValueError):
            continue
        if int(pgrp) == pgid and state not in ("Z", "X"):
            return True
    return False


def stop_child(proc: subprocess.Popen, sig: int, grace: float | None = None) -> None:
    """Pass stop request `sig` to child `proc`'s process group (mpiexec forwards it to its ranks); what of that group
    has not ended `grace` seconds (`STOP_GRACE` unless given) later is killed, the child or what it started and left
    behind."""
    import signal
    import time

    grace = STOP_GRACE if grace is None else grace
    deadline = time.monotonic() + grace
    _signal_group(proc.pid, sig)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    while _group_runs(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)  # (the group's id stays in use while one of its processes is left)
    proc.wait()


def child(cmd: list, what: str, *, timeout: float | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a child process (stdout captured as text unless `stdout` is given, stdin empty unless `stdin` is given);
    its stderr is passed on when it succeeds. When it fails this process ends with one line naming `what` and the
    child's own error line, and the child's exit status (1 for a signal); after `timeout` seconds likewise, status 1.
    The child leads a process group of its own, stopped with this process: a SIGTERM, SIGHUP or Ctrl-C (SIGINT) to
    this one is passed to the child and what it started (SIGTERM for a SIGHUP; killed `STOP_GRACE` seconds later
    where they have not ended), and this process ends in one line with the status of the signal (128 + its number:
    143, 130, 129). A stop request while a child is stopped (after its timeout, or a repeated request) waits for
    that stop."""
    import signal

    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stdin", subprocess.DEVNULL)  # mpiexec forwards its stdin to rank 0: not the terminal's
    prog = os.path.basename(sys.argv[0])
    requests = _Requests()
    requests.install()
    try:
        with subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs) as proc:
            try:
                try:
                    requests.arm()
                    out, err = proc.communicate(timeout=timeout)
                finally:
                    requests.armed = False  # (a request from here on is noted and left: this process ends anyway)
            except _Stop as exc:
                sig = exc.signum
                stop_child(proc, signal.SIGTERM if sig == getattr(signal, "SIGHUP", None) else sig)
                print(f"{prog}: stopped by {signal.Signals(sig).name}: {what} was stopped", file=sys.stderr,
                      flush=True)
                raise SystemExit(128 + int(sig)) from None
            except subprocess.TimeoutExpired:
                stop_child(proc, signal.SIGTERM)
                print(f"{prog}: error: {what} ran past its limit of {timeout:g} s and was stopped", file=sys.stderr,
                      flush=True)
                raise SystemExit(1) from None
    finally:
        requests.restore()
    if requests.noted is not None:  # (came as the child ended: acted on as it would have been without `child`)
        signal.raise_signal(requests.noted)
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if done.returncode != 0:
        print(f"{prog}: error: {what} failed (exit status {done.returncode}): {error_line(done.stderr)}",
              file=sys.stderr, flush=True)
        raise SystemExit(done.returncode if 0 < done.returncode < 128 else 1)
    sys.stderr.write(done.stderr)
    return done


def run(main, *args) -> None:
    """Run a script's `main(*args)` and exit with its value (None: 0). A Ctrl-C (SIGINT: KeyboardInterrupt) ends the
    script in one line "<script>: interrupted" on stderr with status 130, no traceback; under mpiexec, which passes
    the Ctrl-C on to every rank, the line is one rank's and every rank ends (`hpcflow.stop_signals.interrupted`:
    MPI's Abort with 130, so that no rank waits in a collective for one that left). A Ctrl-C while a child runs is
    `child`'s (the child stopped, then one line)."""
    from hpcflow.stop_signals import interrupted

    try:
        status = main(*args)
    except KeyboardInterrupt as exc:
        raise SystemExit(interrupted(os.path.basename(sys.argv[0]), exc)) from None
    raise SystemExit(status)


@contextlib.contextmanager
def together():
    """`hpcflow.parallel.comm.abort_on_error` (yields the world communicator: one rank's exception ends every rank,
    none left in a collective) where a Ctrl-C, which mpiexec passes on to every rank, ends the job in one line with
    status 130 instead of each rank's traceback (`hpcflow.stop_signals.interrupts_end_the_job`); on one rank the
    KeyboardInterrupt goes on to `run`, which says the same line."""
    from hpcflow.parallel.comm import abort_on_error
    from hpcflow.stop_signals import interrupts_end_the_job

    with abort_on_error() as comm, interrupts_end_the_job(os.path.basename(sys.argv[0]), stops=False):
        yield comm
