import os
from pathlib import Path

import pytest

# Measured choices (fastmlp.backends.tuning) would make the suite depend on the machine's
# load and write a cache file: tests use the static defaults unless they ask otherwise
# (tests/test_tuning.py, with a temporary cache directory).
os.environ.setdefault("FASTMLP_NO_TUNE", "1")

# The read-only SDSS data lives beside the project root (../shared/data), or where
# FASTMLP_DATA_DIR points.
DATA_DIR = Path(os.environ.get("FASTMLP_DATA_DIR",
                               Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture
def data_dir():
    return DATA_DIR


def data_file(name):
    """Path of a shared data file, or skip the test (with the reason) when it is absent."""
    p = DATA_DIR / name
    if not p.exists():
        pytest.skip(f"real SDSS data file {p} is absent (set FASTMLP_DATA_DIR)")
    return p
