"""Every Python code block of the documentation and the README type-checks
against trionet as it is.

Most blocks are fragments: they ``await`` at the top level and use names the
surrounding prose introduces (``conn``, ``nursery``, ``handler``...). Each
block becomes the body of an ``async def`` whose parameters are those names,
with the types in ``PLACEHOLDERS``; the blocks, so wrapped, are checked with
mypy in one run. A renamed function, a keyword argument that does not exist,
a wrong type or a name nobody defines fails the test, with the page and line
of the block. (Blocks included from ``examples/`` are real programs, run by
their own tests.)
"""

from __future__ import annotations

import ast
import builtins
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests._docs import ROOT, Block, every_block

PYTHON = {"python", "python3", "py"}

# What every snippet may use without importing it.
PRELUDE = """\
from collections.abc import Awaitable, Callable
import functools
import logging
import signal
import ssl

import trio

import trionet
import trionet.asgi
import trionet.http
import trionet.metrics
import trionet.testing
import trionet.tls
import trionet.websocket
"""
PRELUDE_NAMES = {
    "Awaitable",
    "Callable",
    "functools",
    "logging",
    "signal",
    "ssl",
    "trio",
    "trionet",
}

# The names the prose introduces, and their types.
PLACEHOLDERS = {
    "nursery": "trio.Nursery",
    "conn": "trionet.TCPConnection",
    "handler": "Callable[[trionet.TCPConnection], Awaitable[None]]",
    "app": "Callable[[trionet.http.Request], Awaitable[trionet.http.Response | None]]",
    "request": "trionet.http.Request",
    "ws": "trionet.websocket.WebSocketConnection",
    "stream": "trio.abc.Stream",
    "main": "Callable[[], Awaitable[None]]",
    "asgi_app": "trionet.asgi.ASGIApp",
}

# Strict, as the package itself is checked (pyproject.toml), so that a
# snippet shows code that would pass the checks its reader runs.
MYPY_CONFIG = """\
[mypy]
python_version = 3.11
strict = True
"""


def python_blocks() -> list[Block]:
    return [
        block
        for block in every_block()
        if block.kind != "literalinclude" and block.language in PYTHON
    ]


def free_names(tree: ast.AST) -> set[str]:
    """Names a snippet reads but never binds (imports, assignments, defs,
    arguments, loop targets, ``as`` names and ``match`` captures)."""
    loaded: set[str] = set()
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.add(node.name)
    return loaded - bound - set(dir(builtins)) - PRELUDE_NAMES


def wrap(index: int, block: Block) -> str:
    """The block as the body of an ``async def`` taking its free names."""
    names = sorted(free_names(ast.parse(block.text)))
    unknown = [name for name in names if name not in PLACEHOLDERS]
    assert not unknown, f"{block.where}: the snippet uses {unknown}, which nothing defines"
    params = ", ".join(f"{name}: {PLACEHOLDERS[name]}" for name in names)
    return f"async def _snippet_{index}({params}) -> None:\n" + textwrap.indent(
        block.text + "\n", "    "
    )


def test_python_blocks_parse() -> None:
    blocks = python_blocks()
    assert blocks
    for block in blocks:
        try:
            ast.parse(block.text)
        except SyntaxError as exc:
            raise AssertionError(f"{block.where}: {exc}") from None


def test_python_blocks_type_check(tmp_path: Path) -> None:
    blocks = python_blocks()
    source = [PRELUDE]
    # Generated line number -> (block, line within the block).
    origin: dict[int, tuple[Block, int]] = {}
    for index, block in enumerate(blocks):
        source.append("\n")
        first = sum(part.count("\n") for part in source) + 2  # after the def line
        source.append(wrap(index, block))
        for offset in range(block.text.count("\n") + 1):
            origin[first + offset] = (block, offset)
    module = tmp_path / "doc_snippets.py"
    module.write_text("".join(source), "utf-8")
    config = tmp_path / "mypy.ini"
    config.write_text(MYPY_CONFIG, "utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "--no-error-summary",
            "--show-error-codes",
            str(module),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = []
    for line in result.stdout.splitlines():
        found = re.match(rf"{re.escape(str(module))}:(\d+): (error|note): (.*)", line)
        if found is None:
            errors.append(line)
            continue
        number, kind, message = int(found.group(1)), found.group(2), found.group(3)
        if kind == "note":
            continue
        if number in origin:
            block, offset = origin[number]
            errors.append(f"{block.path.relative_to(ROOT)}:{block.line} (+{offset + 1}): {message}")
        else:
            errors.append(f"doc_snippets.py:{number}: {message}")
    assert not errors, "\n".join(errors)
    assert result.returncode == 0, result.stdout + result.stderr
