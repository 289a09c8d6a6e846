"""``python -m fastmlp``: the ``fastmlp`` command (as ``python -m fastmlp.cli``), for an
environment whose scripts directory is not on PATH."""
import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
