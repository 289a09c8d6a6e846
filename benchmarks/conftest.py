"""pytest configuration for the kernel benchmarks (``pytest benchmarks/ --benchmark-only``).

Collects the pytest-benchmark files listed in PYTEST_FILES (the default pattern only takes
``test_*.py``; the other scripts here, e.g. bench_scaling.py, are run directly), fixes the
thread count for fastmlp and for NumPy's BLAS (FASTMLP_BENCH_THREADS, default 2), and
registers the ``big`` marker (1e7-parameter cases: ``-m "not big"`` leaves them out).
"""

import os

import pytest

THREADS = int(os.environ.get("FASTMLP_BENCH_THREADS", "2"))
PYTEST_FILES = ("bench_kernels.py",)


def pytest_configure(config):
    config.addinivalue_line("markers", "big: 1e7-parameter cases (slow for the NumPy backend)")


def pytest_collect_file(file_path, parent):
    if file_path.name in PYTEST_FILES and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session", autouse=True)
def _fixed_threads():
    import fastmlp
    from threadpoolctl import threadpool_limits
    fastmlp.set_num_threads(THREADS)
    with threadpool_limits(limits=THREADS):
        yield
