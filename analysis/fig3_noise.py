"""Fig. 3 left: sigma gain versus mean FS distance per kernel, from noise_scan runs (overlaid).

    python analysis/fig3_noise.py RUN_DIR... --out FIGDIR
"""

import sys

from hpcflow.analysis.script import main

if __name__ == "__main__":
    sys.exit(main("fig3_noise", description=__doc__.splitlines()[0]))
