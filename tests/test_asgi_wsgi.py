"""WSGI applications on trionet (``trionet.asgi.from_wsgi``, ``trionet serve
--wsgi``): Flask and Django over loopback with httpx, curl and raw bytes;
the environ compared with the one waitress builds; the thread limit,
backpressure both ways, ``close()``, ``start_response`` and its
``exc_info``, the file wrapper, WebSocket and lifespan scopes, a shutdown
that gives up on a stuck call, and the command line.

Threads are waited for with ``threading.Event`` (``PATIENCE`` is a hang
guard, never a pause), trio tasks with ``trio.Event`` and
``wait_all_tasks_blocked``."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trionet
import trionet.asgi
from tests._http import LOOPBACK, exchange, parse, read_until_closed, request
from tests._peers import require_executable
from tests._process import STARTUP_TIMEOUT, child_env, read_port, running
from tests._wait import wait_until
from tests.test_cli import trionet_command
from trionet.asgi._wsgi_environ import Input, environ_of

APPS = Path(__file__).resolve().parent / "wsgi_apps"
DEADLINE = 20
# How long a WSGI call in a test waits for the test at most: a hang guard.
PATIENCE = 20.0
SERVING = r"^trionet serve: \S+ on http://127\.0\.0\.1:(\d+) \(Ctrl-C to stop\)$"

# A request after which the server closes the connection (ending the exchange).
CLOSING_GET = request(headers="Connection: close\r\n")

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]


@pytest.fixture(autouse=True, scope="module")
def _apps_importable() -> Iterator[None]:
    sys.path.insert(0, str(APPS))
    yield
    sys.path.remove(str(APPS))


@asynccontextmanager
async def serving(app: trionet.asgi.ASGIApp, **options: Any) -> AsyncIterator[str]:
    """``app`` served on loopback; yields its base URL."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK, **options))
        yield f"http://{LOOPBACK}:{server.port}"
        await server.shutdown()


def port_of(base: str) -> int:
    return int(base.rpartition(":")[2])


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


async def wait_for_thread(event: threading.Event) -> None:
    """Wait, without blocking trio, until a WSGI thread sets ``event``."""
    assert await trio.to_thread.run_sync(event.wait, PATIENCE, abandon_on_cancel=True)


# -- Flask -------------------------------------------------------------------------


async def test_flask_json_query_environ_head_and_404() -> None:
    from flask_app import app  # type: ignore[import-not-found]

    async with serving(trionet.asgi.from_wsgi(app)) as base, httpx.AsyncClient() as client:
        with trio.fail_after(DEADLINE):
            echo = await client.post(f"{base}/echo?tag=a&tag=b", json={"name": "pen"})
            index = await client.get(f"{base}/")
            head = await client.head(f"{base}/")
            missing = await client.get(f"{base}/missing")
            environ = await client.get(f"{base}/environ?q=1+2", headers={"X-Trace": "abc"})
    assert echo.json() == {"received": {"name": "pen"}, "args": {"tag": ["a", "b"]}}
    assert index.json()["multithread"] is True
    assert index.json()["multiprocess"] is False  # not in a worker process
    assert index.headers["content-length"] == str(len(index.content))  # one write, no chunks
    assert head.status_code == 200
    assert head.headers["content-length"] == index.headers["content-length"]
    assert head.content == b""
    assert missing.status_code == 404
    seen = environ.json()
    assert {key: seen[key] for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO")} == {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/environ",
    }
    assert (seen["QUERY_STRING"], seen["HTTP_X_TRACE"]) == ("q=1+2", "abc")
    assert (seen["SERVER_NAME"], seen["SERVER_PORT"]) == (LOOPBACK, str(port_of(base)))
    assert (seen["REMOTE_ADDR"], seen["SERVER_PROTOCOL"]) == (LOOPBACK, "HTTP/1.1")
    assert seen["wsgi.url_scheme"] == "http"
    assert seen["wsgi.input_terminated"] is True
    assert seen["wsgi.version"] == [1, 0]


