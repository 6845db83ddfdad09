"""The layout's import rules: backend is pure (no torch, no bpy); the add-on never imports torch."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "backend": {"torch", "bpy", "training", "blender_addon", "piper", "pocketsphinx"},
    "training": {"bpy", "blender_addon"},
    "blender_addon": {"torch", "training", "piper", "pocketsphinx"},   # piper-tts is GPL-3: training only
}


def imported_roots(path: Path) -> set:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_respect_the_layout(package):
    files = sorted((REPO / package).rglob("*.py"))
    assert files, f"{package}/ has no Python files"
    offenders = {str(f.relative_to(REPO)): sorted(imported_roots(f) & FORBIDDEN[package]) for f in files}
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_importing_every_backend_module_loads_no_torch_or_bpy():
    modules = [".".join(p.relative_to(REPO).with_suffix("").parts) for p in (REPO / "backend").rglob("*.py")
               if p.name != "__main__.py"]
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in ('torch', 'bpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def module_imports(package: str) -> dict:
    """{module: the package's modules it imports}, counting imports anywhere in a file (inside functions too)."""
    paths = {}
    for path in (REPO / package).rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in paths.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(paths)
                imported.update(submodules)   # `from package import module` depends on that module
                if len(submodules) < len(node.names):
                    imported.add(node.module)   # ...and on the package only for names defined in it
        graph[name] = {module for module in imported if module in paths and module != name}
    return graph


def import_circles(graph: dict) -> list:
    """Every set of modules that import each other round a circle (strongly connected components > 1)."""
    order, low, stack, circles = {}, {}, [], []

    def visit(module):
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in graph[module]:
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in order:
            visit(module)
    return circles


def test_import_circles_are_found():
    assert import_circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_anywhere():
    """backend, training and the add-on, imports inside functions included: a model never imports its trainer,
    a builder never imports what imports it."""
    graph = {}
    for package in ("backend", "training", "blender_addon"):
        graph.update(module_imports(package))
    assert import_circles(graph) == []
