"""The package's structure, checked from its source with `ast` (no model, no import of qa):
the rooms (qa's top-level modules and packages) import each other only down the floor order of
docs/architecture.md, without cycles; function-level imports of project modules are kept to
the one module that needs them; no function is longer than a screen (60 lines)."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "qa"

# The floor order of docs/architecture.md, bottom first: the shared records and settings, the
# stages in flow order, the pipeline, then the tools that use it. A room imports only rooms
# listed before it.
FLOORS: tuple[str, ...] = (
    # foundation: the package's own __init__ (version, offline switches), then records and settings
    "qa",
    "errors",
    "names",
    "types",
    "resources",
    "loading",
    "config",
    # the stages, in flow order
    "ingest",
    "index",
    "retrieval",
    "reader",
    "answer",
    # the one object that runs them
    "pipeline",
    # the tools on top
    "eval",
    "training",
    "serve",
    "cluster",
    "cli",
)

# Arrows that run back up the floors, each named in docs/architecture.md (at most 2).
ALLOWED_BACK_ARROWS: frozenset[tuple[str, str]] = frozenset()

# Modules whose functions may import project modules, and why.
FUNCTION_LEVEL_IMPORTS_ALLOWED = {
    # Each command imports what it runs: `qa --help` takes 0.08 s instead of 0.8 s, and only
    # `--ray` commands import Ray (an optional extra).
    "qa.cli",
}

# Functions allowed over 60 lines: none.
LONG_FUNCTIONS_ALLOWED: set[tuple[str, str]] = set()
LONG_FUNCTION_MODULES_ALLOWED: set[str] = set()
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(module: str) -> str:
    """The room a module stands in: `qa.index.store` -> "index", `qa.config` -> "config", `qa` -> "qa"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def sources(package: Path = PACKAGE) -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(package.rglob("*.py"))}


def imports_of(module: str, tree: ast.Module, is_package: bool) -> list[tuple[str, bool]]:
    """The qa modules `module` imports, each with whether the import is inside a function."""
    in_function = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(fn)
    }
    found: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from qa.index import store` imports the module qa.index.store
            targets = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        found.extend((t, id(node) in in_function) for t in targets if t == "qa" or t.startswith("qa."))
    return found


def import_graph(trees: dict[str, ast.Module]) -> list[tuple[str, str, bool]]:
    """(importer, imported, inside a function) for every import of one qa module by another."""
    edges = []
    for module, tree in trees.items():
        is_package = (PACKAGE.parent / module.replace(".", "/") / "__init__.py").is_file()
        for target, in_function in imports_of(module, tree, is_package):
            while target not in trees and "." in target:  # a name imported from a module
                target = target.rsplit(".", 1)[0]
            if target in trees and target != module:
                edges.append((module, target, in_function))
    return edges


def room_arrows(edges: list[tuple[str, str, bool]]) -> dict[str, set[str]]:
    arrows: dict[str, set[str]] = defaultdict(set)
    for src, dst, _ in edges:
        if room_of(src) != room_of(dst):
            arrows[room_of(src)].add(room_of(dst))
    return arrows


def find_cycle(arrows: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the rooms along it (first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(arrows.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(arrows):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def back_arrows(arrows: dict[str, set[str]], floors: tuple[str, ...] = FLOORS) -> set[tuple[str, str]]:
    level = {room: i for i, room in enumerate(floors)}
    return {(src, dst) for src, dsts in arrows.items() for dst in dsts if level[dst] > level[src]}


def long_functions(trees: dict[str, ast.Module], limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    """(module, qualified name, lines) of every function, method or nested function over `limit` lines."""
    found = []

    def walk(module: str, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                walk(module, child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                if lines > limit:
                    found.append((module, prefix + child.name, lines))
                walk(module, child, f"{prefix}{child.name}.")
            else:
                walk(module, child, prefix)

    for module, tree in trees.items():
        walk(module, tree, "")
    return found


@pytest.fixture(scope="module")
def trees() -> dict[str, ast.Module]:
    return sources()


@pytest.fixture(scope="module")
def edges(trees: dict[str, ast.Module]) -> list[tuple[str, str, bool]]:
    return import_graph(trees)


def test_every_room_has_a_floor(trees: dict[str, ast.Module]) -> None:
    rooms = {room_of(m) for m in trees}
    assert rooms == set(FLOORS), f"without a floor: {rooms - set(FLOORS)}; floors without a room: {set(FLOORS) - rooms}"


def test_no_import_cycle_between_rooms(edges: list[tuple[str, str, bool]]) -> None:
    assert find_cycle(room_arrows(edges)) is None


def test_arrows_run_down_the_floors(edges: list[tuple[str, str, bool]]) -> None:
    assert len(ALLOWED_BACK_ARROWS) <= 2
    up = back_arrows(room_arrows(edges))
    where = sorted((s, d) for s, d, _ in edges if (room_of(s), room_of(d)) in up - ALLOWED_BACK_ARROWS)
    assert up <= ALLOWED_BACK_ARROWS, f"imports running back up the floors: {where}"


def test_function_level_project_imports_only_where_allowed(edges: list[tuple[str, str, bool]]) -> None:
    hidden = sorted((s, d) for s, d, in_function in edges if in_function and s not in FUNCTION_LEVEL_IMPORTS_ALLOWED)
    assert not hidden, f"project modules imported inside functions: {hidden}"


def test_no_function_over_a_screen(trees: dict[str, ast.Module]) -> None:
    too_long = [
        (module, name, lines)
        for module, name, lines in long_functions(trees)
        if (module, name) not in LONG_FUNCTIONS_ALLOWED and module not in LONG_FUNCTION_MODULES_ALLOWED
    ]
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_allow_lists_name_what_exists(trees: dict[str, ast.Module]) -> None:
    everything = {(module, name) for module, name, _ in long_functions(trees, limit=0)}
    assert LONG_FUNCTIONS_ALLOWED <= everything
    assert LONG_FUNCTION_MODULES_ALLOWED | FUNCTION_LEVEL_IMPORTS_ALLOWED <= set(trees)


# The checker itself, on made-up code: each check fails when its property breaks.


def test_checker_finds_a_cycle_and_a_back_arrow() -> None:
    arrows = {"index": {"errors", "reader"}, "reader": {"index"}}
    assert find_cycle(arrows) == ["index", "reader", "index"]
    assert find_cycle({"reader": {"index"}, "index": {"errors"}}) is None
    assert back_arrows(arrows) == {("index", "reader")}


def test_checker_sees_function_level_and_relative_imports() -> None:
    tree = ast.parse("from . import store\nimport numpy\n\ndef f():\n    from qa.models import x\n")
    assert imports_of("qa.index.lexical_index", tree, is_package=False) == [
        ("qa.index", False),
        ("qa.index.store", False),
        ("qa.models", True),
        ("qa.models.x", True),
    ]


def test_checker_measures_methods_and_nested_functions() -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(60))
    tree = ast.parse(f"class A:\n    def m(self):\n{body}\n\ndef short():\n    pass\n")
    assert long_functions({"qa.x": tree}) == [("qa.x", "A.m", 61)]
