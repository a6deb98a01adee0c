"""Every keras_gated module imports, and no two modules import each other in a circle.

The import graph is read from the source with `ast`: the imports a module
runs when it is imported (its top level, including `if` / `try` blocks
there; not those inside functions, which run later). An edge goes to the
most specific keras_gated module named: `from keras_gated.tasks import
runner` reaches `keras_gated.tasks.runner`, `from keras_gated.tasks import
DataError` reaches `keras_gated.tasks`.
"""

import ast
import importlib
import os

import pytest

PACKAGE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_gated")


def _module_files():
    found = {}
    for folder, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


MODULES = _module_files()


def _every_import(tree):
    """Import nodes anywhere, also inside functions (deferred imports)."""
    return (node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)))


def _top_level_imports(tree):
    """Import nodes that run at import time: not inside a def or a class body's methods."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])


def _package_of(module, path):
    return module if path.endswith("__init__.py") else module.rsplit(".", 1)[0]


def import_graph(imports=_top_level_imports):
    graph = {}
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read(), path)
        targets = set()
        for node in imports(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    package = _package_of(module, path).split(".")
                    package = package[: len(package) - node.level + 1]
                    base = ".".join(package + ([base] if base else []))
                names = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for name in names:
                while name and name not in MODULES:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
                    break
        graph[module] = targets
    return graph


def find_cycles(graph):
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# `__main__` modules run the command line when imported.
@pytest.mark.parametrize("module", sorted(m for m in MODULES if not m.endswith("__main__")))
def test_every_module_imports(module):
    importlib.import_module(module)


def test_no_import_cycles_among_keras_gated_modules():
    assert find_cycles(import_graph()) == []


def test_no_deferred_import_cycles_among_the_tasks_and_the_command_line():
    # A cycle through an import inside a function works, but the two modules
    # then cannot be read (or moved) one without the other; the captioning
    # task and its CLI module had one.
    graph = import_graph(_every_import)
    ours = {m for m in graph if m.startswith(("keras_gated.tasks", "keras_gated.cli"))}
    within = {m: graph[m] & ours for m in ours}
    assert find_cycles(within) == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
