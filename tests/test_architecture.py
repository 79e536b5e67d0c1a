"""The shape of the house (issue 17): no import circles, no over-long functions, Streamlit only in the UI.

Read from the source with :mod:`ast` — nothing is imported — so every import
counts: module level, inside functions and under ``TYPE_CHECKING`` alike (an
import hidden in a function is still a dependency, and a circle hidden that
way is still a circle).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "medlim"

#: Import circles being taken apart by others right now, each listed with both ends as
#: modules. Remove an entry as soon as its circle is gone, so that it cannot come back.
ALLOWED_CYCLES: set[frozenset[str]] = set()

#: Longest function, in lines from ``def`` to its last line (docstring included).
MAX_FUNCTION_LINES = 80

#: Functions still longer than that, as ``path::qualified.name``, each with its reason.
#: Remove an entry as soon as its function is split.
ALLOWED_LONG_FUNCTIONS: dict[str, str] = {
    # A database migration is a frozen record of one schema step: it is never edited, only superseded.
    "medlim/core/store/migrations/versions/0001_initial.py::upgrade": "migration",
}

#: Where ``streamlit`` may be imported.
STREAMLIT_PLACES = ("medlim/ui/", "pages/", "app.py")


def _python_files(*roots: Path) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(tree: ast.Module, module: str, *, is_package: bool) -> Iterator[tuple[str, str | None]]:
    """``(source, name)`` for every ``from source import name``, ``(source, None)`` for every ``import source``
    (relative imports made absolute)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                yield source, alias.name


def import_graph() -> dict[str, set[str]]:
    """``module → medlim modules it imports`` for every module under ``medlim/``.

    ``from medlim.x import y`` is an edge to ``medlim.x.y`` when that is a module,
    else to ``medlim.x`` (the module, or the package's ``__init__``, that holds ``y``).
    """
    files = {_module_name(path): path for path in _python_files(PACKAGE)}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for source, name in _imports(tree, module, is_package=path.name == "__init__.py"):
            if name is not None and f"{source}.{name}" in files:
                targets.add(f"{source}.{name}")
            elif source in files:
                targets.add(source)
        targets.discard(module)
        graph[module] = targets
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components with more than one module (iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(component)
    return components


def test_cycle_finder_on_a_hand_made_graph() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert sorted(map(sorted, strongly_connected(graph))) == [["a", "b", "c"], ["e", "f"]]


def test_import_graph_resolves_from_imports_to_modules() -> None:
    graph = import_graph()
    # dicom.py: ``from medlim.errors import ParameterError`` (a name in a module) → medlim.errors;
    # mammogram.py: ``from medlim.phantoms.dicom import style_for`` → medlim.phantoms.dicom.
    assert {"medlim.errors", "medlim.phantoms.mammogram_records"} <= graph["medlim.phantoms.dicom"]
    assert "medlim.phantoms.dicom" in graph["medlim.phantoms.mammogram"]
    # ``from medlim.core.weights import Registry`` is a name in the package: an edge to its __init__.
    assert "medlim.core.weights" in graph["medlim.mammography.recipe"]
    # A function-level import counts as much as a module-level one.
    assert "medlim.microscopy.steatosis.inference" in graph["medlim.microscopy.steatosis.evaluation"]
    assert all(target.startswith("medlim") for targets in graph.values() for target in targets)


def test_no_import_cycles() -> None:
    unexpected = []
    for component in strongly_connected(import_graph()):
        # Allowed only when the circle is made of allowed pairs and nothing else.
        allowed = set().union(*(pair for pair in ALLOWED_CYCLES if pair <= component))
        if allowed != component:
            unexpected.append(sorted(component))
    assert not unexpected, f"import cycles among medlim modules: {unexpected}"


def _functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + child.name, child
                yield from walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from walk(child, f"{prefix}{child.name}.")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def long_functions() -> dict[str, int]:
    """``path::qualified.name → lines`` of every function under ``medlim/``, ``pages/`` and ``app.py`` over the limit."""
    found = {}
    for path in _python_files(PACKAGE, ROOT / "pages", ROOT / "app.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, node in _functions(tree):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                found[f"{path.relative_to(ROOT).as_posix()}::{name}"] = lines
    return found


def test_no_function_is_too_long() -> None:
    too_long = {name: lines for name, lines in long_functions().items() if name not in ALLOWED_LONG_FUNCTIONS}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps): {too_long}"


def test_streamlit_only_in_the_ui() -> None:
    offenders = []
    for path in _python_files(PACKAGE):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith(STREAMLIT_PLACES):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        sources = {source for source, _ in _imports(tree, _module_name(path), is_package=path.name == "__init__.py")}
        if any(source == "streamlit" or source.startswith("streamlit.") for source in sources):
            offenders.append(relative)
    assert not offenders, f"streamlit imported outside medlim/ui/, pages/ and app.py: {offenders}"
