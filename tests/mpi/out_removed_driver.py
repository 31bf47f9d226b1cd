"""The hpcflow command line with its --out removed while the run goes on, for tests/test_out_removed.py.

Usage: python out_removed_driver.py N[:mv] ARGS...
Right before the N-th write (from 1) of a checkpoint (checkpoint.h5, checkpoint.pt) starts, the directory it is
written to is removed with all it holds (`rm -rf DIR` typed in another shell while the run went on), or with ":mv"
renamed to DIR.moved, on the rank that writes it (rank 0).
"""

import os
import shutil
import sys

from hpcflow import atomic
from hpcflow.cli import main

nth, _, how = sys.argv[1].partition(":")
nth = int(nth)
_tmp_name, seen = atomic._tmp_name, []


def _tmp_name_after_removal(path):
    if os.path.basename(path) in ("checkpoint.h5", "checkpoint.pt"):
        seen.append(path)
        if len(seen) == nth:
            directory = os.path.dirname(path) or "."
            if how == "mv":
                os.rename(directory, directory.rstrip("/") + ".moved")
            else:
                shutil.rmtree(directory)
    return _tmp_name(path)


atomic._tmp_name = _tmp_name_after_removal
sys.exit(main(sys.argv[2:]))
