"""`python -m hpcflow` is the same as the `hpcflow` console script; a SIGTERM/SIGUSR1 during its start-up (the
imports, MPI_Init) is recorded and honoured once the command can say it (`stop_signals.record_early`)."""

import sys

from hpcflow.stop_signals import record_early

record_early()

from hpcflow.cli import main  # noqa: E402 - after the handler: the imports and MPI_Init take a few tenths of a second

sys.exit(main())
