"""The package's imports point down (DESIGN.md): no import cycle, including imports made
inside functions, and no module imports a layer above its own."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "fastmlp"

# lower number = lower layer; a module may import its own layer or below
LAYERS = {
    "fastmlp._version": 0, "fastmlp.codes": 0, "fastmlp._validate": 0, "fastmlp.atomic": 0,
    "fastmlp.features": 0, "fastmlp.progress": 0, "fastmlp._build_ffi": 0, "fastmlp.buffers": 0,
    "fastmlp.c_config": 0,
    "fastmlp.backends": 1, "fastmlp.numba_kernels": 1,
    "fastmlp.model": 2, "fastmlp.optim": 2, "fastmlp.schedules": 2, "fastmlp.metrics": 2,
    "fastmlp.data": 3, "fastmlp.io": 3,
    "fastmlp.training": 4,
    "fastmlp.plot": 5,
    "fastmlp.distributed": 6, "fastmlp.sklearn": 6, "fastmlp.cli": 6, "fastmlp.bench": 6,
    "fastmlp": 7,
}


def _module_name(path):
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(name, path, known):
    """Every fastmlp module that ``name`` imports anywhere in its source."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "fastmlp"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                mod = ".".join(base[:len(base) - node.level + 1] + (
                    node.module.split(".") if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "fastmlp":
                continue
            for a in node.names:       # `from pkg import submodule` imports the submodule
                sub = f"{mod}.{a.name}"
                if sub in known:
                    out.add(sub)
                elif not _compiled(sub):   # a compiled extension is no Python module
                    out.add(mod)
    return {m for m in out if m in known and m != name}


def _compiled(name):
    stem = PKG.parent.joinpath(*name.split("."))
    return any(p.suffix in (".so", ".pyd", ".c") for p in stem.parent.glob(stem.name + ".*"))


def _graph():
    known = _modules()
    return {n: _imports(n, p, known) for n, p in known.items()}


def _layer(name):
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        key = ".".join(parts[:k])
        if key in LAYERS:
            return LAYERS[key]
    raise KeyError(name)


def test_every_module_has_a_layer():
    missing = [n for n in _modules() if not any(
        n == k or n.startswith(k + ".") for k in LAYERS)]
    assert not missing, f"modules without a layer in LAYERS: {missing}"


def test_no_import_cycles():
    graph = _graph()
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_point_down():
    up = [f"{n} ({_layer(n)}) imports {m} ({_layer(m)})"
          for n, deps in _graph().items() for m in deps
          if _layer(m) > _layer(n) and not m.startswith(n + ".")]
    assert not up, "imports that point up:\n" + "\n".join(sorted(up))


@pytest.mark.parametrize("source, expected", [
    ("from .. import backends", {"fastmlp.backends"}),
    ("from ..model import MLP", {"fastmlp.model"}),
    ("def f():\n    from ..io import load\n", {"fastmlp.io"}),
])
def test_the_checker_sees_imports(source, expected, tmp_path):
    """The graph finds relative and function-level imports (so the tests above can fail)."""
    p = tmp_path / "probe.py"
    p.write_text(source)
    known = set(_modules())
    assert _imports("fastmlp.training.probe", p, known) == expected


def _code_lines(fn):
    """Lines of a function without its docstring."""
    n = fn.end_lineno - fn.lineno + 1
    first = fn.body[0] if fn.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        n -= first.end_lineno - first.lineno + 1
    return n


def test_functions_outside_the_kernels_stay_short():
    """No function above the kernel layer runs over 80 lines of code (docstring aside): one
    concept per function.  The kernels (backends/, numba_kernels.py) are exempt: a fused
    kernel is one long loop on purpose."""
    long = []
    for name, path in _modules().items():
        if name.startswith("fastmlp.backends") or name == "fastmlp.numba_kernels":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                    and _code_lines(node) > 80:
                long.append(f"{name}.{node.name}: {_code_lines(node)} lines")
    assert not long, "functions over 80 lines of code:\n" + "\n".join(long)


def _module_of(node, base):
    """The absolute module an ImportFrom node imports from."""
    if node.level:
        return ".".join(base[:len(base) - node.level + 1]
                        + (node.module.split(".") if node.module else []))
    return node.module or ""


def _private_names_imported(name, path, known):
    """(module, name) of every underscore-named function, class or constant that module
    ``name`` takes from another fastmlp module, anywhere in its source: imported by name
    (``from .fit import _x``, aliased or not) or read through a module
    (``from . import reference as ref; ref._x``).  Allowed: whole modules (``from . import
    _contract``), compiled extensions, and names of a private module of the importer's own
    package (backends/_nb_batched using backends/_nb_kernels)."""
    tree = ast.parse(path.read_text())
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]

    def private(mod, attr):
        own = mod.rsplit(".", 1)[-1].startswith("_") and mod.rsplit(".", 1)[0] == ".".join(base)
        return attr.startswith("_") and not attr.startswith("__") and not own

    out, modules = [], {}       # modules: local name -> the fastmlp module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update({a.asname: a.name for a in node.names if a.asname and a.name in known})
        if not isinstance(node, ast.ImportFrom):
            continue
        mod = _module_of(node, base)
        if mod.split(".")[0] != "fastmlp":
            continue
        for a in node.names:
            sub = f"{mod}.{a.name}"
            if sub in known:
                modules[a.asname or a.name] = sub
            elif private(mod, a.name) and not _compiled(sub):
                out.append((mod, a.name))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and private(modules[node.value.id], node.attr)):
            out.append((modules[node.value.id], node.attr))
    return out


def test_no_module_imports_another_modules_private_names():
    """A helper that sibling modules use is part of an interface: it has a public name (and
    a docstring), not an underscore one imported across modules (aliasing it on import
    hides the same thing)."""
    known = set(_modules())
    bad = [f"{n} imports {m}.{a}" for n, p in sorted(_modules().items())
           for m, a in _private_names_imported(n, p, known)]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


@pytest.mark.parametrize("source, expected", [
    ("from .fit import _check, fit", [("fastmlp.training.fit", "_check")]),
    ("def f():\n    from ..data.formats import _x as x\n", [("fastmlp.data.formats", "_x")]),
    ("from ..backends import _contract", []),
    ("from .loop import __all__", []),
    ("from ..backends import reference as ref\nref._u(1)\n",
     [("fastmlp.backends.reference", "_u")]),
    ("from .. import model\nmodel.MLP\n", []),
])
def test_the_private_import_checker_sees_names(source, expected, tmp_path):
    p = tmp_path / "probe.py"
    p.write_text(source)
    assert _private_names_imported("fastmlp.training.probe", p, set(_modules())) == expected
