"""Build hook for the optional C backend (metadata lives in pyproject.toml).

The cffi module fastmlp._fastmlp_c is built from csrc/ (see fastmlp/_build_ffi.py).  If it
cannot be built (no C compiler, no OpenMP...), the install still succeeds with a warning and
fastmlp runs on its Numba / NumPy backends: fastmlp.available_backends() says why "c" is
missing.  FASTMLP_REQUIRE_C=1 turns a failed build into an error instead.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    def _required(self):
        return os.environ.get("FASTMLP_REQUIRE_C", "").strip() not in ("", "0")

    def _warn(self, exc):
        msg = (f"WARNING: the fastmlp C backend was not built ({type(exc).__name__}: {exc}); "
               "fastmlp will use its Numba/NumPy backends.")
        print(msg, file=sys.stderr)

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001  (any build failure: the backend is optional)
            if self._required():
                raise
            self._warn(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            if self._required():
                raise
            self._warn(exc)


setup(
    cffi_modules=["fastmlp/_build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
