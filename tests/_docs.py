"""Reading the documentation as the tests need it: every code block of every
page under ``docs/`` and of ``README.md``, the rows of a ``list-table``, and
the commands and output of a console block.

The scanner is line-based and knows the reStructuredText the docs use:
``.. code-block::`` (and its aliases), ``.. literalinclude::``, literal blocks
introduced by ``::``, doctest blocks, and Markdown fences. That it misses
nothing Sphinx renders is itself a test (``test_docs.py``).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
EXAMPLES = ROOT / "examples"

# Sphinx's highlight_language in docs/conf.py: the language of a "::" block.
DEFAULT_LANGUAGE = "python3"

CODE_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:code-block|code|sourcecode)::\s*(\S*)\s*$")
INCLUDE_DIRECTIVE = re.compile(r"^(\s*)\.\. literalinclude::\s*(\S+)\s*$")
OTHER_DIRECTIVE = re.compile(r"^(\s*)\.\. [\w:-]+::")
HIGHLIGHT_DIRECTIVE = re.compile(r"^\s*\.\. highlight::\s*(\S+)\s*$")
COMMENT = re.compile(r"^(\s*)\.\.(?:\s|$)")
OPTION = re.compile(r"^\s*:([\w-]+):\s*(.*)$")
LIST_MARKER = re.compile(r"^(\s*)(?:[*+-]|\d+\.|#\.)\s+")
UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>])\1+\s*$")
FENCE = re.compile(r"^```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    """One code block of a page.

    ``kind`` is ``"code-block"``, ``"literal"`` (a ``::`` block),
    ``"literalinclude"``, ``"doctest"`` or ``"fence"`` (Markdown). ``text`` is
    the block's content, dedented; for a ``literalinclude`` it is the
    directive's argument. ``section`` is the title of the section the block
    is in.
    """

    path: Path
    line: int
    kind: str
    language: str
    text: str
    options: dict[str, str] = field(default_factory=dict)
    section: str = ""

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def included(self) -> Path:
        """The file a ``literalinclude`` names, resolved against its page."""
        assert self.kind == "literalinclude"
        return (self.path.parent / self.text).resolve()


def doc_pages() -> list[Path]:
    """Every ``.rst`` page under ``docs/``, subdirectories included."""
    return sorted(path for path in DOCS.rglob("*.rst") if "_build" not in path.parts)


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def text_indent(line: str) -> int:
    """Where the text of a line starts: after a list marker, if there is one."""
    marker = LIST_MARKER.match(line)
    return marker.end() if marker else indent_of(line)


def _body(lines: list[str], start: int, indent: int) -> int:
    """The index after the indented body that starts at ``start``: lines that
    are blank or indented deeper than ``indent``."""
    end = start
    while end < len(lines) and (not lines[end].strip() or indent_of(lines[end]) > indent):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _options(lines: list[str], start: int, indent: int) -> tuple[dict[str, str], int]:
    options: dict[str, str] = {}
    index = start
    while index < len(lines) and lines[index].strip() and indent_of(lines[index]) > indent:
        option = OPTION.match(lines[index])
        if option is None:
            break
        options[option.group(1)] = option.group(2).strip()
        index += 1
    return options, index


def _section_titles(lines: list[str]) -> list[str]:
    """The title of the section each line is in."""
    titles = [""] * len(lines)
    current = ""
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if (
            line.strip()
            and not line.startswith(" ")
            and UNDERLINE.match(following)
            and len(following.rstrip()) >= len(line.rstrip())
        ):
            current = line.strip()
        titles[index] = current
    return titles


def rst_blocks(path: Path) -> list[Block]:
    """Every code block of one reStructuredText page, in order."""
    lines = path.read_text("utf-8").splitlines()
    sections = _section_titles(lines)
    language = DEFAULT_LANGUAGE
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if highlight := HIGHLIGHT_DIRECTIVE.match(line):
            language = highlight.group(1)
            index += 1
            continue
        if code := CODE_DIRECTIVE.match(line):
            indent = len(code.group(1))
            options, start = _options(lines, index + 1, indent)
            end = _body(lines, start, indent)
            content = textwrap.dedent("\n".join(lines[start:end])).strip("\n")
            blocks.append(
                Block(
                    path,
                    index + 1,
                    "code-block",
                    code.group(2) or language,
                    content,
                    options,
                    sections[index],
                )
            )
            index = end
            continue
        if include := INCLUDE_DIRECTIVE.match(line):
            indent = len(include.group(1))
            options, end = _options(lines, index + 1, indent)
            blocks.append(
                Block(
                    path,
                    index + 1,
                    "literalinclude",
                    options.get("language", ""),
                    include.group(2),
                    options,
                    sections[index],
                )
            )
            index = end
            continue
        if OTHER_DIRECTIVE.match(line):
            index += 1  # its body holds ordinary content (a table, a note...)
            continue
        if comment := COMMENT.match(line):
            index = _body(lines, index + 1, len(comment.group(1)))  # a comment's body is not shown
            continue
        if line.lstrip().startswith(">>> "):
            end = index
            while end < len(lines) and lines[end].strip():
                end += 1
            content = textwrap.dedent("\n".join(lines[index:end]))
            blocks.append(Block(path, index + 1, "doctest", "pycon", content, {}, sections[index]))
            index = end
            continue
        if line.rstrip().endswith("::") and not line.rstrip().endswith("\\::"):
            indent = text_indent(line)
            start = index + 1
            while start < len(lines) and not lines[start].strip():
                start += 1
            end = _body(lines, start, indent)
            if end > start:
                content = textwrap.dedent("\n".join(lines[start:end])).strip("\n")
                blocks.append(
                    Block(path, index + 1, "literal", language, content, {}, sections[index])
                )
                index = end
                continue
        index += 1
    return blocks


def markdown_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, and any indented code block (as
    kind ``"indented"``, which no test accepts)."""
    lines = path.read_text("utf-8").splitlines()
    blocks: list[Block] = []
    section = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            section = line.lstrip("#").strip()
        if fence := FENCE.match(line):
            end = index + 1
            while end < len(lines) and lines[end].rstrip() != "```":
                end += 1
            content = "\n".join(lines[index + 1 : end])
            blocks.append(Block(path, index + 1, "fence", fence.group(1), content, {}, section))
            index = end + 1
            continue
        previous = lines[index - 1] if index else ""
        if line.startswith("    ") and not previous.strip():
            blocks.append(Block(path, index + 1, "indented", "", line.strip(), {}, section))
        index += 1
    return blocks