async def test_a_flask_stream_arrives_before_the_generator_ends() -> None:
    """The generator waits, after its first piece, until the test has that
    piece: it comes through only if each piece is sent as it is made."""
    import flask_app

    flask_app.PROCEED.clear()
    received = b""
    try:
        async with serving(trionet.asgi.from_wsgi(flask_app.app)) as base:
            with trio.fail_after(DEADLINE):
                async with (
                    httpx.AsyncClient() as client,
                    client.stream("GET", f"{base}/stream") as response,
                ):
                    assert response.headers["transfer-encoding"] == "chunked"
                    async for piece in response.aiter_bytes():
                        received += piece
                        if received == b"first\n":
                            flask_app.PROCEED.set()
    finally:
        flask_app.PROCEED.set()  # never leave the thread waiting
    assert received == b"first\nsecond\n"


async def test_flask_reads_a_large_upload_in_pieces() -> None:
    from flask_app import app

    body = os.urandom(4 * 1024 * 1024)
    wsgi = trionet.asgi.from_wsgi(app)
    async with (
        serving(wsgi, max_body_size=8 * 1024 * 1024) as base,
        httpx.AsyncClient(timeout=DEADLINE) as client,
    ):
        with trio.fail_after(DEADLINE):
            response = await client.post(f"{base}/upload", content=body)
    answer = response.json()
    assert (answer["size"], answer["sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    assert answer["pieces"] == len(body) // 65536


async def test_a_failing_flask_view_is_a_500_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flask_app import app

    async with serving(trionet.asgi.from_wsgi(app)) as base, httpx.AsyncClient() as client:
        with trio.fail_after(DEADLINE):
            failed = await client.get(f"{base}/boom")
            after = await client.get(f"{base}/")
    assert failed.status_code == 500
    assert after.status_code == 200
    # Flask answered the 500 itself and logged the traceback (with pytest's
    # handler installed, on its own logger rather than to wsgi.errors).
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.name == "flask_app"
    assert record.getMessage() == "Exception on /boom [GET]"
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "the view failed"


# -- Django ------------------------------------------------------------------------


async def test_django_get_and_a_form_post_under_a_root_path() -> None:
    from django_app import application  # type: ignore[import-not-found]

    wsgi = trionet.asgi.from_wsgi(application)
    async with serving(wsgi, root_path="/site") as base, httpx.AsyncClient() as client:
        with trio.fail_after(DEADLINE):
            hello = await client.get(f"{base}/hello/?name=caf%C3%A9")
            posted = await client.post(f"{base}/form/", data={"colour": ["red", "blue"], "x": "é"})
    assert (hello.status_code, hello.text) == (200, "Hello, café")
    assert posted.json() == {
        "fields": {"colour": ["red", "blue"], "x": ["é"]},
        "path": "/site/form/",  # Django puts SCRIPT_NAME back in front
        "script_name": "/site",
    }


# -- the environ, against waitress's ---------------------------------------------------

# Targets below the application's root, each with a tricky part.
TARGETS = [
    "/a%2Fb/caf%C3%A9/x+y?q=1+2&r=%20&s=caf%C3%A9",
    "/plain",
    "/empty?",
    "/%FF%FE/latin?raw=%FF",
]
# Keys that are each server's own (its name, version, ports), or waitress's alone.
OWN_KEYS = {"SERVER_NAME", "SERVER_PORT", "SERVER_SOFTWARE", "REMOTE_PORT", "REMOTE_HOST"}
OWN_KEYS |= {"REQUEST_URI"}


def environ_request(target: str, body: bytes = b"") -> bytes:
    headers = "User-Agent: tests\r\nX-Custom: v\r\nX_Sneaky: dropped\r\nConnection: close\r\n"
    if body:
        headers += "Content-Type: application/x-www-form-urlencoded\r\n"
    raw = request("POST" if body else "GET", target, headers, body)
    return raw.replace(b"Host: test\r\n", b"Host: example.test:8080\r\n")


async def environ_from(port: int, target: str, body: bytes = b"") -> dict[str, Any]:
    [reply] = parse(await exchange(port, environ_request(target, body)), [("GET", target)])
    assert reply.status == 200
    found: dict[str, Any] = json.loads(reply.body)
    return found


@pytest.mark.parametrize("root", ["", "/root"])
async def test_the_environ_is_the_one_waitress_builds(root: str) -> None:
    from environ_app import app  # type: ignore[import-not-found]

    command = [sys.executable, str(APPS / "environ_app.py"), root]
    async with (
        running(command, env=child_env()) as (_process, output),
        serving(trionet.asgi.from_wsgi(app), root_path=root) as base,
    ):
        waitress_port = await read_port(output, r"^waitress on port (\d+)$")
        with trio.fail_after(DEADLINE):
            for target in TARGETS:
                ours = await environ_from(port_of(base), target)
                theirs = await environ_from(waitress_port, root + target)
                assert ours.keys() - OWN_KEYS == theirs.keys() - OWN_KEYS, target
                for key in ours.keys() - OWN_KEYS:
                    assert ours[key] == theirs[key], (target, key)
            body = b"a=1&b=caf%C3%A9"
            ours = await environ_from(port_of(base), "/form", body)
            theirs = await environ_from(waitress_port, root + "/form", body)
    assert {key: ours[key] for key in ours.keys() - OWN_KEYS} == {
        key: theirs[key] for key in theirs.keys() - OWN_KEYS
    }
    assert (ours["CONTENT_LENGTH"], ours["body"]) == (str(len(body)), body.decode())
    assert ours["SCRIPT_NAME"] == root


def test_environ_details_waitress_does_not_share() -> None:
    """Repeated fields (waitress joins them with ", "), the Cookie field, and
    a request on a Unix socket, whose server has no port: the Host field
    names it."""
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "scheme": "https",
        "http_version": "1.0",
        "path": "/app/x",
        "raw_path": b"/app/x",
        "root_path": "/app",
        "query_string": b"",
        "headers": [
            (b"host", b"[::1]:8443"),
            (b"accept", b"text/html"),
            (b"accept", b"*/*"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"content-type", b"text/plain"),
        ],
        "client": None,
        "server": ("/run/app.sock", None),
    }
    environ = environ_of(scope, {}, Input(lambda: (b"", False), empty=True), None)  # type: ignore[arg-type]
    assert (environ["HTTP_ACCEPT"], environ["HTTP_COOKIE"]) == ("text/html,*/*", "a=1; b=2")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("[::1]", "8443")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/app", "/x")
    assert (environ["SERVER_PROTOCOL"], environ["wsgi.url_scheme"]) == ("HTTP/1.0", "https")
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert "REMOTE_ADDR" not in environ
    assert "CONTENT_LENGTH" not in environ
    del scope["headers"][0]
    environ = environ_of(scope, {}, Input(lambda: (b"", False), empty=True), None)  # type: ignore[arg-type]
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("localhost", "443")


# -- the request body ----------------------------------------------------------------


def test_the_input_reads_as_a_file_across_pieces() -> None:
    pieces = iter([b"alp", b"ha\nbet", b"", b"a\ngamma\nde", b"lta\nend"])
    pulled: list[int] = []

    def pull() -> tuple[bytes, bool]:
        piece = next(pieces)
        pulled.append(len(piece))
        return piece, piece != b"lta\nend"

    body = Input(pull, empty=False)
    assert body.readline() == b"alpha\n"
    assert pulled == [3, 6]  # no more than the line needed
    assert body.readline(2) == b"be"
    assert body.read1(10) == b"t"  # what the piece at hand has
    assert body.read(5) == b"a\ngam"
    assert body.readlines() == [b"ma\n", b"delta\n", b"end"]
    assert body.read() == body.readline() == body.read1() == b""
    lines = Input(iter([(b"one\ntwo\nthree", False)]).__next__, empty=False)
    assert list(lines) == [b"one\n", b"two\n", b"three"]
    assert Input(iter([(b"x" * 10, False)]).__next__, empty=False).read() == b"x" * 10
    assert Input(pull, empty=True).read() == b""  # a request without a body: no pull


async def test_a_chunked_upload_from_curl_ends_the_input() -> None:
    """curl sends stdin chunked (no Content-Length): the input ends where
    the body does (``wsgi.input_terminated``)."""
    curl = require_executable("curl", "apt-get install curl")

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        lines = list(environ["wsgi.input"])
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps([len(lines), "CONTENT_LENGTH" in environ]).encode()]

    text = b"".join(b"line %d\n" % n for n in range(10000))
    async with serving(trionet.asgi.from_wsgi(app)) as base:
        with trio.fail_after(DEADLINE):
            result = await trio.run_process(
                [curl, "-sS", "-T", "-", f"{base}/"], stdin=text, capture_stdout=True
            )
    assert json.loads(result.stdout) == [10000, False]


