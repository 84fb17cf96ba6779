"""The documentation says true things, and cannot rot.

* The README opens with the two commands, and its taste runs.
* Every code block of every page (and of the README) is checked by a test:
  included from ``examples/``, type-checked (``test_docs_snippets.py``), run
  (``test_docs_console.py``), or compared here with what it describes. A block
  no test checks fails ``test_every_code_block_is_checked``.
* The Node mapping tables cover what they must, and every test the docs name
  exists.
* The limits table is the code's defaults; every public name is documented
  exactly once; no paragraph is on two pages.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import json
import re
import ssl
import subprocess
import sys
import textwrap
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import trio

import trionet
import trionet.asgi
import trionet.http
import trionet.metrics
import trionet.testing
import trionet.tls
import trionet.websocket
from tests._docs import (
    DOCS,
    EXAMPLES,
    README,
    ROOT,
    Block,
    console_commands,
    doc_pages,
    every_block,
    list_table_rows,
    markdown_blocks,
    rst_blocks,
)
from tests.test_docs_console import OWNED_ELSEWHERE, check_command
from tests.test_docs_snippets import PYTHON
from tests.test_exports import PUBLIC_MODULES

NET_PAGE = DOCS / "node" / "net.rst"
DGRAM_PAGE = DOCS / "node" / "dgram.rst"
LIMITS_PAGE = DOCS / "limits.rst"
NODE_MAPPING_TESTS = ROOT / "tests" / "test_node_mapping.py"


# The examples whose docstrings quote the seed's Node code.
SEED_EXAMPLES = [
    "tcp_welcome",
    "tcp_client",
    "udp_server",
    "udp_client",
    "http_hello",
    "http_get",
    "https_hello",
    "ws_server",
    "ws_client",
]

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


def fences(language: str) -> list[str]:
    return [block.text for block in markdown_blocks(README) if block.language == language]


# -- README ---------------------------------------------------------------------


def test_readme_opens_with_the_two_commands() -> None:
    text = README.read_text("utf-8")
    first_block = re.search(r"^```(\w*)\n(.*?)^```$", text, re.DOTALL | re.MULTILINE)
    assert first_block is not None
    paragraphs = [p for p in text[: first_block.start()].split("\n\n") if p.strip()]
    assert paragraphs[0] == "# trionet"
    assert len(paragraphs) == 2, "only one sentence between the title and the commands"
    assert first_block.group(1) == "sh"
    assert first_block.group(2).splitlines() == ["uv run trionet demo", "uv run pytest"]


async def test_readme_taste_runs(capsys: pytest.CaptureFixture[str]) -> None:
    blocks = fences("python")
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


def test_readme_layout_names_what_exists() -> None:
    (layout,) = [block.text for block in markdown_blocks(README) if block.section == "Layout"]
    top = ROOT
    for line in layout.splitlines():
        left = re.split(r"\s{2,}", line.strip())[0]
        if not line.startswith(" "):
            top = ROOT
            for name in left.split(", "):
                assert (ROOT / name).exists(), f"README layout: no {name}"
            if left.endswith("/"):
                top = ROOT / left
        elif re.match(r" {2}\S", line):
            for name in left.split(", "):
                assert (top / name).exists(), f"README layout: no {top / name}"
    listed = set(re.findall(r"[\w.]+\.py", layout))
    programs = {path.name for path in EXAMPLES.glob("*.py")}
    assert programs <= listed, f"README layout misses {sorted(programs - listed)}"


# -- every code block is checked -------------------------------------------------


def is_exception_tree(block: Block) -> bool:
    return block.language == "text" and "└── " in block.text


def how_checked(block: Block) -> str | None:
    """The test that checks ``block``, or ``None`` when no test does."""
    if (block.path.name, block.section) in OWNED_ELSEWHERE:
        return "test_owned_console_blocks_run_trionet, and tests/test_cli.py"
    if block.kind == "literalinclude":
        included = block.included
        if included.is_relative_to(EXAMPLES) or (
            included.is_relative_to(ROOT / "tests") and included.name.startswith("test_")
        ):
            return "test_literalincludes_name_what_exists; the file is run by its tests"
        return None
    if block.kind not in {"code-block", "literal", "fence"}:
        return None  # a doctest block, an indented Markdown block: nothing runs them
    if block.language in PYTHON:
        return "tests/test_docs_snippets.py"
    if block.language == "javascript":
        return "test_javascript_blocks_quote_the_seed_verbatim"
    if block.language == "console":
        return "tests/test_docs_console.py"
    if block.language == "toml":
        return "test_toml_blocks_are_the_projects_configuration"
    if is_exception_tree(block):
        return "test_exception_trees_match_the_classes"
    if block.path == README and block.language == "sh":
        return "test_readme_commands_run"
    if block.path == README and block.language == "text" and block.section == "Layout":
        return "test_readme_layout_names_what_exists"
    return None


def test_every_code_block_is_checked() -> None:
    blocks = every_block()
    assert len(blocks) > 50
    unchecked = [
        f"{block.where}: {block.kind} {block.language or '(no language)'}"
        for block in blocks
        if how_checked(block) is None
    ]
    assert not unchecked, (
        "no test checks these blocks: include them from examples/, or make them Python a"
        " snippet test can check, or console output a scenario runs, or prose:\n"
        + "\n".join(unchecked)
    )


def test_the_classifier_refuses_what_nothing_checks(tmp_path: Path) -> None:
    page = tmp_path / "page.rst"
    page.write_text(
        textwrap.dedent(
            """\
            Title
            =====

            .. code-block:: text

               some output nobody checks

            .. literalinclude:: ../../etc/hosts

            .. code-block:: ruby

               puts 1

            >>> 1 + 1
            2
            """
        ),
        "utf-8",
    )
    blocks = rst_blocks(page)
    assert [block.kind for block in blocks] == [
        "code-block",
        "literalinclude",
        "code-block",
        "doctest",
    ]
    assert [how_checked(block) for block in blocks] == [None, None, None, None]


# A Sphinx build that collects every block it renders, to check that the
# scanner of tests/_docs.py sees each one (a block it missed would go unchecked).
COLLECT_BLOCKS = r"""
import io, json, sys
from docutils import nodes
from sphinx.application import Sphinx

