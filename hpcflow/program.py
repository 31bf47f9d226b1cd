"""The program `hpcflow`, its console script and `python -m hpcflow`: the CLI (`hpcflow.cli.main`) once its modules
are imported, a SIGTERM/SIGUSR1 of the start-up recorded from the first (`stop_signals.record_early`); where memory
runs out while they are imported, one line from the launcher's rank 0 and status 2, not a traceback."""

import os

#: the line where memory ran out importing hpcflow's own modules and saying why ran out too, made beforehand
MODULES_LINE = (b"hpcflow: error: out of memory loading its modules before any work; nothing was run: raise the "
                b"limit (ulimit -v and ulimit -d unlimited, or more memory for the job)\n")


def main() -> int:
    try:
        from hpcflow.stop_signals import record_early

        record_early()  # (a SIGTERM/SIGUSR1 while the imports and MPI_Init take a few tenths of a second)

        from hpcflow.cli import main as cli_main
    except (MemoryError, ImportError, SystemError) as exc:
        return modules_failed(exc)
    return cli_main()


def modules_failed(exc: BaseException) -> int:
    """Status 2 and one line, said by launcher rank 0's task alone, where importing hpcflow's modules failed for want
    of memory (a MemoryError, the loader's refusal, CPython's unsaid import failure under a limit:
    `hpcflow.errors`); `exc` raised again where it says no shortage of memory."""
    try:
        from hpcflow.errors import load_refused, unsaid_import_failure

        what = "MemoryError" if isinstance(exc, MemoryError) else load_refused(exc) or unsaid_import_failure(exc)
    except Exception:  # (hpcflow.errors, the standard library's alone, could not be imported either: memory)
        what = "MemoryError"
    if not what:
        raise exc
    if _launcher_rank() != 0:
        return 2
    try:
        line = MODULES_LINE.replace(b"; nothing", f" ({what}); nothing".encode(errors="replace"), 1)
    except MemoryError:
        line = MODULES_LINE
    try:
        os.write(2, line)
    except OSError:
        pass
    return 2


def _launcher_rank() -> int:
    """This task's rank as its launcher set it (`stop_signals.launcher_task`), 0 where that cannot be had: read from
    the launchers' rank variables where the module that knows them could not be imported."""
    try:
        from hpcflow.stop_signals import launcher_task

        return (launcher_task() or (None, 0))[1]
    except Exception:
        for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
            value = os.environ.get(name, "")
            if value.isdigit():
                return int(value)
        return 0
