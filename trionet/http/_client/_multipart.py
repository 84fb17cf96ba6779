"""``files=``: a ``multipart/form-data`` request body (RFC 7578), streamed.

Each form field and each file is a part with its ``Content-Disposition``
(the field's name, a file's ``filename``) and, for a file, its
``Content-Type`` (given, or guessed from the file name). Names and file
names are escaped as the HTML standard's form encoding does (``"`` as
``%22``, CR and LF as ``%0D`` and ``%0A``) and sent as UTF-8.

A file is read while the body is sent, 64 KiB at a time in a worker thread,
so an upload of any size takes no more memory than that. When every
length is known (bytes, a path, a real file), the body goes with its
``Content-Length``, which every server takes; else it is chunked.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import trio

__all__ = ["FileContent", "FileSpec", "Files", "MultipartBody"]

#: What a file's content may be: bytes, text (sent as UTF-8), a binary file
#: object (read from where it stands; not closed), or a path (opened, read
#: and closed while sending).
FileContent = bytes | str | IO[bytes] | os.PathLike[str]

#: One file of ``files=``: a content (its file name: a path's or a file
#: object's, else ``"upload"``), ``(filename, content)`` or ``(filename,
#: content, content_type)`` (a ``None`` file name: a part without one).
#: What ``files=`` accepts: field names to :data:`FileSpec`; or a sequence
#: of ``(name, that)`` pairs, for a repeated field.
FileSpec = FileContent | tuple[str | None, FileContent] | tuple[str | None, FileContent, str | None]
Files = Mapping[str, FileSpec] | Sequence[tuple[str, FileSpec]]

_CHUNK = 64 * 1024


def _escape(text: str) -> str:
    return text.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class _Part:
    __slots__ = ("content", "head", "size")

    def __init__(self, head: bytes, content: bytes | IO[bytes] | Path, size: int | None) -> None:
        self.head = head
        self.content = content
        self.size = size


class MultipartBody:
    """A ``multipart/form-data`` body: ``form`` fields, then ``files``.

    Args:
        form: Plain fields.
        files: The files (see :data:`Files`).

    Raises:
        TypeError: A file's content is of no kind listed in :data:`FileContent`.
    """

    def __init__(self, form: Mapping[str, str] | None, files: Files) -> None:
        self.boundary = secrets.token_hex(16)
        self._parts: list[_Part] = []
        for name, value in (form or {}).items():
            head = f'Content-Disposition: form-data; name="{_escape(name)}"\r\n\r\n'
            data = str(value).encode()
            self._parts.append(_Part(head.encode(), data, len(data)))
        items = files.items() if isinstance(files, Mapping) else files
        for name, spec in items:
            self._parts.append(self._file_part(name, spec))

    def _file_part(self, name: str, spec: FileSpec) -> _Part:
        content_type = None
        content: object
        filename: str | None
        if isinstance(spec, tuple):
            filename, content, *rest = spec
            content_type = rest[0] if rest else None
        else:
            # A file part has a file name: its own, else "upload" (as
            # httpx names it); give (None, content) for a part without.
            content = spec
            filename = "upload"
            given_name = getattr(content, "name", None)
            if isinstance(content, os.PathLike):
                filename = Path(content).name
            elif hasattr(content, "read") and isinstance(given_name, str):
                filename = Path(given_name).name
        if filename is not None and content_type is None:
            content_type = mimetypes.guess_type(filename)[0]
        head = f'Content-Disposition: form-data; name="{_escape(name)}"'
        if filename is not None:
            head += f'; filename="{_escape(filename)}"'
        head += f"\r\nContent-Type: {content_type or 'application/octet-stream'}\r\n\r\n"
        data: bytes | IO[bytes] | Path
        size: int | None
        if isinstance(content, str):
            data = content.encode()
            size = len(data)
        elif isinstance(content, bytes | bytearray | memoryview):
            data = bytes(content)
            size = len(data)
        elif isinstance(content, os.PathLike):
            data = Path(content)
            size = data.stat().st_size
        elif hasattr(content, "read"):
            data = content
            size = _remaining(content)
        else:
            raise TypeError(
                f"files[{name!r}]: a file is bytes, str, a binary file or a path,"
                f" not {type(content).__name__}"
            )
        return _Part(head.encode(), data, size)

    @property
    def content_type(self) -> str:
        """The ``Content-Type`` field, with the boundary."""
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int | None:
        """The body's length, when every part's is known."""
        total = len(self._close())
        for part in self._parts:
            if part.size is None:
                return None
            total += len(self._opening()) + len(part.head) + part.size + 2
        return total

    def _opening(self) -> bytes:
        return f"--{self.boundary}\r\n".encode()

    def _close(self) -> bytes:
        return f"--{self.boundary}--\r\n".encode()

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, part by part, files read as it goes."""
        for part in self._parts:
            yield self._opening() + part.head
            content = part.content
            if isinstance(content, bytes):
                yield content
            elif isinstance(content, Path):
                file = await trio.to_thread.run_sync(content.open, "rb")
                try:
                    async for chunk in _read(file):
                        yield chunk
                finally:
                    file.close()
            else:
                async for chunk in _read(content):
                    yield chunk
            yield b"\r\n"
        yield self._close()


def _remaining(file: IO[bytes]) -> int | None:
    """Bytes left in a real file, else ``None``."""
    try:
        return os.fstat(file.fileno()).st_size - file.tell()
    except (OSError, AttributeError, ValueError):
        return None


async def _read(file: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await trio.to_thread.run_sync(file.read, _CHUNK):
        yield chunk
