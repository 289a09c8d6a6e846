"""cffi out-of-line (API mode) builder of the C backend: ``fastmlp._fastmlp_c``.

The cdef is the text of ``csrc/fastmlp.h`` between its ``FASTMLP_CDEF_BEGIN`` and
``FASTMLP_CDEF_END`` marks with preprocessor lines removed (the header stays the single
source of truth, as in argon2-cffi / pymunk); the sources are ``csrc/*.c``.

Flags: ``-O3 -march=native -fvisibility=hidden`` by default (the header's FASTMLP_API
functions are the only exported symbols); environment switches:
  FASTMLP_PORTABLE=1   no -march=native (a binary that runs on any CPU of the architecture)
  FASTMLP_NO_OPENMP=1  no OpenMP (single-threaded kernels)
  FASTMLP_CFLAGS="..." extra compiler flags appended at the end

The same objects also make the C API of the installed package (``install_c_api``):
``fastmlp/include/fastmlp.h`` (a copy of csrc/fastmlp.h, the only public header) and
``fastmlp/lib/libfastmlp.so``, a plain shared library (libm and the OpenMP runtime, no
Python) linked from the extension's own object files: the same kernels, the same flags, no
second compilation.  ``fastmlp.c_config`` finds them for a C build.

Run by ``pip install`` through ``setup.py``'s ``cffi_modules``; ``python
fastmlp/_build_ffi.py`` rebuilds the module, header and library in place (for work on csrc/).
"""

import glob
import os
import platform
import re
import sys

from cffi import FFI

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
HEADER = os.path.join(CSRC, "fastmlp.h")
# what a C user needs: fastmlp.h includes only <stdint.h> (typedefs.h, internal.h are private)
PUBLIC_HEADERS = ("fastmlp.h",)
LIBRARY = "fastmlp"


def _flag(name):
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def cdef_lines(text):
    """A header region as cffi's cdef takes it: without preprocessor lines and without the
    FASTMLP_API export marks (each on its own line before a declaration; cffi does not
    expand macros)."""
    return "\n".join(ln for ln in text.splitlines()
                     if not ln.lstrip().startswith("#") and ln.strip() != "FASTMLP_API")


