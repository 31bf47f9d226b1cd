"""`python -m hpcflow` is the same as the `hpcflow` console script; a SIGTERM/SIGUSR1 during its start-up (the
imports, MPI_Init) is recorded and honoured once the command can say it (`stop_signals.record_early`)."""

import os
import sys

try:
    from hpcflow.stop_signals import record_early

    record_early()

    from hpcflow.cli import main  # after the handler: the imports and MPI_Init take a few tenths of a second
except (MemoryError, ImportError, SystemError) as exc:  # (a limit too tight for hpcflow's own modules: exit 2)
    try:
        from hpcflow.errors import load_refused, unsaid_import_failure

        memory = isinstance(exc, MemoryError) or load_refused(exc) or unsaid_import_failure(exc)
    except Exception:  # (hpcflow.errors, the standard library's alone, failed to import too: memory ran out)
        memory = True
    if not memory:
        raise
    os.write(2, b"hpcflow: error: out of memory loading its modules before any work (MemoryError); nothing was run: "
                b"raise the limit (ulimit -v and ulimit -d unlimited, or more memory for the job)\n")
    sys.exit(2)

sys.exit(main())
