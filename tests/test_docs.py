"""The documentation says true things: the README's code runs, the Node
mapping tables cover what they must, and every test the docs name exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import trio

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
TCP_GUIDE = DOCS / "tcp.rst"
UDP_GUIDE = DOCS / "udp.rst"
NODE_MAPPING_TESTS = ROOT / "tests" / "test_node_mapping.py"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.DOTALL | re.MULTILINE)

# Every Node `net` event the table must map, as (object, event).
NODE_EVENTS = {
    ("server", "listening"),
    ("server", "connection"),
    ("server", "close"),
    ("server", "error"),
    ("socket", "data"),
    ("socket", "end"),
    ("socket", "connect"),
    ("socket", "drain"),
    ("socket", "error"),
    ("socket", "close"),
    ("socket", "timeout"),
}


def code_blocks(language: str) -> list[str]:
    return [code for lang, code in FENCE.findall(README.read_text("utf-8")) if lang == language]


# -- README ---------------------------------------------------------------------


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text("utf-8")
    first_block = FENCE.search(text)
    assert first_block is not None
    paragraphs = [p for p in text[: first_block.start()].split("\n\n") if p.strip()]
    assert paragraphs[0] == "# trionet"
    assert len(paragraphs) == 2, "only one sentence between the title and the commands"
    assert first_block.group(1) == "sh"
    assert first_block.group(2).splitlines() == ["uv run trionet demo", "uv run pytest"]


async def test_readme_taste_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = code_blocks("python")
    assert blocks, "README.md has no ```python block"
    namespace: dict[str, Any] = {"__name__": "readme"}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)

    with trio.fail_after(10):
        await namespace["main"](0)  # port 0: the server takes a free port

    out = capsys.readouterr().out
    # The client printed what the server sent: the welcome line, then its
    # data in upper case; the server saw the client's end of stream.
    assert "welcome!\nHELLO\n" in out
    assert "client finished" in out


# -- the Node mapping table in docs/tcp.rst --------------------------------------


def mapping_rows(guide: Path = TCP_GUIDE, module: str = "net") -> list[list[str]]:
    """The rows of the "Node ``<module>`` → trionet" list-table, as lists of cells."""
    text = guide.read_text("utf-8")
    heading = text.index(f"Node ``{module}`` → trionet\n")
    rows: list[list[str]] = []
    for line in text[heading:].splitlines():
        if line and not line.startswith(" ") and rows:
            break  # the next paragraph or section
        if line.startswith("   * - "):
            rows.append([line[len("   * - ") :]])
        elif line.startswith("     - "):
            rows[-1].append(line[len("     - ") :])
        elif line.startswith("       ") and rows:
            rows[-1][-1] += " " + line.strip()
    return rows[1:]  # the header row


def test_node_mapping_table_has_a_test_for_every_event() -> None:
    covered = set()
    for node, _trionet, tested_by in mapping_rows():
        event = re.fullmatch(r"(server|socket) ``'(\w+)'``", node)
        if event is None:
            continue  # a method row
        kind, name = event.groups()
        assert tested_by == f"``tests/test_node_mapping.py::test_{kind}_{name}``", node
        covered.add((kind, name))
    assert covered == NODE_EVENTS


def test_node_mapping_table_names_only_existing_tests() -> None:
    named = set(re.findall(r"tests/test_node_mapping\.py::(\w+)", TCP_GUIDE.read_text("utf-8")))
    assert len(named) == len(NODE_EVENTS)
    assert NODE_MAPPING_TESTS.exists(), f"{NODE_MAPPING_TESTS} does not exist"
    tree = ast.parse(NODE_MAPPING_TESTS.read_text("utf-8"))
    defined = {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }
    assert named <= defined, f"not in {NODE_MAPPING_TESTS.name}: {sorted(named - defined)}"


# -- the dgram table in docs/udp.rst, and every test the docs name ------------------

# What the seed's dgram examples use: events, and the arguments of send().
DGRAM_SEED_NAMES = [
    "'message'",
    "'listening'",
    "'error'",
    "'close'",
    "createSocket",
    "bind(",
    "address()",
    "buf",
    "offset",
    "length",
    "port, address",
    "callback(err, bytes)",
]


def test_dgram_mapping_table_covers_the_seed() -> None:
    rows = mapping_rows(UDP_GUIDE, "dgram")
    for name in DGRAM_SEED_NAMES:
        matching = [row for row in rows if name in row[0]]
        assert matching, f"no row of the dgram table maps {name}"
        for row in matching:
            assert re.fullmatch(r"``tests/test_\w+\.py::test_\w+``", row[2]), row


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_test_the_docs_name_exists() -> None:
    named = {
        (doc.name, file, test)
        for doc in DOCS.glob("*.rst")
        for file, test in re.findall(r"tests/(test_\w+\.py)::(\w+)", doc.read_text("utf-8"))
    }
    assert named
    missing = [
        f"{doc}: tests/{file}::{test}"
        for doc, file, test in sorted(named)
        if not (ROOT / "tests" / file).exists() or test not in defined_tests(ROOT / "tests" / file)
    ]
    assert not missing, missing