def read_cdef(path=HEADER):
    """The cdef text: the marked region of the header (cdef_lines)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"FASTMLP_CDEF_BEGIN.*?\*/(.*)/\*\s*FASTMLP_CDEF_END", text, re.S)
    if m is None:
        raise RuntimeError(f"{path}: FASTMLP_CDEF_BEGIN / FASTMLP_CDEF_END marks not found")
    return cdef_lines(m.group(1))


def compile_args():
    # -fvisibility=hidden: only the header's FASTMLP_API functions are exported (from the
    # extension and libfastmlp); the internal fm_* kernels stay private
    args = ["-O3", "-std=c99", "-ffp-contract=off", "-fno-math-errno", "-fvisibility=hidden"]
    link = []
    if not _flag("FASTMLP_PORTABLE") and platform.machine().lower() in (
            "x86_64", "amd64", "i686", "i386", "aarch64", "arm64", "ppc64le"):
        args.append("-march=native" if platform.machine().lower() in
                    ("x86_64", "amd64", "i686", "i386") else "-mcpu=native")
    if _flag("FASTMLP_NO_OPENMP"):
        args.append("-fopenmp-simd")
    else:
        args.append("-fopenmp")
        link.append("-fopenmp")
    args += os.environ.get("FASTMLP_CFLAGS", "").split()
    return args, link


def _rel(path):
    # setuptools wants source paths relative to the setup.py directory when it can
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def make_builder(relative=True):
    """The FFI builder; source paths relative to the cwd (as setuptools prefers) or absolute."""
    fix = _rel if relative else (lambda p: p)
    builder = FFI()
    builder.cdef(read_cdef())
    cargs, largs = compile_args()
    builder.set_source(
        "fastmlp._fastmlp_c",
        '#include "fastmlp.h"',
        sources=[fix(p) for p in sorted(glob.glob(os.path.join(CSRC, "*.c")))],
        include_dirs=[fix(CSRC)],
        extra_compile_args=cargs,
        extra_link_args=largs,
        libraries=[] if sys.platform == "win32" else ["m"],
    )
    return builder


def is_c_source(path):
    """A csrc/*.c source of the extension (not the cffi-generated module)."""
    return os.path.dirname(os.path.abspath(path)) == CSRC


# The exported symbols of libfastmlp on a GNU linker: the header's functions only.
# -fvisibility=hidden hides the fm_* kernels but not the OpenMP runtime's lock variables
# of named critical sections (.gomp_critical_user_*, common symbols the compiler emits).
VERSION_SCRIPT = "{ global: fastmlp_*; local: *; };\n"


def _export_args(build_dir):
    """Linker flags that export only the public API (Linux: a version script written to
    build_dir), or none where the linker has no version scripts."""
    if not sys.platform.startswith("linux"):
        return []
    path = os.path.join(build_dir, "libfastmlp.map")
    with open(path, "w", encoding="ascii") as f:
        f.write(VERSION_SCRIPT)
    return ["-Wl,--version-script=" + path]


def install_c_api(compiler, objects, package_dir, link_args=(), libraries=("m",)):
    """Copy the public header(s) to ``package_dir/include`` and link ``objects`` (the
    compiled csrc/*.c of the extension) into ``package_dir/lib/libfastmlp.so``.

    ``compiler`` is the distutils compiler that built the extension.  Returns the library's
    path.  Raises (the caller decides whether a failure is fatal) on a link error or on a
    platform without a plain shared library (Windows: not supported yet)."""
    import shutil
    objects = list(objects)
    missing = [o for o in objects if not os.path.isfile(o)]
    if not objects or missing:
        raise RuntimeError(f"no object files to link libfastmlp from ({missing or 'none given'})")
    inc = os.path.join(package_dir, "include")
    os.makedirs(inc, exist_ok=True)
    for name in PUBLIC_HEADERS:
        shutil.copy2(os.path.join(CSRC, name), os.path.join(inc, name))
    if sys.platform == "win32":
        raise RuntimeError("libfastmlp is not built on Windows (no .dll export list yet)")
    lib_dir = os.path.join(package_dir, "lib")
    os.makedirs(lib_dir, exist_ok=True)
    name = compiler.library_filename(LIBRARY, lib_type="shared")  # libfastmlp.so / .dylib
    soname = ("-Wl,-install_name,@rpath/" if sys.platform == "darwin" else "-Wl,-soname,") + name
    # unlink first: a process may have the old one mapped (rewriting it in place would crash it)
    out = os.path.join(lib_dir, name)
    if os.path.exists(out):
        os.remove(out)
    compiler.link_shared_object(objects, name, output_dir=lib_dir,
                                libraries=list(libraries),
                                extra_postargs=list(link_args) + [soname] +
                                _export_args(os.path.dirname(os.path.abspath(objects[0]))),
                                target_lang="c")
    return out


ffibuilder = make_builder()

if __name__ == "__main__":
    # Build in place: the module lands next to fastmlp/__init__.py.
    import shutil
    tmp = os.path.join(ROOT, "csrc", "build", "cffi")
    so = make_builder(relative=False).compile(tmpdir=tmp, verbose=False)
    dest = os.path.join(ROOT, "fastmlp", os.path.basename(so))
    for old in glob.glob(os.path.join(ROOT, "fastmlp", "_fastmlp_c*.so")):
        os.remove(old)  # one build only (an abi3 one from pip would shadow or be shadowed)
    shutil.copy2(so, dest)
    print("built", dest)
    # the C API from the same objects (cffi compiled them under tmp, at their absolute path)
    import setuptools  # noqa: F401  (provides distutils on Python >= 3.12)
    from distutils.ccompiler import new_compiler
    from distutils.sysconfig import customize_compiler
    cc = new_compiler()
    customize_compiler(cc)
    srcs = sorted(glob.glob(os.path.join(CSRC, "*.c")))
    lib = install_c_api(cc, cc.object_filenames(srcs, output_dir=tmp),
                        os.path.join(ROOT, "fastmlp"), link_args=compile_args()[1])
    print("built", lib)
