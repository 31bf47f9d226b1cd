"""The `hpcflow` command line: one subcommand module each under hpcflow.commands.

Every subcommand module defines `register(subparsers)`. Exit status (hpcflow.errors): 0 success, 1 internal error, 2 bad
input (UserError, one line; also a limit (ulimit -v, ulimit -d) the command cannot load its libraries under:
`start_limits` before they load, `resources.start_out_of_memory` where they run out of it), 3 numerical stop and 4
preemption (RunStop, one line; outputs written), 5 a write the file system refused (space, quota, size limit, I/O error,
read-only: WriteFailed, one line; the last complete checkpoint kept; also the log on stdout or stderr of a command that
otherwise succeeded: `log_refused`) or memory that ran out (mid-run, once the command's work began:
`resources.out_of_memory_said`; one line), 130 interrupted (KeyboardInterrupt: Ctrl-C where no checkpoint is written, or
a second one before the result is final; one line), 143 / 138 stopped by SIGTERM / SIGUSR1 where no checkpoint is
written (`stop_signals.Stopped`; one line, under mpiexec too).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from hpcflow import __version__
from hpcflow.errors import EXIT_WRITE_FAILED, RESUME_HINT, Preempted, RunStop, UserError, WriteFailed

# One line per subcommand module; each defines register(subparsers).
COMMANDS = [
    "hpcflow.commands.info",
    "hpcflow.commands.sample",
    "hpcflow.commands.run",
    "hpcflow.commands.nn",
    "hpcflow.commands.report",
    "hpcflow.commands.tune",
    "hpcflow.commands.submit",
]


#: argparse's refusal of an option whose value it took for an option (--psi -0.5+0.2j: only -N and -N.N pass as values)
_ONE_ARGUMENT = re.compile(r"argument (--[\w-]+)(/\S+)?: expected one argument$")


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 2 and a one-line message naming the fix."""

    def error(self, message):  # noqa: D401
        one = _ONE_ARGUMENT.match(message)
        if one:
            message += f" (a value that starts with '-' is written {one.group(1)}=VALUE)"
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def _print_message(self, message, file=None):
        """Every rank under mpiexec parses the same command line: its error line, usage, --help and --version are
        printed by rank 0 alone (every rank still exits with argparse's status)."""
        if _first_rank():
            super()._print_message(message, file)

    def exit(self, status=0, message=None):
        """argparse's end (an error, --help, --version), under a launcher after the ranks agree that each ends so
        (`_ended_alike`); its message is printed once they do."""
        status = _ended_alike(self.prog, status, message)
        if status is not None:
            if message:
                self._print_message(message, sys.stderr)
            sys.exit(status)
        sys.exit(2)


def _ended_alike(prog: str, status: int, message: str | None = None) -> int | None:
    """`status`, argparse's, once every rank of a launched world has ended in argparse too, with the same `message`:
    their first exchange (`same_command`), which a rank that parsed its command line and runs the command makes as
    well, so that no rank goes on alone into the collectives of a command the others left (they waited there for
    ever). Where the ranks differ (a rank runs the command, or argparse refused another rank's command line), every
    rank refuses that in one line from rank 0, which names argparse's message (`unrecognized arguments: --bogus`),
    and None is returned: argparse's own line is not printed then, the caller exits 2."""
    from hpcflow.parallel import comm as pcomm

    if not pcomm.launched() or pcomm.pmix_refusal() is not None:
        return status
    said = " ".join((message or "").split()).removeprefix(f"{prog}: error: ")
    try:
        pcomm.same_command(f"{prog}, ended by its argument parser (status {status})" + (f": {said}" if said else ""))
    except UserError as exc:
        if pcomm.rank() == 0:
            print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return None
    return status


def _first_rank() -> bool:
    """Rank 0 of a launched job, or a process no launcher started (which never loads MPI for this)."""
    from hpcflow.parallel.comm import launched, rank

    return not launched() or rank() == 0


class _Subcommand(_Parser):
    """A subcommand's parser refuses unknown options itself, so the one line names it ('hpcflow run: error: ...');
    argparse otherwise hands its leftovers to the top-level parser, whose message names `hpcflow`."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hpcflow", description="Metric flows with neural networks on Calabi-Yau manifolds.")
    parser.add_argument("--version", action="version", version=f"hpcflow {__version__}")
    # not required=True: argparse would then name the destination ("required: verb"), not the fix (main says it)
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", parser_class=_Subcommand)
    for modname in COMMANDS:
        importlib.import_module(modname).register(sub)
    return parser


def escaped(text: str, encoding: str | None) -> str:
    """`text` as `encoding` can write it: a byte that is not UTF-8 (a surrogate of os.fsdecode) as \\xNN, any other
    character the encoding lacks as Python's backslash escape, as Python writes stderr."""
    from hpcflow.names import shown

    encoding = encoding or "utf-8"
    return shown(text).encode(encoding, "backslashreplace").decode(encoding)


