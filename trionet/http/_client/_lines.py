"""The text lines of a response body (:meth:`ClientResponse.aiter_lines`),
sans I/O: decoded text in, complete lines out.

A line ends at ``"\\n"``, ``"\\r\\n"`` or ``"\\r"`` (what HTTP-based text
formats such as server-sent events and NDJSON accept), and is given without
its ending; ``str.splitlines`` would also split at form feeds and Unicode
separators, which are text inside a line here. A ``"\\r"`` at the end of a
piece may be the first half of ``"\\r\\n"``: the line is given at once, and
a ``"\\n"`` that starts the next piece is dropped. The last line needs no
ending. A line may hold ``max_line_size`` characters: an endless line from a
hostile server is refused instead of buffered.
"""

from __future__ import annotations

import re

__all__ = ["LineSplitter", "LineTooLong"]

_LINE_END = re.compile(r"\r\n|\r|\n")


class LineTooLong(Exception):
    """A line is longer than the splitter's ``max_line_size``."""


class LineSplitter:
    """Splits text fed in pieces into lines (see the module docstring)."""

    __slots__ = ("_max", "_partial", "_skip_lf")

    def __init__(self, max_line_size: int) -> None:
        self._max = max_line_size
        self._partial = ""  # the start of a line whose end has not come
        self._skip_lf = False  # the last piece ended in "\r"

    def feed(self, text: str) -> list[str]:
        """The lines that ``text`` completes.

        Raises:
            LineTooLong: A line is longer than ``max_line_size``.
        """
        if self._skip_lf and text:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        if not text:
            return []
        ends_in_cr = text.endswith("\r")
        parts = _LINE_END.split(self._partial + text)
        # "a\r".split gives ["a", ""]: the "\r" ended the line.
        self._partial = parts.pop()
        self._skip_lf = ends_in_cr
        if len(self._partial) > self._max or any(len(line) > self._max for line in parts):
            raise LineTooLong(f"a line is longer than {self._max} characters")
        return parts

    def finish(self) -> list[str]:
        """The last line, if the text did not end with a line ending."""
        partial, self._partial = self._partial, ""
        return [partial] if partial else []
