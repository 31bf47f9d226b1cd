"""`python -m hpcflow` is the same as the `hpcflow` console script (`hpcflow.program.main`)."""

import sys

from hpcflow.program import main

sys.exit(main())
