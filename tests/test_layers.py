"""The package's layers, checked from its source: imports only point down, and never in a
circle; the sandbox imports nothing from the client side.

Layers, bottom up (docs/DESIGN.md draws them): the foundation (``errors``, ``_files``,
``_resources``, ``_media``, ``_memory``, ``_slots``), ``wiro`` (the API), ``models`` (model
definitions), ``ledger`` (durable state and the folder's layout),
``manifest`` (YAML to jobs), ``engine`` (running), ``report`` (telling people), ``cli``, and the
package face (``__init__``). A module may import from its own layer or any layer below.
"""

from __future__ import annotations

import ast
from pathlib import Path

import batch_runner

PACKAGE = Path(batch_runner.__file__).resolve().parent
RANKS = {
    "errors": 0, "_files": 0, "_resources": 0, "_media": 0, "_memory": 0, "_slots": 0,
    "wiro": 1, "models": 2, "ledger": 3, "manifest": 4, "engine": 5, "report": 6, "cli": 7,
    "__init__": 8, "__main__": 8,
}  # fmt: skip
#: Upward imports that are deliberate: the run entry point starts the in-process sandbox on
#: request, and the CLI registers the sandbox's own subcommand.
ALLOWED = {("engine", "sandbox"), ("cli", "sandbox")}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, *, top_level_only: bool) -> set[str]:
    """Modules of the package that ``name`` imports (resolved to dotted names)."""
    tree = ast.parse(path.read_text("utf-8"))
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    if name in ("__init__", "__main__"):
        here = []
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and top_level_only:
            continue  # `if TYPE_CHECKING:` blocks never run
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and node.module.startswith("batch_runner"):
                target = node.module.removeprefix("batch_runner").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import x` may name a module
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in modules() else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("batch_runner."):
                    found.add(alias.name.removeprefix("batch_runner."))
    return {f for f in found if f}


def layer(module: str) -> str:
    return module.split(".")[0]


def test_imports_point_down_a_layer_never_up() -> None:
    wrong = []
    for name, path in modules().items():
        if layer(name) == "sandbox":
            continue
        for target in imports(name, path, top_level_only=False):
            a, b = layer(name), layer(target)
            if (a, b) in ALLOWED:
                continue
            assert a in RANKS and b in RANKS, f"{name} -> {target}: unknown layer"
            if RANKS[b] > RANKS[a]:
                wrong.append(f"{name} imports {target} (layer {b} above {a})")
    assert not wrong, "\n".join(wrong)


def test_the_sandbox_imports_nothing_from_the_client_side() -> None:
    outside = [
        f"{name} imports {target}"
        for name, path in modules().items()
        if layer(name) == "sandbox"
        for target in imports(name, path, top_level_only=False)
        if layer(target) != "sandbox"
    ]
    assert not outside, "\n".join(outside)


def test_no_import_cycles() -> None:
    graph = {n: imports(n, p, top_level_only=True) for n, p in modules().items()}
    graph = {n: {t for t in targets if t in graph and t != n} for n, targets in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_public_api_names_resolve() -> None:
    for name in batch_runner.__all__:
        assert getattr(batch_runner, name) is not None, name
    assert "run" in batch_runner.__all__ and "load_manifest" in batch_runner.__all__
