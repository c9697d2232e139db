"""The package's folders are its layers, and its imports only point down: the front doors
(``api/``, ``kernel/``) use the engine (``engine/``), which uses the worker hosts (``hosts/``),
which use the sandbox (``sandbox/``); the shared vocabulary at the top level (errors, execution,
languages, metrics) is used by all and uses no layer; ``app.py`` (the owner) assembles them.
A front door imports the engine's package, never a module inside it (its public API). No
import circles; no module over 400 lines; few modules at the top. No Docker: the source is read."""

from __future__ import annotations

import ast
from pathlib import Path

import braindrill_ext

PACKAGE = Path(braindrill_ext.__file__).parent
LAYERS = {"api": 4, "kernel": 4, "engine": 3, "hosts": 2, "sandbox": 1}
SHARED = {"errors", "execution", "languages", "metrics"}
OWNER = {"app", "__init__"}


def modules() -> dict[str, Path]:
    """Dotted name (below braindrill_ext) → file, for every module but the in-container
    programs (which import nothing of the package)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if "container" in parts:
            continue
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path) -> set[str]:
    """The modules of the package that ``name`` imports (anywhere in it), as dotted names."""
    package = name.split(".")[:-1]
    known = modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "braindrill_ext"
            ):
                base = node.module.split(".")[1:]
            else:
                continue
        else:
            base = package[: len(package) - (node.level - 1)] + (node.module or "").split(".")
            base = [part for part in base if part]
        target = ".".join(base)
        for alias in node.names:
            candidate = f"{target}.{alias.name}" if target else alias.name
            if candidate in known:
                found.add(candidate)
            elif target in known:
                found.add(target)
            elif f"{target}.__init__" in known:
                found.add(f"{target}.__init__")
    return found


def layer(name: str) -> tuple[str, int]:
    top = name.split(".")[0]
    if top in LAYERS:
        return top, LAYERS[top]
    if top in SHARED:
        return top, 0
    return top, 5  # the owner


def test_imports_only_point_down():
    wrong = []
    for name, path in modules().items():
        folder, level = layer(name)
        for target in imports(name, path):
            to_folder, to_level = layer(target)
            if to_folder == folder or (folder in SHARED and to_folder in SHARED):
                continue
            if to_level >= level and not (level == 5):
                wrong.append(f"{name} → {target}")
            if folder in SHARED and to_folder not in SHARED:
                wrong.append(f"{name} → {target} (the shared vocabulary uses no layer)")
    assert wrong == [], "imports that do not point down:\n" + "\n".join(sorted(wrong))


def test_front_doors_use_the_engines_public_api():
    """api/ and kernel/ import ``braindrill_ext.engine`` (its ``__init__``), never a module
    inside it."""
    wrong = []
    for name, path in modules().items():
        if layer(name)[0] not in ("api", "kernel"):
            continue
        for target in imports(name, path):
            if target.startswith("engine.") and target != "engine.__init__":
                wrong.append(f"{name} → {target}")
    assert wrong == []


def test_no_import_circle():
    graph = {name: imports(name, path) for name, path in modules().items()}
    for name in graph:  # a package's __init__ re-exporting its own modules is not a circle
        if name.endswith("__init__"):
            prefix = name.removesuffix("__init__")
            graph[name] = {t for t in graph[name] if not t.startswith(prefix)}
    seen, path = set(), []

    def visit(node):
        if node in path:
            raise AssertionError("import circle: " + " → ".join([*path[path.index(node) :], node]))
        if node in seen:
            return
        path.append(node)
        for target in sorted(graph.get(node, ())):
            visit(target)
        path.pop()
        seen.add(node)

    for node in sorted(graph):
        visit(node)


def test_modules_are_small_and_few_at_the_top():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert long == {}, f"modules over 400 lines: {long}"
    top = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top) <= 12, top
