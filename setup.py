"""Build hook for the optional C backend (metadata lives in pyproject.toml).

The cffi module fastmlp._fastmlp_c is built from csrc/ (see fastmlp/_build_ffi.py).  If it
cannot be built (no C compiler, no OpenMP...), the install still succeeds with a warning and
fastmlp runs on its Numba / NumPy backends: fastmlp.available_backends() says why "c" is
missing.  FASTMLP_REQUIRE_C=1 turns a failed build into an error instead.

The same build gives the package its C API for programs that embed fastmlp:
fastmlp/include/fastmlp.h and fastmlp/lib/libfastmlp.so, linked from the extension's object
files (no second compilation; see install_c_api in fastmlp/_build_ffi.py).  Optional like the
extension: a failure warns, FASTMLP_REQUIRE_C=1 makes it fatal.  Editable installs get them
in the source package directory, next to the extension.
"""

import importlib.util
import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

EXT = "fastmlp._fastmlp_c"
C_API = ("include", "lib")  # directories of the package that install_c_api fills


def _build_ffi():
    """fastmlp/_build_ffi.py by path (importing the package would need its dependencies)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastmlp", "_build_ffi.py")
    spec = importlib.util.spec_from_file_location("_fastmlp_build_ffi", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class OptionalBuildExt(build_ext):
    def _required(self):
        return os.environ.get("FASTMLP_REQUIRE_C", "").strip() not in ("", "0")

    def _warn(self, exc, what=None):
        msg = what or ("WARNING: the fastmlp C backend was not built ({}); "
                       "fastmlp will use its Numba/NumPy backends.")
        print(msg.format(f"{type(exc).__name__}: {exc}"), file=sys.stderr)

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
            return
        if ext.name == EXT:
            try:
                self._build_c_api(ext)
            except Exception as exc:  # noqa: BLE001
                if self._required():
                    raise
                self._warn(exc, "WARNING: fastmlp's C library for embedding (fastmlp/lib/"
                                "libfastmlp.so) was not built ({}); the Python package is fine.")

    def _build_c_api(self, ext):
        """Header and libfastmlp.so into the built package, from the extension's objects."""
        ffi = _build_ffi()
        srcs = [s for s in ext.sources if ffi.is_c_source(s)]
        objects = self.compiler.object_filenames(srcs, output_dir=self.build_temp)
        if not all(os.path.exists(o) for o in objects):  # extension up to date, objects gone
            objects = self.compiler.compile(
                srcs, output_dir=self.build_temp, macros=ext.define_macros,
                include_dirs=ext.include_dirs, extra_postargs=ext.extra_compile_args,
                depends=ext.depends)
        pkg = os.path.dirname(self.get_ext_fullpath(ext.name))
        ffi.install_c_api(self.compiler, objects, pkg, link_args=ext.extra_link_args,
                          libraries=ext.libraries)

    def _c_api_files(self, pkg):
        return [os.path.join(pkg, d, f) for d in C_API if os.path.isdir(os.path.join(pkg, d))
                for f in os.listdir(os.path.join(pkg, d))]

    def get_outputs(self):
        outputs = super().get_outputs()
        if not self.inplace:
            outputs += self._c_api_files(os.path.dirname(self.get_ext_fullpath(EXT)))
        return outputs

    def copy_extensions_to_source(self):
        """Editable / --inplace: the header and library go to the source package too."""
        super().copy_extensions_to_source()
        pkg = os.path.join(self.build_lib, *EXT.split(".")[:-1])  # where build_extension put them
        dest = self.get_finalized_command("build_py").get_package_dir("fastmlp")
        for path in self._c_api_files(pkg):
            target = os.path.join(dest, os.path.relpath(path, pkg))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.exists(target):
                os.remove(target)  # never rewrite a library a process has mapped
            self.copy_file(path, target, level=self.verbose)


setup(
    cffi_modules=["fastmlp/_build_ffi.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
)
