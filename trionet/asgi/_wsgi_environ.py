"""What a WSGI application sees of a request (PEP 3333), without I/O: the
``environ`` built from an ASGI ``http`` scope, the request body as a file
(``wsgi.input``), the error stream (``wsgi.errors``) and the file wrapper
(``wsgi.file_wrapper``).

The strings of the environ are "bytes-as-latin-1" (PEP 3333, "Unicode
Issues"): each holds the bytes of the request, one character per byte.
``PATH_INFO`` is the target's path percent-decoded *to bytes* (from
``raw_path``, so that escapes which are not UTF-8 survive), ``SCRIPT_NAME``
the scope's ``root_path``, and ``QUERY_STRING`` the query as received. The
header fields become CGI variables (RFC 3875 section 4.1.18): ``HTTP_`` and
the name upper-cased with ``-`` as ``_``, except ``CONTENT_TYPE`` and
``CONTENT_LENGTH``. A field repeated is joined with ``,`` (RFC 9110 section
5.3), ``Cookie`` with ``; `` (RFC 6265 section 5.4). A field whose name has
an ``_`` is dropped: its variable could not be told from the one of the same
name with ``-`` (a client could pass ``X_Forwarded_For`` off as the
``X-Forwarded-For`` a proxy vouches for); nginx, Apache and gunicorn drop
them too.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any
from urllib.parse import unquote_to_bytes

from .._version import __version__

__all__ = [
    "ErrorStream",
    "FileWrapper",
    "Input",
    "base_environ",
    "environ_of",
    "file_to_send",
    "has_body",
]

logger = logging.getLogger("trionet.asgi")

# A field that says the request has a body (RFC 9112 section 6.3).
_BODY_FIELDS = (b"content-length", b"transfer-encoding")

_DEFAULT_PORTS = {"http": "80", "https": "443"}

# Host, or [IPv6], with an optional :port.
_HOST = re.compile(r"(\[[^\]]*\]|[^:]*)(?::(\d+))?")


def _latin1(text: str) -> str:
    """A text as bytes-as-latin-1: its UTF-8 bytes, one character each."""
    return text.encode("utf-8").decode("latin-1")


def _path_info(scope: dict[str, Any], root_path: str) -> str:
    """``PATH_INFO``: the path below ``root_path``, percent-decoded to bytes."""
    raw: bytes | None = scope.get("raw_path")
    path_bytes: bytes
    if raw is None:
        path_bytes = scope["path"].encode("utf-8")  # decoded already
        escaped = False
    else:
        path_bytes = raw
        escaped = True
    if root_path:
        # ASGI servers (trionet and uvicorn among them) put root_path in
        # front of the path; take it off, at a segment's boundary only.
        root = root_path.encode("utf-8")
        if path_bytes == root or path_bytes.startswith(root + b"/"):
            path_bytes = path_bytes[len(root) :]
    if escaped and b"%" in path_bytes:
        path_bytes = unquote_to_bytes(path_bytes)
    return path_bytes.decode("latin-1")


def _server(scope: dict[str, Any], host: str | None, scheme: str) -> tuple[str, str]:
    """``SERVER_NAME`` and ``SERVER_PORT``: the address the request came to,
    or (on a Unix socket, which has none) what the ``Host`` field names."""
    server = scope.get("server")
    if server is not None and server[1] is not None:
        return str(server[0]), str(server[1])
    default_port = _DEFAULT_PORTS.get(scheme, "80")
    if host:
        found = _HOST.fullmatch(host)
        if found is not None and found.group(1):
            return found.group(1), found.group(2) or default_port
    return "localhost", default_port


def environ_of(
    scope: dict[str, Any],
    base: dict[str, Any],
    body: Input,
    errors: ErrorStream,
) -> dict[str, Any]:
    """The PEP 3333 ``environ`` of an ASGI ``http`` scope.

    Args:
        scope: The scope.
        base: The variables every request of the application has alike
            (``wsgi.version``...), copied first.
        body: ``wsgi.input``.
        errors: ``wsgi.errors``.
    """
    environ = dict(base)
    root_path: str = scope.get("root_path", "")
    scheme: str = scope.get("scheme", "http")
    environ["REQUEST_METHOD"] = scope["method"]
    environ["SCRIPT_NAME"] = _latin1(root_path)
    environ["PATH_INFO"] = _path_info(scope, root_path)
    environ["QUERY_STRING"] = scope.get("query_string", b"").decode("latin-1")
    environ["SERVER_PROTOCOL"] = "HTTP/" + scope.get("http_version", "1.1")
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    host: str | None = None
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.lower()
        value = raw_value.decode("latin-1")
        if name == b"content-type":
            key = "CONTENT_TYPE"
        elif name == b"content-length":
            key = "CONTENT_LENGTH"
        elif b"_" in name:
            continue  # (see the module's docstring)
        else:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            if name == b"host":
                host = value
        if key in environ:
            value = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + value
        environ[key] = value
    environ["SERVER_NAME"], environ["SERVER_PORT"] = _server(scope, host, scheme)
    environ["wsgi.url_scheme"] = scheme
    environ["wsgi.input"] = body
    environ["wsgi.errors"] = errors
    return environ


def has_body(scope: dict[str, Any]) -> bool:
    """Whether the request comes with a body (a ``Content-Length`` other than
    0, or a ``Transfer-Encoding``): a request without one costs no read."""
    for name, value in scope.get("headers", ()):
        name = name.lower()
        if name in _BODY_FIELDS and (name != b"content-length" or value.strip() != b"0"):
            return True
    return False


def base_environ(multiprocess: bool) -> dict[str, Any]:
    """The variables that are the same for every request."""
    return {
        "SERVER_SOFTWARE": f"trionet/{__version__}",
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
    }


class Input:
    """``wsgi.input``: the request body, pulled from the client only as the
    application reads it, one received piece at a time (at most one is held
    here).

    ``pull`` gives the next piece and whether more follow; it blocks (the
    application's thread) until the piece is there, and raises
    :exc:`~trionet.asgi.ClientDisconnected` when the client went away.
    """

    __slots__ = ("_chunk", "_eof", "_pos", "_pull")

    def __init__(self, pull: Callable[[], tuple[bytes, bool]], *, empty: bool) -> None:
        self._pull = pull
        self._chunk = b""
        self._pos = 0
        self._eof = empty

    def _fill(self) -> bool:
        """Have unread bytes at hand; ``False`` at the end of the body."""
        while self._pos >= len(self._chunk):
            if self._eof:
                return False
            self._chunk, more = self._pull()
            self._pos = 0
            self._eof = not more
        return True

    def _take(self, limit: int) -> bytes:
        start = self._pos
        end = min(len(self._chunk), start + limit)
        piece = self._chunk if start == 0 and end == len(self._chunk) else self._chunk[start:end]
        if end >= len(self._chunk):
            self._chunk, self._pos = b"", 0  # let the piece go
        else:
            self._pos = end
        return piece

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes (fewer only at the end of the body); all the
        rest when ``size`` is negative or ``None``."""
        wanted = -1 if size is None or size < 0 else size
        parts = []
        while wanted != 0 and self._fill():
            piece = self._take(len(self._chunk) if wanted < 0 else wanted)
            parts.append(piece)
            if wanted > 0:
                wanted -= len(piece)
        return b"".join(parts)

    def read1(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes of what one read of the client gives."""
        if size == 0 or not self._fill():
            return b""
        return self._take(len(self._chunk) if size is None or size < 0 else size)

    def readline(self, size: int | None = -1) -> bytes:
        """One line, ``b"\\n"`` included, of at most ``size`` bytes."""
        wanted = -1 if size is None or size < 0 else size
        parts = []
        while wanted != 0 and self._fill():
            end = self._chunk.find(b"\n", self._pos)
            limit = (end + 1 if end >= 0 else len(self._chunk)) - self._pos
            piece = self._take(limit if wanted < 0 else min(limit, wanted))
            parts.append(piece)
            if wanted > 0:
                wanted -= len(piece)
            if piece.endswith(b"\n"):
                break
        return b"".join(parts)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """The lines, until their total size reaches ``hint`` (all of them
        when it is negative or ``None``)."""
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class ErrorStream(io.TextIOBase):
    """``wsgi.errors``: what the application writes becomes records of the
    ``trionet.asgi`` logger, at level ERROR, one per line written (a
    traceback written at once is one record). Without logging configured,
    Python prints them on stderr."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str, /) -> int:
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors takes str, not {type(text).__name__}")
        self._pending += text
        if self._pending.endswith("\n"):
            self.flush()
        return len(text)

    def flush(self) -> None:
        text, self._pending = self._pending.rstrip("\n"), ""
        if text:
            logger.error("%s", text)


class FileWrapper:
    """``wsgi.file_wrapper`` (PEP 3333, "Optional Platform-Specific File
    Handling"): a file as a response body. When it is a regular file with
    its own name, read from its start, the server sends it by its path
    (``http.response.pathsend``); else it is read ``block_size`` bytes at a
    time."""

    def __init__(self, file: IO[bytes], block_size: int = 64 * 1024) -> None:
        self.file = file
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self.file.read
        while block := read(self.block_size):
            yield block

    def close(self) -> None:
        """Close the file (the server calls it once the body is sent)."""
        close = getattr(self.file, "close", None)
        if close is not None:
            close()


def file_to_send(body: Iterable[bytes], length: int | None) -> str | None:
    """The path to send instead of iterating ``body``, when it is a
    :class:`FileWrapper` of a whole regular file, read from its start, that
    its name still designates (and the declared ``Content-Length``, if any,
    is its size); else ``None``."""
    if type(body) is not FileWrapper:
        return None
    file = body.file
    name = getattr(file, "name", None)
    try:
        if not isinstance(name, str) or file.tell() != 0:
            return None
        opened = os.fstat(file.fileno())
        path = os.path.abspath(name)
        named = os.stat(path)
    except (AttributeError, OSError, ValueError):
        return None
    if not stat.S_ISREG(opened.st_mode) or (named.st_dev, named.st_ino) != (
        opened.st_dev,
        opened.st_ino,
    ):
        return None
    if length is not None and length != opened.st_size:
        return None
    return path
