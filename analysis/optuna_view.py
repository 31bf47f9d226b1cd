"""Optuna study view: optimisation history, parameter importances, slice plot.

    python analysis/optuna_view.py STUDY_DIR_OR_URL [--study NAME] --out FIGDIR
"""

import sys

from hpcflow.analysis.script import main

if __name__ == "__main__":
    sys.exit(main("optuna_view", description=__doc__.splitlines()[0]))
