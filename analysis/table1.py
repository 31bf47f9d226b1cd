"""Table 1: hyper-parameters and train/test gains per kernel beside the paper's, from flow runs or a tune study.

    python analysis/table1.py RUN_DIR_OR_STUDY_DIR... --out FIGDIR
"""

import sys

from hpcflow.analysis.script import main

if __name__ == "__main__":
    sys.exit(main("table1", description=__doc__.splitlines()[0]))