class _ReaderGone:
    """A text stream that, once its reader has gone (`hpcflow run ... | head`), writes to /dev/null instead: the
    run's log lines are not its product, so a closed pipe must not stop it half-way with a traceback. A write the file
    system refuses (`> /dev/full`, a full disk: ENOSPC, EDQUOT, EIO, ...) goes to /dev/null from then on too, and is
    kept in `refused` for the command's end to say (`log_refused`: one line, exit status 5)."""

    def __init__(self, stream):
        self._stream = stream
        #: the first OSError of a write the file system refused (not a reader gone), else None
        self.refused = None

    def _to_devnull(self) -> None:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, self._stream.fileno())  # the interpreter's own flush at exit then succeeds too
        finally:
            os.close(null)

    def _gone(self, exc: OSError) -> None:
        if not isinstance(exc, BrokenPipeError) and self.refused is None:
            self.refused = exc
        self._to_devnull()

    def write(self, text):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # a name that is not UTF-8 (os.fsdecode's surrogates): \xNN, on stderr too
                text = escaped(text, self._stream.encoding)
        try:
            try:
                return self._stream.write(text)
            except UnicodeEncodeError:  # a character the stream's encoding lacks (a Latin-1 stdout)
                return self._stream.write(escaped(text, self._stream.encoding))
        except OSError as exc:
            self._gone(exc)
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except OSError as exc:
            self._gone(exc)
            self._stream.flush()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def survive_closed_pipes() -> None:
    """stdout and stderr as `_ReaderGone` streams (those with a file descriptor): after their reader has gone, what
    is printed goes to /dev/null."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _ReaderGone):
            try:
                stream.fileno()
            except (AttributeError, OSError, ValueError):  # no file descriptor (pytest's capture): nothing to guard
                continue
            setattr(sys, name, _ReaderGone(stream))


def log_refused(prog: str, status: int, *, written: str | None = None) -> int:
    """The exit status of command `prog` that ended with `status`, once what it printed is flushed: where the file
    system refused a write of its stdout or stderr (`_ReaderGone.refused`) and the command otherwise succeeded
    (`status` 0), one line on stderr (where it still takes it) naming the stream, the reason and that the command's
    files are complete (`written`: the file it wrote, named), and status 5, that of a write refused
    (hpcflow.errors.WriteFailed); a command that failed keeps its own line and status. A reader that went away (a
    closed pipe) is no failure."""
    from hpcflow.errors import WRITE_FIXES

    refused = []
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if isinstance(stream, _ReaderGone):
            stream.flush()
            if stream.refused is not None:
                refused.append((name, stream.refused))
    if not refused or status != 0:
        return status
    name, exc = refused[0]
    reason = exc.strerror or type(exc).__name__
    fix = WRITE_FIXES.get(exc.errno, "send it to a file or pipe that takes it")
    done = f"{written} is complete; only its log" if written else "the command ran to its end, but its output"
    if sys.stderr is not None:  # (None where the process was started with stderr closed: the status alone says it)
        print(f"{prog}: error: {done} on {name} could not be written ({reason}): {fix}, or send {name} elsewhere",
              file=sys.stderr)
        sys.stderr.flush()
    return EXIT_WRITE_FAILED


def _said_elsewhere(exc, *, collective: bool = False) -> bool:
    """True on ranks > 0 for an error every rank raises together (marked collective, or `collective`): rank 0
    prints its one line for the world; and for an error marked `said_elsewhere` (tasks of a launch that are not
    one MPI world, whose launcher rank 0 says it: `parallel.comm.check_launch`)."""
    if getattr(exc, "said_elsewhere", False):
        return True
    if not (collective or getattr(exc, "collective", False)):
        return False
    from hpcflow.parallel.comm import rank

    return rank() != 0


#: commands that install their stop handlers (`stop_signals.interrupts_end_the_job`) right after their launch check
#: (MPI_Init) and honour there a SIGTERM/SIGUSR1 of the start-up (`stop_signals.record_early`); the others before
#: they begin
STOPS_AFTER_LAUNCH = ("run", "nn", "tune", "sample", "report")


def main(argv=None) -> int:
    import signal

    from hpcflow.stop_signals import (ENDING, early_command, early_handover, interrupted, interrupts_again, kept,
                                      record_early, stops_again)

    if argv is None:  # the program (console script, python -m hpcflow), not a caller's in-process command
        record_early()
    ctrl_c = signal.getsignal(signal.SIGINT)  # a caller's, given back after its in-process command
    stops = {sig: signal.getsignal(sig) for sig in ENDING}  # likewise its SIGTERM/SIGUSR1 after a stop
    threads = None if argv is None else thread_environment()  # likewise the caller's thread variables
    survive_closed_pipes()
    args = None
    try:
        with kept():  # a Ctrl-C that lands in a weakref callback (an import's lock clean-up) still stops the command
            try:
                parser = build_parser()  # (imports each command's module)
            except (MemoryError, RuntimeError, ImportError, OSError, SystemError) as exc:
                status = _start_failed(exc, argv)
                if argv is None:
                    quiet_exit(status)
                return status
            args = parser.parse_args(argv)
            if argv is None and args.verb is not None:
                early_command(f"hpcflow {args.verb}")  # for the line of a request while MPI_Init blocks
            if args.verb is None:
                parser.error(f"name a command, one of {', '.join(m.rsplit('.', 1)[1] for m in COMMANDS)}")
            if args.verb not in STOPS_AFTER_LAUNCH:
                early_handover()
            status = log_refused(f"hpcflow {args.verb}", _run(args), written=getattr(args, "written", None))
            if argv is None and getattr(args, "start_failed", False):
                quiet_exit(status)
            return status
    except SystemExit as exc:  # the program's --help, --version: a refused write of what they printed said (status 5)
        if argv is not None or exc.code not in (0, None):
            raise
        return log_refused("hpcflow", 0)
    except KeyboardInterrupt as exc:  # what was written is whole (atomic writes remove their temporaries)
        verb = getattr(args, "verb", None)
        return interrupted(f"hpcflow {verb}" if verb else "hpcflow", exc)
    finally:
        early_handover(honour=False)  # (a refusal before the handlers: the default action back, nothing to stop)
        if argv is not None:  # a finished command ignores Ctrl-C to its end (`stop_signals.finished`): the caller's
            interrupts_again(ctrl_c)
            stops_again(stops)  # (the program's process leaves them ignored to its end: a late repeat kills nothing)
            thread_environment(threads)


def quiet_exit(status: int) -> None:
    """End the program now with `status`, skipping the C libraries' exit handlers, where its start-up ran out of
    memory (exit 2) inside HDF5's initialization (h5py's modules half imported): HDF5's handler then prints
    "HDF5: infinite loop closing library L,P,P,FD,E,I,I,..." after the one line. Nothing was written to skip;
    not under MPI (MPI_Init done: its ranks end through MPI_Finalize)."""
    if not hdf5_half_loaded():
        return
    mpi = sys.modules.get("mpi4py.MPI")
    try:
        if mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized():
            return
    except Exception:  # (an MPI that cannot say: left to the usual exit)
        return
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError, MemoryError):
            pass
    os._exit(status)


def hdf5_half_loaded() -> bool:
    """Whether h5py's import began (its HDF5 library loaded: one of its modules imported) and did not end (no
    h5py.File): HDF5's initialization may have failed, and its exit handler then prints garbled lines."""
    h5py = sys.modules.get("h5py")
    if h5py is not None:
        return not hasattr(h5py, "File")
    try:  # (no copy of the names: the memory may be gone even for that)
        return any(name.startswith("h5py.") for name in sys.modules)
    except (MemoryError, RuntimeError):  # no memory left to look: taken as half loaded (the quiet exit skips nothing
        return True  # written at this start-up)


