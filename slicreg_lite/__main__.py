"""``python -m slicreg_lite``: the command line of :mod:`slicreg_lite.apps.cli`."""

import sys

from .apps.cli import main

if __name__ == "__main__":
    sys.exit(main())
