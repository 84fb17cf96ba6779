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
PROTOCOL_LIBRARIES = {"h11", "wsproto"}

# Modules still over MAX_LINES, with their line count when listed.
TOO_LONG = {
    "trionet.websocket._connection": 1111,
    "trionet.http._client": 953,
    "trionet.http._connection": 887,
    "trionet._udp": 699,
    "trionet._server": 663,
    "trionet.testing._udp_network": 614,
}
# Modules that still drive h11/wsproto and trio together.
MIXED = {
    "trionet.http._client",
    "trionet.http._client_connection",
    "trionet.http._client_response",
    "trionet.http._connection",
    "trionet.websocket._connection",
    "trionet.websocket._handshake",
}
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


def test_the_checks_see_a_cycle_and_a_mixed_module(tmp_path: Path) -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(edges) == [("a", "b", "c")]
    inside, outside = graph()
    assert "trionet.http._headers" in inside["trionet.http._messages"]
    assert {"trio", "wsproto"} <= outside["trionet.websocket._connection"]
