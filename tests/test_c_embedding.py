"""A C program built against the *installed* package's C API (fastmlp.c_config): the header
fastmlp/include/fastmlp.h and the library fastmlp/lib/libfastmlp.so, found by the helper's
flags, no source tree needed.  It loads a model file written by fastmlp.io.write_c_model and
must print model.predict_proba's numbers (float32: 1e-6 relative).

Skips only without a C compiler or in an install without the C backend (the header and the
library come from the same optional build as the extension); with the extension built, or
with FASTMLP_REQUIRE_C=1, a missing header or library fails.
"""

import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import c_config
from fastmlp.io import write_c_model

CC = os.environ.get("CC", "cc")

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include "fastmlp.h"

/* argv: model file, n rows, raw features (n x d float64), probabilities out (n x k float64) */
int main(int argc, char **argv)
{
    fastmlp_model *m;
    if (argc != 5) return 2;
    int st = fastmlp_model_load(argv[1], &m);
    if (st) { fprintf(stderr, "load: %s\n", fastmlp_model_strerror(st)); return 1; }
    /* a kernel entry point, and the standalone library's BLAS state: none handed in */
    if (fastmlp_set_num_threads(1) || fastmlp_has_gemm() != 0) return 3;
    long n = atol(argv[2]);
    long d = (long)fastmlp_model_n_inputs(m), k = (long)fastmlp_model_n_classes(m);
    double *x = malloc(sizeof(double) * n * d), *p = malloc(sizeof(double) * n * k);
    FILE *f = fopen(argv[3], "rb");
    if (!x || !p || !f || fread(x, sizeof(double), n * d, f) != (size_t)(n * d)) return 4;
    fclose(f);
    st = fastmlp_model_predict_proba(m, x, n, p);
    if (st) { fprintf(stderr, "predict: %s\n", fastmlp_strerror(st)); return 1; }
    f = fopen(argv[4], "wb");
    if (!f || fwrite(p, sizeof(double), n * k, f) != (size_t)(n * k)) return 5;
    fclose(f);
    printf("%ld %ld\n", d, k);
    fastmlp_model_free(m);
    free(x);
    free(p);
    return 0;
}
"""


def _skip_reason():
    if shutil.which(CC) is None:
        return f"no C compiler ({CC}) on PATH"
    required = os.environ.get("FASTMLP_REQUIRE_C", "").strip() not in ("", "0")
    c_ok, why = fastmlp.available_backends()["c"]
    if not c_ok and not required:
        return f"the C backend (and so the C library) was not built in this install: {why}"
    return None


@pytest.fixture(scope="module")
def flags():
    """``python -m fastmlp.c_config --cflags --libs``, split; fails if a file is missing."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    res = subprocess.run([sys.executable, "-m", "fastmlp.c_config", "--cflags", "--libs"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"fastmlp.c_config failed:\n{res.stderr}"
    assert "RuntimeWarning" not in res.stderr, res.stderr
    return shlex.split(res.stdout)


def test_helpers_point_at_the_shipped_files(flags):
    inc, lib = fastmlp.c_include_dir(), fastmlp.c_library_path()
    assert os.path.isfile(os.path.join(inc, "fastmlp.h"))
    assert os.path.isfile(lib) and os.path.basename(lib) == c_config.LIBRARY
    assert flags == c_config.cflags() + c_config.libs()
    assert f"-I{inc}" in flags and "-lfastmlp" in flags
    assert f"-Wl,-rpath,{os.path.dirname(lib)}" in flags


@pytest.fixture(scope="module")
def program(flags, tmp_path_factory):
    """The program above, compiled and linked with the helper's flags only."""
    d = tmp_path_factory.mktemp("c_embedding")
    src, exe = d / "predict.c", d / "predict"
    src.write_text(PROGRAM)
    cmd = [CC, "-std=c99", "-O2", "-Wall", "-Werror"] + flags[:1] + \
          [str(src), "-o", str(exe)] + flags[1:]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr}"
    return exe


@pytest.mark.parametrize("n_out, loss, activation", [(3, "cross_entropy", "relu"),
                                                     (1, "bce", "tanh")])
def test_program_predicts_like_python(program, tmp_path, n_out, loss, activation):
    rng = np.random.default_rng(n_out)
    X = rng.normal(2.0, 3.0, size=(257, 4))
    classes = ["a", "b", "c"][:max(n_out, 2)]
    # untrained weights of a seed are enough (and fast); numpy: no JIT or tuning on the way
    model = fastmlp.MLP([4, 16, 8, n_out], activation=activation, dtype="float32", seed=3,
                        backend="numpy", loss=loss, class_names=classes,
                        standardization=(X.mean(axis=0), X.std(axis=0)))
    write_c_model(model, tmp_path / "m.fmlp")
    X.tofile(tmp_path / "x.bin")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}  # the rpath finds it
    res = subprocess.run([str(program), str(tmp_path / "m.fmlp"), str(len(X)),
                          str(tmp_path / "x.bin"), str(tmp_path / "p.bin")],
                         capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    assert res.returncode == 0, f"exit {res.returncode}: {res.stderr}"
    k = len(classes)
    assert res.stdout.split() == ["4", str(k)]
    got = np.fromfile(tmp_path / "p.bin").reshape(len(X), k)
    want = model.predict_proba(X)
    assert want.shape == got.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


def test_missing_library_is_named(tmp_path, monkeypatch):
    """An install without the library: the helpers say which file is missing (no compiler
    needed for this one)."""
    monkeypatch.setattr(c_config, "_PKG", str(tmp_path / "fastmlp"))
    with pytest.raises(c_config.CLibraryMissing, match=r"lib[/\\]libfastmlp"):
        c_config.c_library_path()
    with pytest.raises(c_config.CLibraryMissing, match="FASTMLP_REQUIRE_C=1"):
        c_config.libs()
    with pytest.raises(c_config.CLibraryMissing, match=r"include[/\\]fastmlp\.h"):
        c_config.c_include_dir()