def every_block() -> list[Block]:
    """Every code block of the documentation and the README."""
    return [block for page in doc_pages() for block in rst_blocks(page)] + markdown_blocks(README)


# -- list-tables ---------------------------------------------------------------


def list_table_rows(text: str, heading: str) -> list[list[str]]:
    """The rows of the first ``list-table`` after ``heading`` (a section title
    or a table title), header row included, as lists of cells; a cell's lines
    are joined with single spaces."""
    lines = text.splitlines()
    start = next(
        index
        for index, line in enumerate(lines)
        if line.strip() == heading or line.strip().endswith(f"list-table:: {heading}")
    )
    table = next(
        index
        for index in range(start, len(lines))
        if lines[index].lstrip().startswith(".. list-table::")
    )
    indent = indent_of(lines[table])
    rows: list[list[str]] = []
    cell_indent = 0
    for line in lines[table + 1 :]:
        if line.strip() and indent_of(line) <= indent:
            break
        stripped = line.strip()
        if stripped.startswith("* - "):
            rows.append([stripped[4:]])
            cell_indent = indent_of(line) + 4
        elif stripped.startswith("- ") and rows and indent_of(line) == cell_indent - 2:
            rows[-1].append(stripped[2:])
        elif stripped and rows and indent_of(line) >= cell_indent:
            rows[-1][-1] += " " + stripped
    return rows


# -- console blocks ------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A ``$`` line of a console block and the output shown under it."""

    block: Block
    command: str
    output: list[str]


def console_commands(block: Block) -> list[Command]:
    """The commands of a console block, each with the lines shown after it."""
    commands: list[Command] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            commands.append(Command(block, line[2:], []))
        elif commands:
            commands[-1].output.append(line)
        else:
            raise AssertionError(f"{block.where}: console output before any command: {line!r}")
    return commands
