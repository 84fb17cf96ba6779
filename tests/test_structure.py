"""The package's shape, read from its source (nothing is imported): no import
cycles, no module over 600 lines, and the sans-IO seam — a module speaks h11
or wsproto, or it speaks trio, never both.

The renovation of issue 15 is under way: the modules that break a rule today
are listed below, each with the size it has now. A listed module may shrink
and must leave the list once it complies (the test says so); nothing new may
join, and a listed module may not grow."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trionet"
MAX_LINES = 600
PROTOCOL_LIBRARIES = {"h11", "httptools", "wsproto"}

# Modules still over MAX_LINES, with their line count when listed.
TOO_LONG: dict[str, int] = {}
# Modules that still drive h11/wsproto and trio together.
MIXED: set[str] = set()
# Import cycles still to break, each as its sorted members (none left).
CYCLES: set[tuple[str, ...]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> tuple[set[str], set[str]]:
    """The package's modules ``name`` imports (``TYPE_CHECKING`` and
    function-level imports too), and the outside top-level packages."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    inside: set[str] = set()
    outside: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from . import x" imports module x; "from .m import f", module m.
            submodules = [f"{module}.{alias.name}" for alias in node.names]
            targets = [t for t in submodules if t in known] or [module]
        for target in targets:
            if target in known:
                inside.add(target)
            elif target.split(".")[0] != "trionet":
                outside.add(target.split(".")[0])
    inside.discard(name)
    return inside, outside


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    found = modules()
    known = set(found)
    inside: dict[str, set[str]] = {}
    outside: dict[str, set[str]] = {}
    for name, path in found.items():
        inside[name], outside[name] = imports(name, path, known)
    return inside, outside


def strongly_connected(edges: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Tarjan's algorithm: the groups of modules that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(tuple(sorted(group)))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return groups


def test_no_new_import_cycle() -> None:
    inside, _ = graph()
    found = set(strongly_connected(inside))
    assert found <= CYCLES, f"new import cycles: {sorted(found - CYCLES)}"
    assert found == CYCLES, f"broken at last, take them off CYCLES: {sorted(CYCLES - found)}"


def test_no_module_speaks_trio_and_a_protocol_library() -> None:
    _, outside = graph()
    mixed = {
        name
        for name, packages in outside.items()
        if "trio" in packages and packages & PROTOCOL_LIBRARIES
    }
    assert mixed <= MIXED, f"new modules importing trio with h11/wsproto: {sorted(mixed - MIXED)}"
    assert mixed == MIXED, f"sans-IO at last, take them off MIXED: {sorted(MIXED - mixed)}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_length(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    allowed = TOO_LONG.get(name, MAX_LINES)
    assert lines <= allowed, f"{name} has {lines} lines, over {allowed}"
    if name in TOO_LONG:
        assert lines > MAX_LINES, f"{name} has {lines} lines now: take it off TOO_LONG"


def closure(edges: dict[str, set[str]], start: str) -> set[str]:
    """``start`` and every module it imports, directly or not."""
    seen = {start}
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_sans_io_layer_reaches_no_event_loop_and_no_socket() -> None:
    """Arrows point one way: a module that speaks h11 or wsproto imports no
    trio and no socket, neither itself nor through the trionet modules it
    imports (so it never imports a trio driver)."""
    inside, outside = graph()
    protocol_modules = {name for name, found in outside.items() if found & PROTOCOL_LIBRARIES}
    assert protocol_modules, "no module speaks h11 or wsproto: the check would be vacuous"
    for name in sorted(protocol_modules):
        reached = closure(inside, name)
        io = sorted(m for m in reached if outside[m] & {"trio", "socket"})
        assert not io, f"{name} (sans-IO) reaches trio or socket through {io}"


def test_the_checks_see_a_cycle_and_a_mixed_module(tmp_path: Path) -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(edges) == [("a", "b", "c")]
    assert closure(edges, "d") == {"a", "b", "c", "d"}
    inside, outside = graph()
    assert "trionet.http._headers" in inside["trionet.http._server._request"]
    assert {"trio"} <= outside["trionet.websocket._connection"]
    assert {"wsproto"} <= outside["trionet.websocket._protocol"]
