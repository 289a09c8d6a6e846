"""fork() after the C and Numba backends have run multi-threaded: the children of a
multiprocessing Pool (fork start method, the Linux default before Python 3.14) must finish
their work, on one thread with one warning, instead of hanging in libgomp (C) or being
terminated by Numba.  The scenario runs in a subprocess with a timeout, so a hang fails the
test instead of hanging CI."""

import os
import subprocess
import sys
import textwrap

import pytest

from fastmlp import backends

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")

SCRIPT = textwrap.dedent(r"""
    import collections, multiprocessing as mp, os, sys, warnings
    import numpy as np
    from fastmlp import backends, codes

    NAMES = sys.argv[1].split(",")

    def epoch(name):
        rng = np.random.default_rng(3)
        sizes, acts = np.array([4, 32, 2]), np.array([1, 0])
        n_params = 4 * 32 + 32 + 32 * 2 + 2
        x = rng.standard_normal((600, 4))
        y = (x[:, :1] > 0).astype(np.float64)
        params = rng.standard_normal(n_params) * 0.3
        state = np.zeros((3, n_params))
        done = backends.get_backend(name).train_epoch(
            params, np.zeros(n_params), state, np.zeros(5), x, y, np.ones(600),
            rng.permutation(600), 128, np.full(5, 1e-2), 0, codes.optimizer_code("adam"),
            codes.hyper_vector("adam"), sizes, acts, codes.loss_code("cross_entropy"))
        assert done == 5
        return params

    def work(i):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = {name: epoch(name) for name in NAMES}
            out["numpy"] = epoch("numpy")
        return out, [str(w.message) for w in caught], os.getpid()

    if __name__ == "__main__":
        with backends.threads(2):                  # start the OpenMP threads in the parent
            parent = {name: epoch(name) for name in NAMES}
        with backends.threads(1):
            parent1 = {name: epoch(name) for name in NAMES}
        pool = mp.get_context("fork").Pool(2)
        try:
            results = pool.map_async(work, range(4)).get(timeout=120)
        finally:
            pool.terminate()
        warned = collections.Counter()
        for out, msgs, pid in results:
            for name in NAMES:
                if name == "c":   # one thread in the child: exactly the parent's 1-thread run
                    assert np.array_equal(out[name], parent1[name]), name
                else:             # numba runs the reference there
                    assert np.allclose(out[name], parent1[name], rtol=1e-10, atol=1e-12), name
            assert np.allclose(out["numpy"], parent1["c" if "c" in NAMES else NAMES[0]],
                               rtol=1e-10, atol=1e-12)
            warned[pid] += sum("forked after OpenMP threads" in m for m in msgs)
        assert set(warned.values()) == {1}, warned   # warned, once per child process
        # the parent itself is unaffected and still multi-threaded
        with backends.threads(2):
            again = {name: epoch(name) for name in NAMES}
        for name in NAMES:
            assert np.array_equal(again[name], parent[name]), name
        print("FORK-OK")
""")


def test_pool_map_after_multithreaded_c_and_numba(tmp_path):
    names = [n for n in ("c", "numba") if backends.available_backends()[n][0]]
    if not names:
        pytest.skip("neither the C nor the Numba backend is available")
    script = tmp_path / "fork_scenario.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(backends.__file__.rsplit(os.sep, 1)[0]))]
        + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    try:
        proc = subprocess.run([sys.executable, str(script), ",".join(names)], env=env,
                              capture_output=True, text=True, timeout=240)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the fork scenario hung (killed after {exc.timeout} s)")
    assert proc.returncode == 0 and "FORK-OK" in proc.stdout, proc.stdout + proc.stderr
    assert "Terminating: fork() called" not in proc.stderr
