"""`python -m hpcflow` is the same as the `hpcflow` console script."""

import sys

from hpcflow.cli import main

sys.exit(main())