found = []

def collect(app, doctree):
    for node in doctree.findall(
        lambda n: isinstance(n, (nodes.literal_block, nodes.doctest_block))
    ):
        found.append(
            {
                "source": node.source or doctree["source"],
                "text": node.astext(),
                "include": node.get("source", "") if isinstance(node, nodes.literal_block) else "",
            }
        )

docs, out = sys.argv[1], sys.argv[2]
app = Sphinx(docs, docs, out, out + "/doctrees", "dummy", status=None,
             warning=io.StringIO(), freshenv=True)
app.connect("doctree-read", collect)
app.build()
json.dump(found, sys.stdout)
"""


def normalised(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def test_the_scanner_finds_every_block_sphinx_renders(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", COLLECT_BLOCKS, str(DOCS), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rendered: Counter[tuple[str, str]] = Counter()
    for node in json.loads(result.stdout):
        source = node["source"]
        if not source.endswith(".rst"):
            continue  # a docstring's block, from autodoc
        page = Path(source).resolve().relative_to(ROOT).as_posix()
        if node["include"]:
            rendered[(page, "include " + Path(node["include"]).resolve().as_posix())] += 1
        else:
            rendered[(page, normalised(node["text"]))] += 1
    scanned: Counter[tuple[str, str]] = Counter()
    for page in doc_pages():
        for block in rst_blocks(page):
            where = page.relative_to(ROOT).as_posix()
            if block.kind == "literalinclude":
                scanned[(where, "include " + block.included.as_posix())] += 1
            else:
                scanned[(where, normalised(block.text))] += 1
    assert rendered == scanned


def test_literalincludes_name_what_exists() -> None:
    includes = [block for block in every_block() if block.kind == "literalinclude"]
    assert includes
    for block in includes:
        path = block.included
        assert path.is_file(), f"{block.where}: {block.text} does not exist"
        text = path.read_text("utf-8")
        options = block.options
        if path.suffix == ".py":
            assert options.get("language", "python") == "python", block.where
        if "pyobject" in options:
            assert find_pyobject(ast.parse(text), options["pyobject"]), (
                f"{block.where}: {path.name} has no {options['pyobject']}"
            )
        position = 0
        for option in ("start-at", "start-after", "end-before", "end-at"):
            if option in options:
                found = text.find(options[option], position)
                assert found >= 0, f"{block.where}: {option} {options[option]!r} not found in order"
                position = found
        if "lines" in options:
            count = len(text.splitlines())
            for number in re.findall(r"\d+", options["lines"]):
                assert 1 <= int(number) <= count, f"{block.where}: line {number} of {count}"


def find_pyobject(tree: ast.Module, name: str) -> bool:
    body: list[ast.stmt] = tree.body
    for part in name.split("."):
        matches = [
            node
            for node in body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and node.name == part
        ]
        if not matches:
            return False
        body = matches[0].body
    return True


def quoted_blocks(docstring: str) -> list[str]:
    """The literal blocks (introduced by ``::``) of a docstring, dedented."""
    lines = docstring.splitlines()
    blocks = []
    for index, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        body = []
        for following in lines[index + 1 :]:
            if following.strip() and not following.startswith(" "):
                break
            body.append(following)
        blocks.append(textwrap.dedent("\n".join(body)).strip("\n"))
    return blocks


def seed_quotes() -> dict[str, list[str]]:
    quotes = {}
    for name in SEED_EXAMPLES:
        docstring = ast.get_docstring(ast.parse((EXAMPLES / f"{name}.py").read_text("utf-8")))
        assert docstring, f"examples/{name}.py has no docstring"
        quotes[name] = [
            block for block in quoted_blocks(docstring) if "function" in block or "=>" in block
        ]
        assert quotes[name], f"examples/{name}.py quotes no Node code"
    return quotes


def test_javascript_blocks_quote_the_seed_verbatim() -> None:
    quotes = {quote for quoted in seed_quotes().values() for quote in quoted}
    shown = [block for block in every_block() if block.language == "javascript"]
    for block in shown:
        assert block.text in quotes, (
            f"{block.where}: this Node code is not quoted, as it is, in an example's docstring"
        )
    on_node_pages = {block.text for block in shown if block.path.parent == DOCS / "node"}
    for name, quoted in seed_quotes().items():
        for quote in quoted:
            assert quote in on_node_pages, f"the Node code of examples/{name}.py is on no Node page"


def test_exception_trees_match_the_classes() -> None:
    trees = [block for block in every_block() if is_exception_tree(block)]
    assert trees
    namespace = {**vars(builtins), **vars(trionet)}
    for block in trees:
        parents: list[tuple[int, type]] = []
        for line in block.text.splitlines():
            found = re.match(r"^([\s│├└─]*)(\w+)\s", line + " ")
            if found is None or not found.group(2)[0].isupper():
                continue  # the continuation of a comment
            if found.group(2) not in namespace and not found.group(1):
                continue
            column = len(found.group(1))
            cls = namespace.get(found.group(2))
            assert isinstance(cls, type), f"{block.where}: {found.group(2)} is not a class"
            while parents and parents[-1][0] >= column:
                parents.pop()
            if parents:
                assert issubclass(cls, parents[-1][1]), (
                    f"{block.where}: {cls.__name__} is not a {parents[-1][1].__name__}"
                )
            parents.append((column, cls))


def test_toml_blocks_are_the_projects_configuration() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))

    def leaves(
        table: dict[str, Any], path: tuple[str, ...] = ()
    ) -> list[tuple[tuple[str, ...], Any]]:
        found = []
        for key, value in table.items():
            if isinstance(value, dict):
                found += leaves(value, (*path, key))
            else:
                found.append(((*path, key), value))
        return found

    blocks = [block for block in every_block() if block.language == "toml"]
    assert blocks
    for block in blocks:
        for path, value in leaves(tomllib.loads(block.text)):
            actual: Any = pyproject
            for key in path:
                actual = actual[key]
            assert actual == value, (
                f"{block.where}: {'.'.join(path)} is {actual!r} in pyproject.toml"
            )


def test_readme_commands_run() -> None:
    commands = [line for text in fences("sh") for line in text.splitlines() if line.strip()]
    assert "uv run trionet demo" in commands
    for command in commands:
        check_command(command)


def test_owned_console_blocks_run_trionet() -> None:
    """The blocks of the ``trionet demo`` section of the CLI page are its
    owner's to check against the demo (tests/test_cli.py); here, at least,
    the commands of its console blocks must parse."""
    for block in every_block():
        if block.language == "console" and (block.path.name, block.section) in OWNED_ELSEWHERE:
            for command in console_commands(block):
                check_command(command.command)


# -- the Node mapping tables -------------------------------------------------------


def mapping_rows(page: Path = NET_PAGE, module: str = "net") -> list[list[str]]:
    """The rows of the "Node ``<module>`` → trionet" list-table, as lists of
    cells, without the header row."""
    return list_table_rows(page.read_text("utf-8"), f"Node ``{module}`` → trionet")[1:]


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
    named = set(re.findall(r"tests/test_node_mapping\.py::(\w+)", NET_PAGE.read_text("utf-8")))
    assert len(named) == len(NODE_EVENTS)
    assert NODE_MAPPING_TESTS.exists(), f"{NODE_MAPPING_TESTS} does not exist"
    defined = defined_tests(NODE_MAPPING_TESTS)
    assert named <= defined, f"not in {NODE_MAPPING_TESTS.name}: {sorted(named - defined)}"


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
    rows = mapping_rows(DGRAM_PAGE, "dgram")
    for name in DGRAM_SEED_NAMES:
        matching = [row for row in rows if name in row[0]]
        assert matching, f"no row of the dgram table maps {name}"
        for row in matching:
            assert re.fullmatch(r"``tests/test_\w+\.py::test_\w+``", row[2]), row


def test_every_node_page_has_a_mapping_table_with_tests() -> None:
    for page in sorted((DOCS / "node").glob("*.rst")):
        text = page.read_text("utf-8")
        headings = re.findall(r"^(Node .* → trionet)\n-+$", text, re.MULTILINE)
        if page.stem == "rules":
            continue
        assert headings, f"{page.name} has no 'Node ... → trionet' table"
        for heading in headings:
            rows = list_table_rows(text, heading)
            assert rows[0][-1] == "tested by", f"{page.name}: {heading}"
            assert len(rows) > 5, f"{page.name}: {heading} maps almost nothing"


def test_every_tested_by_cell_names_a_test_or_nothing() -> None:
    for page in doc_pages():
        text = page.read_text("utf-8")
        for index in [m.start() for m in re.finditer(r"^\s*\.\. list-table::", text, re.MULTILINE)]:
            rows = list_table_rows(text[index:], text[index:].splitlines()[0].strip())
            if not rows or rows[0][-1] != "tested by":
                continue
            for row in rows[1:]:
                assert re.fullmatch(
                    r"—|``tests/test_\w+\.py::test_\w+``(,\s*``tests/test_\w+\.py::test_\w+``)*",
                    row[-1],
                ), f"{page.name}: {row}"


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
        (page.relative_to(DOCS).as_posix(), file, test)
        for page in doc_pages()
        for file, test in re.findall(r"tests/(test_\w+\.py)::(\w+)", page.read_text("utf-8"))
    }
    assert {page for page, _, _ in named} >= {"node/net.rst", "node/dgram.rst", "servers.rst"}
    missing = [
        f"{page}: tests/{file}::{test}"
        for page, file, test in sorted(named)
        if not (ROOT / "tests" / file).exists() or test not in defined_tests(ROOT / "tests" / file)
    ]
    assert not missing, missing


# -- the API reference ------------------------------------------------------------

OBJECT_DIRECTIVE = re.compile(
    r"^\s*\.\. (?:py:)?(?:auto)?"
    r"(function|class|exception|data|attribute|method|module|currentmodule)::\s*(\S+)"
)


def documented_objects() -> Counter[str]:
    """How often each object is documented (``:no-index:`` ones not counted)."""
    counts: Counter[str] = Counter()
    for page in doc_pages():
        lines = page.read_text("utf-8").splitlines()
        module = ""
        for index, line in enumerate(lines):
            directive = OBJECT_DIRECTIVE.match(line)
            if directive is None:
                continue
            kind, name = directive.group(1), directive.group(2).split("(")[0]
            if kind in {"module", "currentmodule"}:
                module = name
                continue
            options = []
            for following in lines[index + 1 :]:
                if not following.strip().startswith(":"):
                    break
                options.append(following.strip())
            if ":no-index:" in options:
                continue
            counts[name if name.startswith("trionet.") else f"{module}.{name}"] += 1
    return counts


def test_every_public_name_is_documented_exactly_once() -> None:
    counts = documented_objects()
    public = {f"{module.__name__}.{name}" for module in PUBLIC_MODULES for name in module.__all__}
    missing = sorted(public - set(counts))
    twice = sorted(name for name, count in counts.items() if count > 1)
    private = sorted(set(counts) - public)
    assert not missing, f"not documented: {missing}"
    assert not twice, f"documented more than once: {twice}"
    assert not private, f"documented but not public: {private}"


# -- the limits table ---------------------------------------------------------------

# The public callables whose keyword arguments are limits, and which arguments
# count as limits: every one of them must be in the table.
LIMITED = [
    "trionet.serve_tcp",
    "trionet.serve_unix",
    "trionet.connect_tcp",
    "trionet.connect_unix",
    "trionet.TCPConnection",
    "trionet.open_udp_socket",
    "trionet.connect_udp",
    "trionet.serve_udp",
    "trionet.Server.shutdown",
    "trionet.http.serve",
    "trionet.http.HTTPConnection",
    "trionet.http.Client",
    "trionet.http.ClientResponse.aiter_lines",
    "trionet.http.Cookies",
    "trionet.http.Request.accept_websocket",
    "trionet.websocket.serve",
    "trionet.websocket.connect",
    "trionet.tls.server_context",
    "trionet.tls.client_context",
    "trionet.testing.memory_tcp_pair",
    "trionet.testing.VirtualUDPNetwork",
    "trionet.serve_workers",
    "trionet.run_workers",
    "trionet.metrics.WorkerMetrics",
    "trionet.asgi.serve",
    "trionet.asgi.from_wsgi",
]
LIMIT_PARAMETER = re.compile(
    r"max_\w+|\w*timeout|\w+_size|\w+_bytes|\w+_expiry|\w+_delay|\w+_interval|grace|backlog"
    r"|mode|compression|origins|minimum_version|require_client_certificate|alpn"
    r"|server_header|trust_env|follow_redirects|threads"
)
UNITS = {None: 1, "s": 1, "bytes": 1, "datagrams": 1, "KiB": 1024, "MiB": 1024 * 1024}


def resolve(name: str) -> Any:
    parts = name.split(".")
    for split in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            value = getattr(value, part)
        return value
    raise AssertionError(f"cannot resolve {name}")


def parse_default(text: str) -> Any:
    """The value a cell of the Default column shows."""
    if found := re.fullmatch(r"``(.+)``", text):
        return eval(found.group(1), {"__builtins__": {}, "ssl": ssl})
    if found := re.fullmatch(
        r"connect ([\d.]+) s, read ([\d.]+) s, write ([\d.]+) s, pool ([\d.]+) s", text
    ):
        return trionet.http.Timeouts(*(float(group) for group in found.groups()))
    found = re.fullmatch(r"(\d[\d ]*(?:\.\d+)?)(?: (s|bytes|datagrams|KiB|MiB))?", text)
    assert found, f"cannot read the default {text!r}"
    number = float(found.group(1).replace(" ", "")) * UNITS[found.group(2)]
    return int(number) if number.is_integer() else number


def limits_rows() -> list[tuple[list[str], list[str], Any, list[str]]]:
    """(settings, callables, default value, constants) for each row."""
    rows = list_table_rows(LIMITS_PAGE.read_text("utf-8"), "Every default")
    assert rows[0] == ["Setting", "Applies to", "Default", "Why, and what happens beyond it"]
    parsed = []
    for setting, applies, default, _why in rows[1:]:
        settings = re.findall(r"``(\w+)``", setting)
        targets = [
            explicit or plain
            for plain, explicit in re.findall(r":\w+:`~?([\w.]+)(?: <([\w.]+)>)?`", applies)
        ]
        constants = re.findall(r"``(trionet[\w.]*\.DEFAULT_\w+)``", default)
        value_text = re.sub(r"\s*\(``trionet[\w.]*\.DEFAULT_\w+``\)$", "", default)
        assert settings, f"limits table: no setting in the row {setting!r}"
        assert targets, f"limits table: the row {setting!r} applies to nothing"
        parsed.append((settings, targets, parse_default(value_text), constants))
    return parsed


def test_limits_table_matches_the_code() -> None:
    for settings, targets, value, constants in limits_rows():
        for constant in constants:
            assert resolve(constant) == value, f"{constant} is {resolve(constant)!r}, not {value!r}"
        for target in targets:
            parameters = inspect.signature(resolve(target)).parameters
            for setting in settings:
                assert setting in parameters, f"{target} has no {setting}"
                default = parameters[setting].default
                assert same_value(default, value), (
                    f"{target}({setting}) defaults to {default!r}, the table says {value!r}"
                )


def same_value(actual: Any, shown: Any) -> bool:
    """Equal, without ``True == 1``: a flag or ``None`` must be itself."""
    if isinstance(actual, bool) or actual is None or isinstance(shown, bool) or shown is None:
        return actual is shown
    return bool(actual == shown)


def test_limits_table_lists_every_limit() -> None:
    listed = {
        (target, setting)
        for settings, targets, _, _ in limits_rows()
        for target in targets
        for setting in settings
    }
    missing = [
        f"{target}({name})"
        for target in LIMITED
        for name, parameter in inspect.signature(resolve(target)).parameters.items()
        if parameter.default is not inspect.Parameter.empty
        and not name.startswith("_")
        and LIMIT_PARAMETER.fullmatch(name)
        and (target, name) not in listed
    ]
    assert not missing, f"not in the limits table: {missing}"


def test_limits_table_names_every_default_constant() -> None:
    named = {constant for _, _, _, constants in limits_rows() for constant in constants}
    constants = {
        f"{module.__name__}.{name}"
        for module in (trionet, trionet.asgi, trionet.http, trionet.websocket, trionet.testing)
        for name in module.__all__
        if name.startswith("DEFAULT_")
    }
    assert constants <= named, f"not in the limits table: {sorted(constants - named)}"


# -- moved, not copied --------------------------------------------------------------


def paragraphs(page: Path) -> list[str]:
    """The prose paragraphs and list items of a page (not code, tables or
    directives), each as one line."""
    found = []
    current: list[str] = []

    def flush() -> None:
        text = re.sub(r"^(?:[*-]|\d+\.) ", "", " ".join(current))
        if not text.startswith(("..", ":", "=")) and len(text.split()) >= 12:
            found.append(re.sub(r"\s+", " ", text))
        current.clear()

    for line in [*page.read_text("utf-8").splitlines(), ""]:
        starts_item = bool(re.match(r"(?:[*-]|\d+\.) ", line))
        if current and (not line.strip() or starts_item):
            flush()
        if line.strip() and (current or not line.startswith((" ", ".."))):
            current.append(line.strip())
    return found


def test_no_paragraph_is_on_two_pages() -> None:
    seen: dict[str, str] = {}
    duplicates = []
    for page in doc_pages():
        for paragraph in paragraphs(page):
            name = page.relative_to(DOCS).as_posix()
            if paragraph in seen:
                duplicates.append(f"{seen[paragraph]} and {name}: {paragraph[:80]}...")
            seen[paragraph] = name
    assert not duplicates, "\n".join(duplicates)
