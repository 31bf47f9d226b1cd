"""Fig. 3 right: nearest-neighbour distance versus N, our fit and the paper's 0.968 N^-0.184, from distance_scaling runs.

    python analysis/fig3_scaling.py RUN_DIR... --out FIGDIR
"""

import sys

from hpcflow.analysis.script import main

if __name__ == "__main__":
    sys.exit(main("fig3_scaling", description=__doc__.splitlines()[0]))
