"""The import drawing of keras_er and benchmarks: no circles (function-local imports included); the library
never imports the app."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _modules(package="keras_er"):
    modules = {}
    for path in (REPO / package).rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports(module, path, modules):
    """The keras_er modules `module` imports, at any depth of its code (parent packages left out)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            top = module.split(".")[0]
            if name.startswith(top + ".") and name != module and not module.startswith(name + "."):
                found.add(name)
    return found


def _graph(package="keras_er"):
    modules = _modules(package)
    return {module: _imports(module, path, modules) for module, path in modules.items()}


def _circles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return circles


@pytest.mark.parametrize("package, size", [("keras_er", 60), ("benchmarks", 10)])
def test_the_package_has_no_import_circles(package, size):
    graph = _graph(package)
    assert len(graph) > size and any(graph.values())
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_library_does_not_import_the_application():
    graph = _graph()
    library = [m for m in graph if not m.startswith("keras_er.app") and m != "keras_er.__main__"]
    assert [(m, sorted(graph[m])) for m in library if any(i.startswith("keras_er.app") for i in graph[m])] == []
