"""Fig. 4: metric-NTK spectra at epoch 0 and last, Wasserstein / Frobenius change per epoch, width sweep, from nn runs.

    python analysis/fig4_ntk.py RUN_DIR... --out FIGDIR
"""

import sys

from hpcflow.analysis.script import main

if __name__ == "__main__":
    sys.exit(main("fig4_ntk", description=__doc__.splitlines()[0]))
