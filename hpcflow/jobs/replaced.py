"""--force without loss: an earlier run's files wait in DIR/.hpcflow.replaced-XXXX until the new run has its own.

A run that --force starts over moves the earlier run's files (`output.all_run_files` that hpcflow wrote:
`output.run_files_in`; a user's file of such a name is refused before, `output.refuse_foreign`; summary.json first)
into a new directory DIR/.hpcflow.replaced-XXXX on rank 0, one rename each, instead of deleting them: checks that
need the data (Birch finding too few clusters, ...) come after that, and bad input must lose nothing. When the run
ends by bad input (UserError, exit 2), or by any exception before it wrote a file of its own, they are put back
(whatever the run wrote under a run file's name removed first), so DIR is as it was; once it ended otherwise they
are removed.
A SIGTERM or SIGUSR1 before the run wrote a file of its own (and before its own stop
handler) puts them back too, then ends the process as the signal does. A run killed meanwhile (SIGKILL, the OOM
killer, node failure, an MPI Abort, a hung run killed) leaves them there, never lost; the next `hpcflow run` or
`hpcflow nn` on DIR settles them (`settle`) as soon as it holds DIR's lock (`outlock.holding`), before it looks into
DIR: holding it tells that no live run owns them (the kernel drops a killed run's lock), and a live run's folder is
never touched (the command is refused as busy first; on a file system that cannot lock nothing is settled). A folder
whose run has finished since (DIR/summary.json written after it, by that run killed at its very end or by a --resume
of it, with status "finished" and no checkpoint further on: `output.finished_run`) is removed, as the run would have
done; the --resume that finishes it removes it at its end. A summary.json of a run that has not finished (a --resume
of it preempted, stopped or diverged; one that does not parse) removes nothing: the earlier run's files stay wherever
it is in doubt. A folder whose run was killed before it wrote a file of its own is put back (DIR is as before that
run), and the command goes on as it would have there. Each says so in one line on stderr. Any other folder (the killed
run's own files, its checkpoint to continue, are in DIR) stays: a plain run is refused naming the directory and what
to do before anything else (`output.check_outdir`), the next --force says on stderr that it replaces them too
(`replaced_too`) and sets the directory aside inside its own (put back with it, removed with it), and a --resume of
the killed run continues it, saying on stderr that it removes them once it has finished (`kept_on_resume`).
`hpcflow report`, the analysis scripts and --check, which take no such lock, move nothing: the report and the scripts
name a folder that no live run holds beside the killed run's data, with what the next run does
(`analysis.rundir.set_aside_note`), --check what the run would do with it (`output.set_aside_said`). The earlier
run's own summary.json moved back by hand is older than the folder, so that run is not taken for a finished one.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sys
import threading
from contextlib import contextmanager

from hpcflow.errors import OutputPathError, UserError

#: name prefix of a directory of set-aside files in --out (not debris: it holds an earlier run's results)
PREFIX = ".hpcflow.replaced"


def leftovers(path) -> list:
    """The set-aside directories in directory `path` (names), left by runs that were killed before they ended."""
    return sorted(name for name in os.listdir(path) if name.startswith(PREFIX))


def _wrote(path) -> bool:
    """Whether directory `path` holds a run's file (this run's, once the earlier ones are set aside)."""
    from hpcflow.jobs.output import all_run_files

    return any(os.path.lexists(os.path.join(path, name)) for name in all_run_files())


def set_aside(path) -> str | None:
    """Move the earlier run's files in `path` (those hpcflow wrote: `output.run_files_in`; a user's file of such a
    name, which `output.check_outdir` refuses, stays) and its leftovers into a new PREFIX-XXXX directory there (rank
    0); its path, None when there was nothing. A rename that fails puts the moved ones back: OutputPathError."""
    from hpcflow.jobs.output import run_files_in

    names = [n for n, ours in run_files_in(path).items() if ours] + leftovers(path)
    if not names:
        return None
    aside = os.path.join(path, f"{PREFIX}-{secrets.token_hex(4)}")
    name = aside
    try:
        os.mkdir(aside)
        for name in names:
            os.rename(os.path.join(path, name), os.path.join(aside, name))
    except OSError as exc:
        if os.path.isdir(aside):  # (the files not moved yet are the earlier run's too: none is removed)
            put_back(path, aside, remove=False)
        raise OutputPathError(f"--force: cannot set the earlier run's {os.path.basename(name)} aside in {path} "
                              f"({exc.strerror}); remove it or choose another --out") from None
    return aside


def put_back(path, aside: str, *, remove: bool = True) -> None:
    """Remove the run files written in `path` since (unless not `remove`), then move the set-aside ones back
    (summary.json last: it marks a complete run). One that cannot move stays in `aside`, named on stderr."""
    from hpcflow.jobs.output import all_run_files

    for name in all_run_files() if remove else ():
        target = os.path.join(path, name)
        if os.path.isfile(target) or os.path.islink(target):
            os.unlink(target)
    for name in sorted(os.listdir(aside), key=lambda n: n == "summary.json"):
        try:
            os.replace(os.path.join(aside, name), os.path.join(path, name))
        except OSError as exc:
            print(f"hpcflow: warning: cannot put the earlier run's {name} back from {aside} ({exc.strerror}); it "
                  "stays there", file=sys.stderr, flush=True)
    try:
        os.rmdir(aside)
    except OSError:
        pass


def discard(path, aside: str | None = None) -> None:
    """Remove the set-aside files `aside` and any leftovers in `path` (rank 0): the run that replaced them has its
    own."""
    for name in ([] if aside is None else [os.path.basename(aside)]) + leftovers(path):
        shutil.rmtree(os.path.join(path, name), ignore_errors=True)


@contextmanager
def replacing(path, *, force: bool = False, outputs=(), resume: bool = False, comm=None):
    """The output directory of a run, for the block that runs it (collective): `output.check_outdir`'s refusals on
    every rank, then rank 0 creates it and with `force` sets the earlier run's files aside; `resume` (the run in DIR
    continues) keeps DIR as it is, leftovers of killed runs too (named on stderr: `kept_on_resume`). The block ending
    by a UserError, or by any exception before a run file is in DIR, puts the set-aside files back; any other end
    removes them and leftovers of killed runs (module docstring)."""
    from hpcflow.jobs.output import check_outdir, probed_directory, probes_shared, remove_debris
    from hpcflow.parallel.comm import rank, refuse_together

    root = rank(comm) == 0
    aside = None
    if resume:
        remove_debris(path, comm=comm)
        if root:
            kept_on_resume(path)
    else:
        with probes_shared([probed_directory(path)], comm):  # one probe file, not one a rank
            path = refuse_together(lambda: check_outdir(path, force=force, outputs=outputs), comm)
        aside = refuse_together(lambda: _prepare(path, force) if root else None, comm)
    handlers = _put_back_on_stop(path, aside) if root and aside is not None else {}
    try:
        yield path
    except BaseException as exc:
        if root and (isinstance(exc, UserError) or not _wrote(path)):
            if aside is not None:
                put_back(path, aside)
        elif root and not resume:
            discard(path, aside)
        raise
    else:
        if root and not resume:
            discard(path, aside)
    finally:
        _restore(handlers)


def kept_on_resume(path, *, done: bool = False, wrote: str | None = None) -> None:
    """Rank 0 of a --resume: a warning on stderr naming the set-aside folders in `path` that a killed --force run
    left (an earlier run's files), which the resume keeps, and what to do with them; `done`: a --resume with nothing
    to do, which continues nothing; `wrote`: the summary.json a --resume with no step left wrote from the checkpoint
    (one of a run that stopped or diverged keeps them, as the next run does: `settling`)."""
    from hpcflow.jobs.output import finished_summary, read_summary

    named = _named_leftovers(path)
    if named:
        aside, more = named
        if done:
            print(f"hpcflow: warning: {aside}{more} holds an earlier run's files, set aside by a --force run that was "
                  f"killed; this --resume has nothing to add to that run and keeps them: to keep the earlier run "
                  f"instead, move its files back into {path} in place of this run's; to drop them, remove {aside}",
                  file=sys.stderr, flush=True)
            return
        summary = read_summary(path) if wrote else None
        if wrote and not finished_summary(summary):  # (a run that ended stopped or diverged has not finished)
            status = summary.get("status") if summary else None
            print(f"hpcflow: warning: {aside}{more} holds an earlier run's files, set aside by a --force run that was "
                  f"killed; this --resume ends that run as its checkpoint does ({wrote}, status {status!r}, not "
                  f"finished) and keeps them: to keep the earlier run instead, move its files back into {path} in "
                  f"place of this run's; to drop them, remove {aside}", file=sys.stderr, flush=True)
            return
        ends = (f"this --resume completes that run ({wrote}, from the checkpoint)" if wrote else
                "--resume continues that killed run")
        print(f"hpcflow: warning: {aside}{more} holds an earlier run's files, set aside by a --force run that was "
              f"killed; {ends} and removes them once it has finished (summary.json status \"finished\"; a run "
              f"preempted, stopped or diverged keeps them): to keep them, move them out of {path} now",
              file=sys.stderr, flush=True)


def settle(path) -> None:
    """Rank 0 of a run holding DIR `path`'s lock (`outlock.holding` with `settle`: so no live run owns a set-aside
    folder there, `outlock.held_by`), at its start and at its end: each set-aside folder that a killed --force run left
    is settled as that run would have settled it. Its run finished (DIR/summary.json written after the folder, by
    the run or a --resume of it, with status "finished": `_finished_after`): the folder is removed. The run left no
    file of its own in DIR (killed before its first): the earlier run's files are put back (a folder inside it, of a
    run killed before, is then settled too). Otherwise (the killed run's own files there, a summary.json of a run
    preempted, stopped or diverged, or one that does not parse) it stays, named by the command's refusals and
    warnings. One line on stderr for each folder settled."""
    done = set()
    while True:
        left = [n for n in leftovers(path) if n not in done]
        if not left:
            return
        name = left[0]
        done.add(name)
        aside = os.path.join(path, name)
        how = settling(path, aside)
        if how == "remove":
            shutil.rmtree(aside, ignore_errors=True)
            if not os.path.lexists(aside):
                print(f"hpcflow: removed {aside}: the earlier run's files it held were set aside by a --force run "
                      f"that has since finished ({os.path.join(path, 'summary.json')}: status \"finished\")",
                      file=sys.stderr, flush=True)
        elif how == "put back":
            put_back(path, aside, remove=False)
            print(f"hpcflow: put the earlier run's files back into {path} from {aside}: the --force run that set "
                  "them aside was killed before it wrote a file of its own", file=sys.stderr, flush=True)


def settling(path, aside: str) -> str | None:
    """What `settle` does with the set-aside folder `aside` in DIR `path` (a killed run's): "remove", "put back", or
    None (it stays: the killed run's own files are there)."""
    if _finished_after(path, aside):
        return "remove"
    return None if _wrote(path) else "put back"


def _finished_after(path, aside: str) -> bool:
    """Whether DIR `path` holds a summary.json written after the set-aside folder `aside` last changed, of a run that
    finished (`output.finished_run`: status "finished", no checkpoint further on): the run that set it aside (or a
    --resume of it) ran to its end. One of a run preempted, stopped or diverged, or one that does not parse, is not
    (the earlier run's files stay); the earlier run's own summary.json, moved back by hand, is older."""
    from hpcflow.jobs.output import finished_run

    try:
        newer = os.stat(os.path.join(path, "summary.json")).st_mtime_ns >= os.stat(aside).st_mtime_ns
    except OSError:
        return False
    return newer and finished_run(path)


def _named_leftovers(path) -> tuple | None:
    """(the first set-aside folder in `path`, " (and N more such folders)" or ""), or None where there is none."""
    left = leftovers(path)
    if not left:
        return None
    return os.path.join(path, left[0]), f" (and {len(left) - 1} more such folders)" if len(left) > 1 else ""


def replaced_too(path) -> None:
    """Rank 0 of a --force run, before it sets anything aside: a warning on stderr naming the set-aside folders a
    killed --force run left in `path` (an earlier run's files), which this run replaces with the rest: set aside with
    them, removed once it has written its own, put back if it is refused before."""
    named = _named_leftovers(path)
    if named:
        aside, more = named
        print(f"hpcflow: warning: {aside}{more} holds an earlier run's files, set aside by a --force run that was "
              "killed; this --force run replaces them too: they are removed once it has written its own files (put "
              f"back if it is refused before); to keep them, move them out of {path} before running with --force",
              file=sys.stderr, flush=True)


#: stop requests whose default action ends the process without Python's clean-up (SIGINT raises KeyboardInterrupt)
_ENDING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1") if hasattr(signal, name))


def _put_back_on_stop(path: str, aside: str) -> dict:
    """Rank 0, until the run installs its own stop handler: a SIGTERM/SIGUSR1 (scancel, preemption) before the run
    wrote a file of its own puts the set-aside files back, then ends the process by the signal's default action as
    before; the handlers replaced ({} off the main thread). `stop_signals.restore` ignores a repeat of it while a
    run that honoured a stop request leaves, as it does the default action."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def on_stop(signum, frame):
        if getattr(handlers.get(signum), "raises_stop", False):  # `stop_signals.Stopped`: `replacing` puts back
            handlers[signum](signum, frame)
        if not _wrote(path) and os.path.isdir(aside):
            put_back(path, aside)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    on_stop.default_action = True
    handlers = {sig: signal.signal(sig, on_stop) for sig in _ENDING}
    return handlers


def _restore(handlers: dict) -> None:
    """Put back the handlers `_put_back_on_stop` replaced, where it is still set: a run that honoured a stop request
    leaves the signal ignored (`stop_signals.restore`), as it is while the process ends."""
    for sig, old in handlers.items():
        if getattr(signal.getsignal(sig), "default_action", False):
            signal.signal(sig, signal.SIG_DFL if old is None else old)


def _prepare(path: str, force: bool) -> str | None:
    """Rank 0: create `path` (and missing parents), set the earlier run's files aside with `force`, remove debris."""
    from hpcflow.jobs.output import make_outdir, remove_debris

    make_outdir(path)
    if force:
        replaced_too(path)
    aside = set_aside(path) if force else None
    remove_debris(path)
    return aside
