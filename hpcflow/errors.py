"""User-facing errors and the exit-status contract shared by every command.

Exit status: 0 success; 1 internal error; 2 bad input, nothing done (`UserError`); 3 the run started but stopped for a
numerical reason, outputs up to the last finite step written (`NumericalStop`); 4 preempted by SIGTERM/SIGUSR1 (or a
first Ctrl-C) after writing a checkpoint, continue with --resume (`Preempted`); 5 a write failed for a reason outside
the program (disk full, quota, file too large, I/O error, a file system remounted read-only), outputs up to the last
complete checkpoint kept (`WriteFailed`), or memory ran out mid-run (`out_of_memory`); 130 (128 + SIGINT, the shell's
convention) interrupted by Ctrl-C where no checkpoint is written, or by a second Ctrl-C; 143 / 138 (128 + the signal)
stopped by SIGTERM / SIGUSR1 where no checkpoint is written (`hpcflow.stop_signals.Stopped`).
"""

import errno
import resource

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_BAD_INPUT = 2
EXIT_NUMERICAL = 3
EXIT_PREEMPTED = 4
EXIT_WRITE_FAILED = 5
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Bad input (job file, CLI argument, HDF5 file, config value).

    The message names the offending key/file and says how to fix it. The CLI prints it on one line and
    exits with status 2, before anything on disk is touched.
    """

    exit_status = EXIT_BAD_INPUT


class ConfigError(UserError, ValueError):
    """A job-file or configuration value is missing, unknown, of the wrong type or impossible.

    Also a ValueError: the Python API raises it for an argument outside its choices or range (Hypersurface.sample(0),
    MetricMLP(kind=...), a clustering method's name), where other arguments of the same kind are refused with
    ValueError or TypeError, so `except (TypeError, ValueError)` catches every argument refusal. The CLI still maps
    it to exit 2 (it catches UserError before anything else). The other UserErrors are not ValueErrors: a file that
    is missing or unreadable, an output path taken, a dependency missing are no argument values.
    """


class InputFileError(UserError):
    """An input file (e.g. HDF5) is missing, unreadable or not of the expected kind."""


class OutputPathError(UserError):
    """An output path exists (and --force was not given) or cannot be written."""


class MissingDependencyError(UserError):
    """An optional dependency is needed; the message carries the exact pip install line."""


#: how a Preempted line ends where a resume continues the run; `hpcflow run` and `hpcflow nn` say the command line in
#: its place (hpcflow.cli)
RESUME_HINT = "continue with --resume"


class RunStop(Exception):
    """A started run ended early but cleanly (its outputs are written); the CLI prints one line."""

    exit_status = EXIT_INTERNAL


class NumericalStop(RunStop):
    """The run diverged (non-finite sigma) or found no positive-definite step; outputs end at the last good step."""

    exit_status = EXIT_NUMERICAL


class Preempted(RunStop):
    """SIGTERM/SIGUSR1/SIGINT arrived; a checkpoint was written at a step boundary; resume with --resume."""

    exit_status = EXIT_PREEMPTED


#: errno of a write that failed for a reason outside the program -> what frees the way for it
WRITE_FIXES = {
    errno.ENOSPC: "free space on its file system",
    errno.EDQUOT: "free space or raise your quota",
    errno.EFBIG: "raise the file-size limit (ulimit -f)",
    errno.EIO: "have its file system checked",
    # remounted read-only mid-run (often after an I/O error): --resume continues in the same --out, so that file
    # system must become writable again, not another --out be chosen
    errno.EROFS: "ask the administrators to make its file system writable again",
}


def out_of_memory(exc: BaseException) -> str | None:
    """What ran out where `exc` says that memory did mid-run (a limit outside the program: ulimit -v, a cgroup),
    else None: a MemoryError, or CPython's RuntimeError for a thread whose stack could not be mapped. The CLI, and
    `hpcflow.parallel.comm.abort_on_error` under MPI, say it in one line (`resources.out_of_memory_line`) and end with
    EXIT_WRITE_FAILED, the status of a write refused for such a reason."""
    if isinstance(exc, MemoryError):
        return "MemoryError"
    if isinstance(exc, RuntimeError) and "can't start new thread" in str(exc):
        return "a thread could not start: can't start new thread"
    return None


#: what the dynamic loader says where mmap refused a library's segments (ENOMEM: ulimit -v, a cgroup; its bss under
#: ulimit -d: "cannot map zero-fill pages"), lower case
LOAD_REFUSALS = ("failed to map segment from shared object", "cannot allocate memory", "cannot map zero-fill pages")
#: loader lines that name memory but no shortage of it: glibc's static TLS block of a library loaded late (libgomp on
#: aarch64), which the order of the imports or LD_PRELOAD fixes, not a larger limit
NOT_REFUSALS = ("static tls",)


def load_refused(exc: BaseException) -> str | None:
    """The loader's line where `exc` (an ImportError, or ctypes' OSError without an errno) says a library could not
    be mapped for want of memory (LOAD_REFUSALS), as under a tight `ulimit -v`; else None."""
    if isinstance(exc, ImportError) or (isinstance(exc, OSError) and exc.errno is None):
        for line in str(exc).splitlines():
            low = line.lower()
            if any(refusal in low for refusal in LOAD_REFUSALS) and not any(n in low for n in NOT_REFUSALS):
                return " ".join(line.split())
    return None


#: CPython's SystemError where a C function failed without setting an exception: under a limit, an allocation
UNSAID = ("error return without exception set", "without setting an exception")


def unsaid_import_failure(exc: BaseException) -> str | None:
    """What failed where `exc` is CPython's SystemError ("error return without exception set", "... returned NULL
    without setting an exception": an allocation of the import machinery or of an extension's init that failed
    unsaid) and RLIMIT_AS or RLIMIT_DATA is set, for an import that `exc` came from; else None (with no limit set
    a SystemError is a fault, said with its traceback)."""
    text = " ".join(str(exc).split())
    if not isinstance(exc, SystemError) or not any(unsaid in text for unsaid in UNSAID):
        return None
    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY and soft > 0:
            return f"an import failed unsaid: SystemError: {text}"
    return None


class WriteFailed(OSError):
    """Writing a file failed for a reason outside the program (`WRITE_FIXES`: disk full, quota, file too large, I/O
    error, read-only file system); the earlier file of that name and every file written before are kept whole
    (hpcflow.atomic).

    An OSError (errno, strerror, the file's path), so code that handles OSError still does. The CLI prints one line:
    the file, the reason and `advice` (the command that ran it says which checkpoint is kept and how to go on), and
    exits with status 5.
    """

    exit_status = EXIT_WRITE_FAILED
    #: what was kept and how to go on
    advice = ""

    def __str__(self):
        return f"cannot write {self.filename} ({self.strerror}); {self.advice or self.fix + ', then run it again'}"

    @property
    def fix(self) -> str:
        """What lets the write succeed, for this errno (`WRITE_FIXES`)."""
        return WRITE_FIXES.get(self.errno, "free space on its file system")
