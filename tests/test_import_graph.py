"""The layout of the package: no import cycle between its modules (module-level imports, as
written), and no function-local imports in training/ (dependencies visible at the top)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"tfpot": "tfpot", "tfpot.training": "training", "tfpot.calculators": "calculators"}


def _modules():
    out = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = [p for p in path.relative_to(ROOT / folder).with_suffix("").parts
                     if p != "__init__"]
            out[".".join([package] + parts)] = path
    return out


def _imports(path, names):
    deps = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tfpot"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                deps.add(full if full in names else node.module)
        elif isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name.startswith("tfpot")}
    return deps & set(names)


def _cycles(graph):
    """Every cycle a depth-first walk of ``{module: {modules it imports}}`` meets."""
    cycles, done = [], set()

    def visit(node, stack):
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep in stack:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, stack)
        stack.pop()
        done.add(node)

    for name in sorted(graph):
        if name not in done:
            visit(name, [])
    return cycles


def test_no_import_cycles():
    modules = _modules()
    packages = {n for n, p in modules.items() if p.name == "__init__.py"}  # re-exports only
    graph = {n: _imports(p, modules) - packages for n, p in modules.items() if n not in packages}
    assert len(graph) > 50 and graph["tfpot.training.loop"]  # the walk sees the package
    assert not _cycles(graph), _cycles(graph)


def test_negative_control_a_cycle_is_found(tmp_path):
    a, b, c = tmp_path / "a.py", tmp_path / "b.py", tmp_path / "c.py"
    a.write_text("from tfpot.b import x\n")
    b.write_text("import tfpot.c\n")
    c.write_text("from tfpot import a\n")
    names = {"tfpot.a": a, "tfpot.b": b, "tfpot.c": c}
    graph = {n: _imports(p, names) for n, p in names.items()}
    assert _cycles(graph) == [["tfpot.a", "tfpot.b", "tfpot.c", "tfpot.a"]]


def test_no_function_local_imports_in_training():
    local = []
    for path in sorted((ROOT / "training").glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local += [f"{path.name}:{n.lineno}" for n in ast.walk(fn)
                          if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert not local, local
