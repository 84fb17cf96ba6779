""":func:`from_wsgi`: a WSGI application (Flask, Django...) as an ASGI one,
so that trionet's ASGI server serves it (``trionet serve --wsgi``).

Theory of operation
-------------------
WSGI (PEP 3333) is synchronous: the application is a function that blocks
its caller while it works. Each request's call runs in a thread
(``trio.to_thread.run_sync``) under one ``trio.CapacityLimiter`` per
application: at most ``threads`` calls run at once, and a request beyond
that waits in its connection's task, which costs no thread, until one ends.

The thread reaches back into trio with ``trio.from_thread.run`` for every
piece of I/O, and waits for it:

* ``wsgi.input`` calls the ASGI ``receive`` only when the application reads,
  and holds at most one received piece of the body: an application that
  reads slowly holds the client back (TCP backpressure), one that never
  reads never pulls the body in. A client gone before the body is complete
  makes the read raise :exc:`~trionet.asgi.ClientDisconnected`.
* The response head is held until the first non-empty piece of the body
  (PEP 3333, "Buffering and Streaming"), so that ``start_response`` can
  still be called again with ``exc_info``; it goes out with that piece.
  Each piece is one ``send``, which returns once it is written: a slow
  client holds the application back. A body given as a list or tuple (what
  most applications return for a small response), and a piece that
  completes the ``Content-Length`` the application declared, end the
  response in the same message: one write, no chunked encoding.
* The iterable's ``close()`` is always called (PEP 3333), in the thread,
  also after an error or a disconnection. A client gone while the response
  is sent ends the call quietly.

An exception of the application leaves the ASGI call as it is: before the
response started the server answers 500, after it aborts the connection,
and either way logs the traceback (as for an ASGI application).

A thread cannot be interrupted, so the call is made with
``abandon_on_cancel=True``. When the request is cancelled (a shutdown whose
grace has run out), the connection's task stops waiting for the thread at
once and the connection is closed; the thread runs on to its end, and holds
its slot of the limiter until then. With ``abandon_on_cancel=True``, trio
runs the thread's ``from_thread.run`` calls as system tasks rather than in
the connection's task; so each of them first checks whether its call was
given up, and then raises ``ClientDisconnected`` at once rather than touch
the closed connection; once the trio run is over, ``from_thread.run``
raises ``trio.RunFinishedError``, which becomes the same. Whatever the
abandoned thread ends with, trio discards it: nothing is logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

import trio

from .. import _checks as checks
from .._workers import current_worker
from ._http import ClientDisconnected
from ._wsgi_environ import ErrorStream, Input, base_environ, environ_of, file_to_send, has_body

__all__ = ["DEFAULT_WSGI_THREADS", "from_wsgi"]

#: WSGI calls of one application at once: each holds a thread for as long
#: as it runs, slow database queries included, so a few slow requests must
#: not stop the rest (waitress runs 4 threads), while threads and the
#: database connections a framework opens per thread (Django) stay bounded.
DEFAULT_WSGI_THREADS = 10

T = TypeVar("T")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Write = Callable[[bytes], None]
ExcInfo = tuple[Any, BaseException | None, TracebackType | None]
StartResponse = Callable[..., Write]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Hop-by-hop fields an application may not send (PEP 3333, "Other HTTP
# Features"; RFC 9110 section 7.6.1). Transfer-Encoding is dropped instead
# (framing is the server's, as for ASGI applications), and Connection is
# left to the server, which honours "close".
_HOP_BY_HOP = frozenset(
    ("keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "upgrade")
)
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _status(status: object) -> int:
    """The code of a WSGI status line such as ``"200 OK"``."""
    if not isinstance(status, str):
        raise TypeError(f"start_response: status must be a str such as '200 OK', not {status!r}")
    code, space, reason = status.partition(" ")
    if not (len(code) == 3 and code.isascii() and code.isdigit() and space) or any(
        c in reason for c in "\r\n\0"
    ):
        raise ValueError(f"start_response: status must read like '200 OK', not {status!r}")
    if not 200 <= int(code) <= 999:
        raise ValueError(f"start_response: status must be a final one (200..999), not {status!r}")
    return int(code)


def _fields(headers: object) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """The response fields as ASGI wants them, and the declared length."""
    if not isinstance(headers, list | tuple):
        raise TypeError(f"start_response: headers must be a list, not {type(headers).__name__}")
    fields = []
    length = None
    for field in headers:
        if not (isinstance(field, tuple | list) and len(field) == 2):
            raise TypeError(f"start_response: each header is a (name, value) tuple, not {field!r}")
        name, value = field
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"start_response: header names and values are str, not {field!r}")
        if not name or not set(name) <= _TOKEN:
            raise ValueError(f"start_response: {name!r} is not a header name")
        if any(c in value for c in "\r\n\0") or not _latin1(value):
            raise ValueError(f"start_response: the value of {name} cannot be sent: {value!r}")
        lower = name.lower()
        if lower in _HOP_BY_HOP:
            raise ValueError(f"start_response: {name} is hop-by-hop, the server's (PEP 3333)")
        if lower == "transfer-encoding":
            continue
        if lower == "content-length":
            if not (value.strip().isascii() and value.strip().isdigit()):
                raise ValueError(f"start_response: Content-Length must be a number, not {value!r}")
            length = int(value)
        fields.append((name.encode("latin-1"), value.encode("latin-1")))
    return fields, length


def _latin1(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _bytes(piece: object) -> bytes:
    if isinstance(piece, bytes):
        return piece
    if isinstance(piece, bytearray | memoryview):
        return bytes(piece)
    raise TypeError(f"a WSGI response body is made of bytes, not {type(piece).__name__}")


class _Call:
    """One request's WSGI call: :meth:`run` in its thread, and the trio
    side of its I/O (see the module's theory of operation)."""

    def __init__(
        self, app: WSGIApp, scope: Scope, receive: Receive, send: Send, base: dict[str, Any]
    ) -> None:
        self._app = app
        self._receive = receive
        self._send = send
        self._errors = ErrorStream()
        body = Input(partial(self._to_trio, self._receive_body), empty=not has_body(scope))
        self._environ = environ_of(scope, base, body, self._errors)
        self._pathsend = "http.response.pathsend" in (scope.get("extensions") or {})
        self._start: dict[str, Any] | None = None  # held until the first piece
        self._length: int | None = None
        self._head_sent = False
        self._sent = 0
        self._complete = False
        # Set in trio: the connection's task no longer waits for the thread.
        self.abandoned = False
        # The client went away (a receive or a send said so).
        self.disconnected = False

    # -- in the thread ------------------------------------------------------------

    def run(self) -> None:
        """The WSGI call, from the application call to ``close()``."""
        try:
            body = self._app(self._environ, self._start_response)
            try:
                self._respond(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
        finally:
            self._errors.flush()

    def _to_trio(self, afn: Callable[[], Awaitable[T]]) -> T:
        if self.abandoned:
            raise ClientDisconnected("the server gave up on this request")
        try:
            return trio.from_thread.run(afn)
        except (trio.RunFinishedError, trio.Cancelled):
            # The run is over (or ending): nobody is there to answer.
            raise ClientDisconnected("the server has stopped") from None
        except ClientDisconnected:
            raise
        except BaseException:
            if self.abandoned:
                # The closed connection's complaint, after the server gave up.
                raise ClientDisconnected("the server gave up on this request") from None
            raise

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Write:
        if exc_info is not None:
            try:
                if self._head_sent and exc_info[1] is not None:
                    # Too late to replace the response: the error goes on.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self._start is not None:
            raise RuntimeError("start_response() was called twice without exc_info (PEP 3333)")
        code = _status(status)
        fields, self._length = _fields(headers)
        self._start = {"type": "http.response.start", "status": code, "headers": fields}
        return self._write

    def _write(self, data: bytes) -> None:
        """The legacy ``write()`` of PEP 3333: the bytes are sent at once."""
        if self._start is None:
            raise RuntimeError("write() before start_response()")
        data = _bytes(data)
        if data:
            self._send_piece(data)

    def _send_piece(self, data: bytes, last: bool = False) -> None:
        if self._start is None:
            raise RuntimeError("the WSGI application did not call start_response()")
        if self._complete:
            if data:
                raise RuntimeError("the WSGI application sent more than its Content-Length")
            return
        self._sent += len(data)
        if self._length is not None and self._sent >= self._length:
            last = True  # (and the server refuses more than declared)
        messages = [] if self._head_sent else [self._start]
        messages.append({"type": "http.response.body", "body": data, "more_body": not last})
        self._head_sent = True
        self._complete = last
        self._to_trio(partial(self._deliver, messages))

    def _respond(self, body: Iterable[bytes]) -> None:
        if isinstance(body, list | tuple):
            # All there is: one message ends the response.
            self._send_piece(b"".join(_bytes(piece) for piece in body), last=True)
            return
        if self._pathsend and not self._head_sent and self._start is not None:
            path = file_to_send(body, self._length)
            if path is not None:
                self._head_sent = self._complete = True
                pathsend = {"type": "http.response.pathsend", "path": path}
                self._to_trio(partial(self._deliver, [self._start, pathsend]))
                return
        for piece in body:
            data = _bytes(piece)
            if data:
                self._send_piece(data)
        self._send_piece(b"", last=True)

    # -- in trio ------------------------------------------------------------------

    async def _receive_body(self) -> tuple[bytes, bool]:
        if self.abandoned:
            raise ClientDisconnected("the server gave up on this request")
        message = await self._receive()
        if message["type"] != "http.request":
            self.disconnected = True
            raise ClientDisconnected("the client went away before its request body was complete")
        return _bytes(message.get("body", b"")), bool(message.get("more_body", False))

    async def _deliver(self, messages: list[dict[str, Any]]) -> None:
        if self.abandoned:
            raise ClientDisconnected("the server gave up on this request")
        for message in messages:
            try:
                await self._send(message)
            except OSError as exc:
                # The ASGI specification (2.4): send() raises an OSError once
                # the client is gone. (A file that cannot be sent is no sign.)
                if not isinstance(exc, ClientDisconnected) and "path" in message:
                    raise
                self.disconnected = True
                raise ClientDisconnected(f"the client has disconnected: {exc}") from exc


async def _lifespan(receive: Receive, send: Send) -> None:
    """WSGI has no lifespan: start-up and shut-down are complete at once."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _WSGIApplication:
    """The ASGI application :func:`from_wsgi` makes."""

    def __init__(self, app: WSGIApp, threads: int) -> None:
        self.wsgi_app = app
        self.threads = threads
        self._limiter = trio.CapacityLimiter(threads)
        self._base: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"trionet.asgi.from_wsgi({self.wsgi_app!r}, threads={self.threads})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            # WSGI has no WebSocket: the upgrade is refused (403).
            await receive()
            await send({"type": "websocket.close"})
        elif kind == "lifespan":
            await _lifespan(receive, send)
        else:
            raise ValueError(f"a WSGI application serves no {kind!r} scope")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._base is None:
            # Known once serving: a worker process knows it is one by then.
            self._base = base_environ(multiprocess=current_worker() is not None)
        call = _Call(self.wsgi_app, scope, receive, send, self._base)
        try:
            await trio.to_thread.run_sync(
                call.run,
                limiter=self._limiter,
                abandon_on_cancel=True,
                thread_name=f"WSGI {scope['method']} {scope['path']}",
            )
        except ClientDisconnected:
            if not call.disconnected:
                raise  # the application's own
        finally:
            # Returned, raised or cancelled: from now on its I/O is refused.
            call.abandoned = True


def from_wsgi(app: WSGIApp, *, threads: int = DEFAULT_WSGI_THREADS) -> ASGIApp:
    """A WSGI application (PEP 3333: Flask, Django, Bottle, Pyramid...) as
    an ASGI 3 application, for :func:`serve` (``trionet serve --wsgi``).

    Each request's call runs in a thread, at most ``threads`` at once; more
    requests wait, in trio, for a free thread. The request body is read
    from the client only as the application reads ``wsgi.input``, and each
    piece of the response is written before the application is asked for
    the next: a slow client holds the application back, and the other way
    round. ``wsgi.errors`` writes to the ``trionet.asgi`` logger. A
    ``lifespan`` scope is answered at once (WSGI has none); a WebSocket
    upgrade is refused with 403. A call still running when a shutdown's
    grace runs out is abandoned: its connection is closed, its thread runs
    to its end and its later I/O fails quietly.

    Args:
        app: The WSGI application: ``app(environ, start_response)``,
            returning an iterable of bytes.
        threads: How many calls may run at once (default 10); each holds
            a thread while it runs.

    Returns:
        The ASGI application.

    Raises:
        TypeError: ``app`` is not callable, or ``threads`` is not an int.
        ValueError: ``threads`` is below 1.
    """
    if not callable(app):
        raise TypeError(f"app must be a WSGI application (a callable), not {app!r}")
    count = checks.count("threads", threads)
    assert count is not None
    return _WSGIApplication(app, count)
