"""The house rules, read from the source with `ast`: no import cycle between the package's modules (imports
inside functions count), no module over 450 lines and no function over 100 lines, in keras_tinynet/ and
benchmarks/; weights/ never reaches the model builders.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = "keras_tinynet"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 100
BUILDING_MODULES = ("keras_tinynet.models", "keras_tinynet.builder", "keras_tinynet.network", "keras_tinynet.convert")


def python_files(folder: str) -> list[pathlib.Path]:
    return sorted(path for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts)


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The package's modules `path` imports anywhere in it (module level or inside functions)."""
    own = module_name(path)
    package = own if path.name == "__init__.py" else own.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # `from package import module` imports the module; `from module import name` the module
            submodules = {f"{base}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {base})
    return {name for name in found if name in modules and name != own}


def import_graph() -> dict[str, set[str]]:
    paths = python_files(PACKAGE)
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, modules) for path in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
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
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    source = tmp_path / PACKAGE / "weights" / "loading.py"
    source.parent.mkdir(parents=True)
    source.write_text("def f():\n    from keras_tinynet import models\n    from . import registry\n")
    global ROOT
    root, ROOT = ROOT, tmp_path
    try:
        modules = {"keras_tinynet.models", "keras_tinynet.weights.registry", "keras_tinynet.weights.loading"}
        assert imported_modules(source, modules) == {"keras_tinynet.models", "keras_tinynet.weights.registry"}
    finally:
        ROOT = root


def test_no_import_cycle_between_the_package_modules():
    graph = import_graph()
    assert "keras_tinynet.presets" in graph["keras_tinynet.spec_resolver"]  # the graph sees the imports
    assert cycles(graph) == []


def test_weights_never_imports_the_model_builders():
    graph = import_graph()
    offenders = {
        module: sorted(graph[module] & set(BUILDING_MODULES))
        for module in graph
        if module.startswith("keras_tinynet.weights") and graph[module] & set(BUILDING_MODULES)
    }
    assert offenders == {}


@pytest.mark.parametrize("folder", [PACKAGE, "benchmarks"])
def test_no_module_over_450_lines(folder):
    long = {
        str(path.relative_to(ROOT)): n
        for path in python_files(folder)
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


@pytest.mark.parametrize("folder", [PACKAGE, "benchmarks"])
def test_no_function_over_100_lines(folder):
    long = {}
    for path in python_files(folder):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def test_no_globals_or_locals_tricks_in_the_package():
    calls = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in python_files(PACKAGE)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("locals", "vars")
        or isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", None) == "globals"
        and node.attr == "update"
    ]
    assert calls == []
