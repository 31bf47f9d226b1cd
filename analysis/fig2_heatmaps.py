"""Fig. 2: FS distance heatmaps (unordered, batched, full clustering) with silhouettes, from clustering runs.

    python analysis/fig2_heatmaps.py RUN_DIR... --out FIGDIR
"""

import sys

from hpcflow.analysis.script import main

if __name__ == "__main__":
    sys.exit(main("fig2_heatmaps", description=__doc__.splitlines()[0]))
