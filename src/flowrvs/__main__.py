"""``python -m flowrvs ...`` runs the ``flowrvs`` command line (needed by ``torchrun -m flowrvs``)."""

import sys

from flowrvs.apps.cli import run

if __name__ == "__main__":
    sys.exit(run())
