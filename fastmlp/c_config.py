"""Where an installed fastmlp keeps its C API, for the build of a C program that embeds it
(like ``numpy.get_include()``)::

    cc $(python -m fastmlp.c_config --cflags) prog.c $(python -m fastmlp.c_config --libs)

``fastmlp/include/fastmlp.h`` is the public header (a copy of csrc/fastmlp.h made at build
time) and ``fastmlp/lib/libfastmlp.so`` the kernels and the model-file loader as a plain
shared library (no Python), both written by the same build as the C backend
(``fastmlp/_build_ffi.py``).  ``--libs`` carries an rpath, so the program runs without
LD_LIBRARY_PATH.  Imports nothing else from fastmlp (the bottom layer).
"""

import argparse
import os
import shlex
import sys

_PKG = os.path.dirname(os.path.abspath(__file__))
LIBRARY = "libfastmlp.dylib" if sys.platform == "darwin" else "libfastmlp.so"


class CLibraryMissing(FileNotFoundError):
    """The header or the shared library is not in this install (the C build failed or was
    skipped); the message names the missing file and how to see why."""


def _why(path):
    return (f"{path} is missing: fastmlp's C library was not built in this install (no C "
            "compiler or OpenMP at install time, or an in-place build older than it).  "
            "Reinstall with FASTMLP_REQUIRE_C=1 to see the compiler error, or in a source "
            "checkout run `python fastmlp/_build_ffi.py`.")


def c_include_dir():
    """The directory to pass with ``-I``: it holds ``fastmlp.h``.  In a source checkout
    without a build, csrc/ (the header's source)."""
    for d in (os.path.join(_PKG, "include"), os.path.join(os.path.dirname(_PKG), "csrc")):
        if os.path.isfile(os.path.join(d, "fastmlp.h")):
            return d
    raise CLibraryMissing(_why(os.path.join(_PKG, "include", "fastmlp.h")))


def c_library_path():
    """The path of ``libfastmlp.so``, the shared library the header declares."""
    path = os.path.join(_PKG, "lib", LIBRARY)
    if not os.path.isfile(path):
        raise CLibraryMissing(_why(path))
    return path


def cflags():
    """Compiler flags: ``["-I<include dir>"]``."""
    return ["-I" + c_include_dir()]


def libs():
    """Linker flags: the library's directory, ``-lfastmlp`` and an rpath to that directory."""
    d = os.path.dirname(c_library_path())
    return ["-L" + d, "-lfastmlp", "-Wl,-rpath," + d]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastmlp.c_config",
                                description="Flags to build a C program against the "
                                            "installed fastmlp (fastmlp.h, libfastmlp).")
    p.add_argument("--cflags", action="store_true", help="compiler flags (-I...)")
    p.add_argument("--libs", action="store_true",
                   help="linker flags (-L... -lfastmlp -Wl,-rpath,...)")
    p.add_argument("--include-dir", action="store_true", help="the directory of fastmlp.h")
    p.add_argument("--library", action="store_true", help="the path of the shared library")
    args = p.parse_args(argv)
    if not (args.cflags or args.libs or args.include_dir or args.library):
        p.error("give --cflags, --libs, --include-dir or --library")
    try:
        out = ([c_include_dir()] if args.include_dir else []) + \
              ([c_library_path()] if args.library else []) + \
              (cflags() if args.cflags else []) + (libs() if args.libs else [])
    except CLibraryMissing as exc:
        print(f"fastmlp.c_config: {exc}", file=sys.stderr)
        return 1
    print(" ".join(shlex.quote(a) for a in out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
