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
