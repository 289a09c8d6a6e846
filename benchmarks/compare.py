"""Side-by-side comparison: fastmlp vs PyTorch / scikit-learn / the machine's limits.

A thin wrapper over ``fastmlp.bench.main`` (the same as ``fastmlp bench``):

    python benchmarks/compare.py --quick      # < 2 minutes
    python benchmarks/compare.py              # full run, < 30 minutes
    python benchmarks/compare.py --help

Results: benchmarks/results/<cpu-slug>/bench-<mode>-<time>.{json,md,png} and, for a full
run, latest.* (see benchmarks/README.md).
"""

import sys

from fastmlp.bench import main

if __name__ == "__main__":
    sys.exit(main())
