"""sigma histories (train, test; log scale) of flow or nn runs overlaid; per-rank step time and bytes when recorded.

    python analysis/sigma_history.py RUN_DIR... --out FIGDIR
"""

import sys

from hpcflow.analysis.script import main

if __name__ == "__main__":
    sys.exit(main("sigma_history", description=__doc__.splitlines()[0]))