async def test_the_body_is_pulled_only_as_the_app_reads_it() -> None:
    """The app reads nothing until told: the client's upload stalls (TCP
    backpressure) with nothing pulled; then it completes, and the adapter
    never holds much more than the app has read."""
    total, piece = 64 * 1024 * 1024, b"x" * (1024 * 1024)  # more than kernel buffers hold
    go = threading.Event()
    pulled = [0]
    lags: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        go.wait(PATIENCE)
        read = 0
        while data := environ["wsgi.input"].read(65536):
            read += len(data)
            lags.append(pulled[0] - read)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(read).encode()]

    wsgi = trionet.asgi.from_wsgi(app)

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            pulled[0] += len(message.get("body", b""))
            return message

        await wsgi(scope, counted, send)

    uploaded = trio.Event()
    try:
        async with serving(counting, max_body_size=2 * total) as base, trio.open_nursery() as n:
            with trio.fail_after(DEADLINE):
                conn = await trionet.connect_tcp(LOOPBACK, port_of(base))

                async def upload() -> None:
                    head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\n\r\n"
                    await conn.send(head.encode())
                    for _ in range(total // len(piece)):
                        await conn.send(piece)
                    uploaded.set()

                n.start_soon(upload)
                await trio.testing.wait_all_tasks_blocked()
                assert not uploaded.is_set()  # held back: nobody reads
                assert pulled[0] == 0
                go.set()
                await uploaded.wait()
                raw = b""
                while b"\r\n\r\n" not in raw or not raw.endswith(str(total).encode()):
                    event = await conn.__anext__()
                    raw += event.data  # type: ignore[union-attr]
                await conn.aclose()
    finally:
        go.set()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert pulled[0] == total
    assert max(lags) < 256 * 1024  # one received piece at a time, not the upload


async def test_a_client_gone_during_the_upload_is_client_disconnected_in_the_app(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[BaseException] = []
    done = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            seen.append(exc)
            raise
        finally:
            done.set()
        return []  # pragma: no cover

    async with serving(trionet.asgi.from_wsgi(app)) as base:
        with trio.fail_after(DEADLINE):
            conn = await trionet.connect_tcp(LOOPBACK, port_of(base))
            await conn.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npart")
            await conn.aclose()
            await wait_for_thread(done)
    [error] = seen
    assert isinstance(error, trionet.asgi.ClientDisconnected)
    assert not errors_logged(caplog)  # a client that left is no error


async def test_a_body_over_max_body_size_is_answered_413_by_the_server() -> None:
    """A chunked body (its size unknown at first) grows past the limit while
    the app reads it: the server answers 413, the app's read raises."""
    seen: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            seen.append(exc)
            raise
        start_response("200 OK", [])  # pragma: no cover
        return [b"read it all"]  # pragma: no cover

    chunk = b"800\r\n" + b"x" * 0x800 + b"\r\n"
    upload = request("POST", "/", "Transfer-Encoding: chunked\r\n") + chunk * 3 + b"0\r\n\r\n"
    async with serving(trionet.asgi.from_wsgi(app), max_body_size=4000) as base:
        [reply] = parse(await exchange(port_of(base), upload), [("POST", "/")])
    assert reply.status == 413
    assert [type(exc) for exc in seen] == [trionet.asgi.ClientDisconnected]


# -- the response ------------------------------------------------------------------


async def test_a_client_gone_mid_stream_gets_the_iterable_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed = threading.Event()

    class Endless:
        def __iter__(self) -> Endless:
            return self

        def __next__(self) -> bytes:
            return b"x" * 65536

        def close(self) -> None:
            closed.set()

    def app(environ: Environ, start_response: StartResponse) -> Endless:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless()

    async with serving(trionet.asgi.from_wsgi(app)) as base:
        with trio.fail_after(DEADLINE):
            conn = await trionet.connect_tcp(LOOPBACK, port_of(base))
            await conn.send(request("GET", "/"))
            event = await conn.__anext__()
            assert event.data.startswith(b"HTTP/1.1 200 ")  # type: ignore[union-attr]
            await conn.aclose()
            await wait_for_thread(closed)
    assert not errors_logged(caplog)


async def test_a_body_that_reaches_its_content_length_ends_the_response() -> None:
    """The response is complete once the declared length is sent, while the
    generator still runs (the test releases it only after the response)."""
    proceed = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", "5"), ("Transfer-Encoding", "chunked")])
        yield b"hello"
        proceed.wait(PATIENCE)

    try:
        async with serving(trionet.asgi.from_wsgi(app)) as base, httpx.AsyncClient() as client:
            with trio.fail_after(DEADLINE):
                response = await client.get(f"{base}/")
                proceed.set()
    finally:
        proceed.set()
    assert (response.status_code, response.content) == (200, b"hello")
    assert "transfer-encoding" not in response.headers  # the app's is dropped


async def test_write_sends_at_once() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"hello, ")
        write(b"")
        return [b"world"]

    async with serving(trionet.asgi.from_wsgi(app)) as base:
        [reply] = parse(await exchange(port_of(base), CLOSING_GET), [("GET", "/")])
    assert (reply.status, reply.body) == (200, b"hello, world")
    assert reply.headers["transfer-encoding"] == "chunked"


async def test_connection_close_from_the_app_is_honoured() -> None:
    """Connection is hop-by-hop, the server's: its ``close`` ends the
    connection after the response (the second request, pipelined, goes
    unanswered)."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Connection", "close"), ("Content-Type", "text/plain")])
        return [b"bye"]

    async with serving(trionet.asgi.from_wsgi(app)) as base:
        raw = await exchange(port_of(base), request() + request())
    [reply] = parse(raw, [("GET", "/"), ("GET", "/")])
    assert (reply.status, reply.body, reply.headers["connection"]) == (200, b"bye", "close")


async def test_exc_info_replaces_a_response_not_sent_yet() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("the page failed")
        except ValueError:
            start_response("503 Service Unavailable", [("Retry-After", "5")], sys.exc_info())
        return [b"later"]

    async with serving(trionet.asgi.from_wsgi(app)) as base, httpx.AsyncClient() as client:
        with trio.fail_after(DEADLINE):
            response = await client.get(f"{base}/")
    assert (response.status_code, response.text) == (503, "later")
    assert response.headers["retry-after"] == "5"


async def test_exc_info_after_the_head_was_sent_raises_and_aborts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise ValueError("too late")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        return [b"never"]  # pragma: no cover

    async with serving(trionet.asgi.from_wsgi(app)) as base:
        raw = await exchange(port_of(base), CLOSING_GET)
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"partial" in raw
    assert parse(raw, [("GET", "/")]) == []  # cut short, not complete
    assert any("too late" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def _status_int(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response(200, [])
    return [b""]


def _status_without_reason(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("OK", [])
    return [b""]


def _headers_as_dict(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", {"Content-Type": "text/plain"})
    return [b""]


def _header_value_not_str(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("X-Count", 1)])
    return [b""]


def _hop_by_hop_header(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Keep-Alive", "timeout=5")])
    return [b""]


def _started_twice(environ: Environ, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [])
    start_response("200 OK", [])
    return [b""]


def _never_started(environ: Environ, start_response: StartResponse) -> list[bytes]:
    return [b"body"]


def _text_body(environ: Environ, start_response: StartResponse) -> list[str]:
    start_response("200 OK", [])
    return ["text"]


def _raises(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise RuntimeError("the application failed")


@pytest.mark.parametrize(
    ("app", "error"),
    [
        (_status_int, "status must be a str"),
        (_status_without_reason, "status must read like '200 OK'"),
        (_headers_as_dict, "headers must be a list"),
        (_header_value_not_str, "header names and values are str"),
        (_hop_by_hop_header, "Keep-Alive is hop-by-hop"),
        (_started_twice, "start_response() was called twice"),
        (_never_started, "did not call start_response()"),
        (_text_body, "made of bytes, not str"),
        (_raises, "the application failed"),
    ],
    ids=lambda value: getattr(value, "__name__", "")[1:] or None,
)
async def test_a_misbehaving_application_is_a_500_and_logged(
    app: Any, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(trionet.asgi.from_wsgi(app)) as base:
        [reply] = parse(await exchange(port_of(base), CLOSING_GET), [("GET", "/")])
        [second] = parse(await exchange(port_of(base), CLOSING_GET), [("GET", "/")])
    assert reply.status == second.status == 500
    logged = [str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.name == "trionet.http"]
    assert any(error in message for message in logged), logged


async def test_the_file_wrapper_sends_a_file_by_its_path(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(300_000))
    files: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if environ["PATH_INFO"] == "/file":
            file: Any = path.open("rb")
        else:
            file = io.BytesIO(path.read_bytes())  # no name, no descriptor
        files.append(file)
        return environ["wsgi.file_wrapper"](file, 8192)

    wsgi = trionet.asgi.from_wsgi(app)
    sent: list[str] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def record(message: dict[str, Any]) -> None:
            if scope["type"] == "http":
                sent.append(message["type"])
            await send(message)

        await wsgi(scope, receive, record)

    async with serving(recording) as base, httpx.AsyncClient() as client:
        with trio.fail_after(DEADLINE):
            by_path = await client.get(f"{base}/file")
            by_path_kinds, sent[:] = list(sent), []
            in_memory = await client.get(f"{base}/memory")
    assert by_path.content == in_memory.content == path.read_bytes()
    assert by_path.headers["content-length"] == str(path.stat().st_size)
    assert by_path_kinds == ["http.response.start", "http.response.pathsend"]
    assert sent.count("http.response.body") > 1  # read 8 KiB at a time
    assert all(file.closed for file in files)  # close() reached the file


# -- threads, shutdown, other scopes ------------------------------------------------------


async def test_threads_bound_the_calls_at_once() -> None:
    """With one thread, a second request waits (in trio) for the first call
    to end before its own starts."""
    entered = {"a": threading.Event(), "b": threading.Event()}
    release = threading.Event()
    order: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        name = environ["PATH_INFO"].strip("/")
        order.append(f"{name} in")
        entered[name].set()
        if name == "a":
            release.wait(PATIENCE)
        order.append(f"{name} out")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]

    wsgi = trionet.asgi.from_wsgi(app, threads=1)
    limiter: trio.CapacityLimiter = wsgi._limiter  # type: ignore[attr-defined]
    answers: dict[str, str] = {}
    try:
        async with serving(wsgi) as base, httpx.AsyncClient() as client:

            async def get(name: str) -> None:
                answers[name] = (await client.get(f"{base}/{name}")).text

            with trio.fail_after(DEADLINE):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(get, "a")
                    await wait_for_thread(entered["a"])
                    nursery.start_soon(get, "b")
                    await wait_until(lambda: limiter.statistics().tasks_waiting == 1)
                    assert not entered["b"].is_set()
                    release.set()
    finally:
        release.set()
    assert answers == {"a": "a", "b": "b"}
    assert order == ["a in", "a out", "b in", "b out"]


async def test_a_shutdown_gives_up_on_a_stuck_call_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The call blocks past the shutdown's grace: the shutdown returns and
    closes the connection; the thread, released later, finds its response
    refused without a word, and closes its iterable."""
    caplog.set_level(logging.DEBUG)
    entered, release, closed = threading.Event(), threading.Event(), threading.Event()

    class Late:
        def __iter__(self) -> Iterator[bytes]:
            yield b"too late"

        def close(self) -> None:
            closed.set()

    def app(environ: Environ, start_response: StartResponse) -> Late:
        entered.set()
        release.wait(PATIENCE)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Late()

    wsgi = trionet.asgi.from_wsgi(app)
    limiter: trio.CapacityLimiter = wsgi._limiter  # type: ignore[attr-defined]
    try:
        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                server = await nursery.start(partial(trionet.asgi.serve, wsgi, 0, LOOPBACK))
                async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
                    await conn.send(request("GET", "/stuck"))
                    await wait_for_thread(entered)
                    await server.shutdown(grace=0.1)
                    raw = await read_until_closed(conn)  # closed by the server
                assert raw == b""  # no answer: the connection was closed
                assert not closed.is_set()  # the thread still runs
            release.set()
            await wait_for_thread(closed)
            await wait_until(lambda: limiter.statistics().borrowed_tokens == 0)  # it ended
    finally:
        release.set()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_shutdown_gives_up_on_a_call_held_by_a_slow_client_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client never reads, so the call ends up waiting in a send: past
    the grace, the shutdown closes the connection under that send, and the
    thread ends (its iterable closed) without a traceback."""
    caplog.set_level(logging.DEBUG)
    started, closed = threading.Event(), threading.Event()

    class Endless:
        def __iter__(self) -> Iterator[bytes]:
            started.set()
            while True:
                yield b"x" * 65536

        def close(self) -> None:
            closed.set()

    def app(environ: Environ, start_response: StartResponse) -> Endless:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Endless()

    wsgi = trionet.asgi.from_wsgi(app)
    limiter: trio.CapacityLimiter = wsgi._limiter  # type: ignore[attr-defined]
    with trio.fail_after(DEADLINE):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(partial(trionet.asgi.serve, wsgi, 0, LOOPBACK))
            async with await trionet.connect_tcp(LOOPBACK, server.port) as conn:
                await conn.send(request("GET", "/"))
                await wait_for_thread(started)
                await server.shutdown(grace=0.1)
        await wait_for_thread(closed)
        await wait_until(lambda: limiter.statistics().borrowed_tokens == 0)  # it ended
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def test_a_websocket_upgrade_is_refused_and_lifespan_is_answered() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"plain HTTP"]

    upgrade = (
        b"GET /chat HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade, close\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with serving(trionet.asgi.from_wsgi(app), lifespan="on") as base:
        [refused] = parse(await exchange(port_of(base), upgrade), [("GET", "/chat")])
        [plain] = parse(await exchange(port_of(base), CLOSING_GET), [("GET", "/")])
    assert refused.status == 403
    assert (plain.status, plain.body) == (200, b"plain HTTP")


def test_from_wsgi_and_load_app_check_their_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return []  # pragma: no cover

    for wrong in ("2", 2.0, True, None):
        with pytest.raises(TypeError, match="threads must be an int"):
            trionet.asgi.from_wsgi(app, threads=wrong)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threads must be >= 1, not 0"):
        trionet.asgi.from_wsgi(app, threads=0)
    with pytest.raises(TypeError, match="must be a WSGI application"):
        trionet.asgi.from_wsgi("app:app")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="give wsgi=True"):
        trionet.asgi.load_app("flask_app:app", threads=4)
    asgi_apps = str(APPS.parent / "asgi_apps")
    monkeypatch.syspath_prepend(asgi_apps)  # (and taken off sys.path again after)
    with pytest.raises(trionet.asgi.AppLoadError, match="plain:app is not a WSGI application"):
        trionet.asgi.load_app("plain:app", app_dir=asgi_apps, wsgi=True)
    loaded = trionet.asgi.load_app("flask_app:app", wsgi=True, threads=4)
    assert repr(loaded).startswith("trionet.asgi.from_wsgi(<Flask 'flask_app'>, threads=4)")


async def test_wsgi_errors_go_to_the_trionet_asgi_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("first line\nsecond ")
        errors.writelines(["line\n", "unfinished"])
        start_response("200 OK", [])
        return [b""]

    async with serving(trionet.asgi.from_wsgi(app)) as base:
        [reply] = parse(await exchange(port_of(base), CLOSING_GET), [("GET", "/")])
    assert reply.status == 200
    logged = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    assert logged == [
        ("trionet.asgi", logging.ERROR, "first line\nsecond line"),
        ("trionet.asgi", logging.ERROR, "unfinished"),  # flushed as the call ended
    ]


# -- the command line --------------------------------------------------------------


def serve_command(app: str, *flags: str) -> list[str]:
    return [
        *trionet_command(),
        "serve",
        "--wsgi",
        app,
        "--app-dir",
        str(APPS),
        "--port",
        "0",
        *flags,
    ]


async def stop(process: trio.Process) -> int:
    process.send_signal(signal.SIGINT)
    with trio.fail_after(STARTUP_TIMEOUT):
        return await process.wait()


async def test_trionet_serve_wsgi_serves_flask() -> None:
    command = serve_command("flask_app:app", "--threads", "2")
    async with running(command, stderr=subprocess.STDOUT) as (process, output):
        port = await read_port(output, SERVING)
        async with httpx.AsyncClient() as client:
            with trio.fail_after(STARTUP_TIMEOUT):
                index = await client.get(f"http://127.0.0.1:{port}/")
                echo = await client.post(f"http://127.0.0.1:{port}/echo?x=1", json=[1, 2])
        assert await stop(process) == 0
    assert index.json()["multiprocess"] is False
    assert echo.json() == {"received": [1, 2], "args": {"x": ["1"]}}
    assert not any("Traceback" in line for line in output.lines)


async def test_trionet_serve_wsgi_with_workers() -> None:
    command = serve_command("flask_app:app", "--workers", "2")
    async with running(command, stderr=subprocess.STDOUT) as (process, output):
        port = await read_port(output, SERVING)
        pids = set()
        async with httpx.AsyncClient() as client:
            with trio.fail_after(STARTUP_TIMEOUT):
                while len(pids) < 2:  # new connections until both workers answered
                    response = await client.get(
                        f"http://127.0.0.1:{port}/", headers={"Connection": "close"}
                    )
                    assert response.json()["multiprocess"] is True
                    pids.add(response.json()["pid"])
        assert process.pid not in pids
        assert await stop(process) == 0


async def test_trionet_serve_wsgi_exits_past_a_stuck_call() -> None:
    """A view that never returns: once the grace has run out, the connection
    is closed and the process exits 0 at once (its thread is abandoned)."""
    command = serve_command("flask_app:app", "--grace", "0.2")
    async with running(command, stderr=subprocess.STDOUT) as (process, output):
        port = await read_port(output, SERVING)
        with trio.fail_after(STARTUP_TIMEOUT):
            async with await trionet.connect_tcp(LOOPBACK, port) as conn:
                await conn.send(request("GET", "/stuck"))
                await output.wait_for(r"^stuck request started$")
                process.send_signal(signal.SIGTERM)
                raw = await read_until_closed(conn)
            assert await process.wait() == 0
        rest = await output.read_rest()
    assert raw == b""
    assert not any("Traceback" in line for line in output.lines), rest


@pytest.mark.parametrize(
    ("arguments", "status", "message"),
    [
        (["serve", "flask_app:app", "--threads", "4"], 2, "--threads goes with --wsgi"),
        (["serve", "--wsgi", "flask_app:app", "--threads", "0"], 2, "must be at least 1"),
        (["serve", "--wsgi", "flask_app:missing"], 1, "has no attribute 'missing'"),
    ],
)
async def test_trionet_serve_wsgi_usage_errors(
    arguments: list[str], status: int, message: str
) -> None:
    command = [*trionet_command(), *arguments, "--app-dir", str(APPS), "--port", "0"]
    with trio.fail_after(STARTUP_TIMEOUT):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    assert result.returncode == status
    assert message in result.stderr.decode()
    assert b"Traceback" not in result.stderr