def thread_environment(restore: dict | None = None) -> dict:
    """The thread variables a command exports for the processes it starts (HPCFLOW_THREADS, OMP_NUM_THREADS, ...:
    `hpcflow.parallel.comm.limit_threads`), {name: value or None}; with `restore`, those values put back first: an
    in-process command (`main(argv)`) leaves its caller's environment as it found it, where a later command of the
    caller took them for the user's (hpcflow submit warned of an exported HPCFLOW_THREADS)."""
    from hpcflow.resources import THREAD_VARIABLES

    for name, value in (restore or {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    return {name: os.environ.get(name) for name in ("HPCFLOW_THREADS", *THREAD_VARIABLES)}


#: the commands run under a launcher (mpiexec, srun), whose ranks agree on the command first (`same_command`);
#: `hpcflow submit` runs where the jobs are queued, and its jobs' tasks run one of these (under a launcher it is
#: refused in one line from rank 0, exit 2: `hpcflow.commands.submit.launched_why`)
LAUNCHED_COMMANDS = ("info", "sample", "run", "nn", "report", "tune")
#: those of them that check the job's memory (`hpcflow.resources.check_resources`), whose ranks must skip that check
#: alike; `hpcflow info` and `hpcflow report` check none
MEMORY_CHECKED_COMMANDS = ("sample", "run", "nn", "tune")


def same_command(args) -> None:
    """Under a launcher, before the command: the ranks' first exchange (`parallel.comm.same_command`), which
    refuses ranks that run another hpcflow command or version together in one line, exit 2, before any other
    collective; then each rank's environment (`resources.check_environment`, a refusal naming the rank where rank 0
    passed) and, in a command that checks the job's memory (`MEMORY_CHECKED_COMMANDS`), that check skipped on every
    rank or on none (`memory_check_options`: a rank whose check refused
    the job told its user to pass the --no-memory-check that another rank was given). Only the PMIx check that must
    precede MPI_Init comes first (`parallel.comm.pmix_refusal`); no launcher, no MPI (nor in a world of one rank)."""
    from hpcflow.parallel import comm as pcomm
    from hpcflow.resources import check_environment

    if args.verb not in LAUNCHED_COMMANDS or not pcomm.launched():
        return
    why = pcomm.pmix_refusal()
    if why is not None:
        raise UserError(why)
    pcomm.same_command(f"hpcflow {args.verb}")
    pcomm.refuse_together(check_environment)  # (the command checks it again: said once)
    if args.verb in MEMORY_CHECKED_COMMANDS:
        pcomm.agree_together(memory_check_options(args),
                             fix="pass --no-memory-check, or set HPCFLOW_IGNORE_MEMORY_CHECK=1, on every rank or on "
                                 "none (one command line after mpiexec -n R)")


def memory_check_options(args) -> dict:
    """Whether this rank skips the memory check, for `same_command`: --no-memory-check given, or
    HPCFLOW_IGNORE_MEMORY_CHECK=1 (either, on any rank)."""
    from hpcflow.resources import ENV_IGNORE, ignore_requested

    skipped = bool(getattr(args, "no_memory_check", False)) or ignore_requested()
    return {f"whether the memory check is skipped (--no-memory-check, {ENV_IGNORE}=1)": skipped}


def _run(args) -> int:
    """The subcommand; its UserError, WriteFailed and RunStop become their exit status and one line."""
    from hpcflow.resources import work_began

    work_began(False)
    try:
        start_limits(args)
        same_command(args)
        return int(args.func(args) or 0)
    except (UserError, WriteFailed) as exc:
        if _said_elsewhere(exc):
            return exc.exit_status
        msg = " ".join(str(exc).split())
        print(f"hpcflow {args.verb}: error: {msg}", file=sys.stderr)
        return exc.exit_status
    except RunStop as exc:
        if not _said_elsewhere(exc, collective=True):  # every rank stops together: one line for the world
            print(f"hpcflow {args.verb}: stopped: {_stop_line(exc, args)}", file=sys.stderr)
        return exc.exit_status
    except (MemoryError, RuntimeError, ImportError, OSError, SystemError) as exc:  # memory that ran out: one line
        try:
            return _out_of_memory(exc, args)
        except MemoryError:  # (saying it ran out too: the line made before, with nothing more to allocate)
            return _out_of_memory_bare(args)


def _start_failed(exc: BaseException, argv) -> int:
    """Exit status 2 and one line where memory ran out while the CLI imported its commands' modules (`build_parser`),
    for the command named in `argv` (default: the program's arguments) where one is; `exc` raised again where it
    says no shortage of memory."""
    names = {name.rsplit(".", 1)[1] for name in COMMANDS}
    args = argparse.Namespace(verb=next((word for word in (sys.argv[1:] if argv is None else argv) if word in names),
                                        None))
    try:
        from hpcflow.resources import work_began

        work_began(False)
        return _out_of_memory(exc, args)
    except (MemoryError, ImportError, SystemError) as again:  # (hpcflow.resources could not be imported either)
        from hpcflow.errors import load_refused, unsaid_import_failure

        if not (isinstance(again, MemoryError) or load_refused(again) or unsaid_import_failure(again)):
            raise
        return _out_of_memory_bare(args)


def _out_of_memory(exc: BaseException, args) -> int:
    """The exit status and one line of memory that ran out in command `args.verb` (`resources.start_out_of_memory`
    before its work began, exit 2 and args.start_failed; `resources.out_of_memory_said` after it, exit 5); `exc`
    raised again where it says no shortage of memory."""
    from hpcflow.resources import out_of_memory_said, start_out_of_memory

    prog = f"hpcflow {args.verb}" if args.verb else "hpcflow"
    line = start_out_of_memory(exc, args.verb)
    if line is not None:  # before the command's work began: nothing ran (exit 2)
        args.start_failed = True
        if not _said_elsewhere(_start_error(line)):
            print(f"{prog}: error: {line}", file=sys.stderr)
        return UserError.exit_status
    line = out_of_memory_said(exc, args.verb)
    if line is None:
        raise exc
    print(f"{prog}: error: {line}", file=sys.stderr)
    return EXIT_WRITE_FAILED


#: the ends of `_out_of_memory_bare`'s lines (after "hpcflow VERB"), made when the CLI is imported: said where
#: making the full line ran out of memory too; by whether the work had begun
BARE_LINES = {
    False: b": error: out of memory before any work (MemoryError); nothing was run: raise the limit (ulimit -v and "
           b"ulimit -d unlimited, or more memory for the job)\n",
    True: b": error: out of memory mid-run (MemoryError): raise the limit (ulimit -v and ulimit -d unlimited, or more "
          b"memory for the job) or reduce the job's sizes, then run it again (with --resume where it wrote a "
          b"checkpoint)\n"}


def _out_of_memory_bare(args) -> int:
    """Exit status 2 (before the work began) or 5, and a line made beforehand, written with next to no allocation:
    memory ran out, then again while `_out_of_memory` made its line (its limit measured, its fix worked out)."""
    resources = sys.modules.get("hpcflow.resources")  # (not imported, or half: nothing began)
    began = bool(getattr(resources, "_BEGAN", [False])[0]) and args.verb not in getattr(resources, "START_ONLY", ())
    args.start_failed = not began
    try:
        from hpcflow.stop_signals import launcher_task

        # (at the start-up every task of a launch ran out alike: rank 0's says it; mid-run the rank that ran out)
        if not began and (launcher_task() or (None, 0))[1] != 0:
            return EXIT_WRITE_FAILED if began else UserError.exit_status
    except Exception:
        pass
    for part in (b"hpcflow", b" " if args.verb else b"", args.verb or b"", BARE_LINES[began]):
        try:
            os.write(2, part if isinstance(part, bytes) else part.encode())
        except (MemoryError, OSError):
            pass
    return EXIT_WRITE_FAILED if began else UserError.exit_status


def _start_error(line: str) -> UserError:
    """A refusal of the start-up, before MPI: every rank of a launch refuses alike (their limits are the launcher's),
    said by the task of launcher rank 0 alone (`said_elsewhere` on the others, as `parallel.comm.check_launch`)."""
    from hpcflow.stop_signals import launcher_task

    exc = UserError(line)
    exc.said_elsewhere = (launcher_task() or (None, 0))[1] != 0
    return exc


def start_limits(args) -> None:
    """Refuse (UserError, one line, exit 2) a command whose address-space or data limit (ulimit -v, ulimit -d) is
    under what it maps loading its libraries (`resources.start_refusal`), before it loads them: it would end in
    OpenBLAS's own exit or a MemoryError. Skipped with --no-memory-check or HPCFLOW_IGNORE_MEMORY_CHECK=1, as the
    memory check is."""
    from hpcflow.resources import ignore_requested, start_refusal

    try:
        ignored = ignore_requested()
    except UserError:  # a value neither 0 nor 1: refused by the environment's check, on rank 0 alone under mpiexec
        ignored = False
    if getattr(args, "no_memory_check", False) or ignored:
        return
    line = start_refusal(args.verb, bypass="--no-memory-check" if hasattr(args, "no_memory_check") else None)
    if line is not None:
        raise _start_error(line)


def _stop_line(exc, args) -> str:
    """A RunStop's one line; a preempted `hpcflow run` or `nn` names the command line that continues it: that of
    `args.resumed_by` (nn for a network job `hpcflow run` started), with the --set values the resume needs."""
    msg = " ".join(str(exc).split())
    verb = getattr(args, "resumed_by", None)
    if isinstance(exc, Preempted) and verb is not None and msg.endswith(RESUME_HINT):
        from hpcflow.commands.run import continue_with

        msg = f"{msg[:-len(RESUME_HINT)]}{continue_with(args, verb)}"
    return msg


if __name__ == "__main__":
    sys.exit(main())
