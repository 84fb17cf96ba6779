"""ASGI ``http`` conformance, point by point against the ASGI HTTP and
WebSocket specification (version 2.5, asgiref's ``specs/www.rst``): the
scope's every key, each message and ordering rule, each error path. Plain
ASGI applications written here, served by ``trionet.asgi.serve`` on
loopback, and driven with raw bytes parsed by h11 as the client."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trionet
import trionet.asgi
import trionet.http
import trionet.tls
from tests._http import LOOPBACK, exchange, parse, read_until_closed, request
from tests._wait import wait_until
from trionet.testing import TLSCertificates

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEADLINE = 10


@asynccontextmanager
async def serving(app: trionet.asgi.ASGIApp, **options: Any) -> AsyncIterator[int]:
    """``app`` served on a loopback port (yielded) until the block ends."""
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, app, 0, LOOPBACK, **options))
        yield server.port
        nursery.cancel_scope.cancel()


async def hello(send: Send, body: bytes = b"hello", status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


class Recorder:
    """An app that records its scope and messages, then answers ``hello``."""

    def __init__(self) -> None:
        self.scopes: list[Message] = []
        self.received: list[Message] = []

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"no {scope['type']} here")
        self.scopes.append(scope)
        while True:
            message = await receive()
            self.received.append(message)
            if not message.get("more_body"):
                break
        await hello(send)


async def test_the_scope_has_every_key_of_the_specification() -> None:
    app = Recorder()
    raw = (
        b"GET /caf%C3%A9/a%2Fb?x=1&y=%20 HTTP/1.1\r\nHost: test\r\n"
        b"X-Dup: one\r\nX-Mixed-Case: v\r\nx-dup: two\r\nConnection: close\r\n\r\n"
    )
    async with serving(app) as port:
        [reply] = parse(await exchange(port, raw), [("GET", "/")])
    assert reply.status == 200
    [scope] = app.scopes
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.5"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    # Percent-decoded as UTF-8 (%2F too: raw_path keeps the difference).
    assert scope["path"] == "/café/a/b"
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == b"x=1&y=%20"
    assert scope["root_path"] == ""
    # Every field as received, in order, duplicates kept, names lower-cased.
    assert scope["headers"] == [
        (b"host", b"test"),
        (b"x-dup", b"one"),
        (b"x-mixed-case", b"v"),
        (b"x-dup", b"two"),
        (b"connection", b"close"),
    ]
    host, client_port = scope["client"]
    assert host == LOOPBACK
    assert isinstance(client_port, int)
    assert client_port > 0
    assert scope["server"] == (LOOPBACK, port)
    assert scope["state"] == {}
    assert set(scope["extensions"]) >= {
        "http.response.trailers",
        "http.response.pathsend",
        "http.response.early_hint",
    }
    assert "tls" not in scope["extensions"]
    # A request without a body: one message, empty and final.
    assert app.received == [{"type": "http.request", "body": b"", "more_body": False}]


async def test_root_path_is_in_front_of_path_and_raw_path() -> None:
    app = Recorder()
    async with serving(app, root_path="/api") as port:
        await exchange(port, request("GET", "/items?a=1", "Connection: close\r\n"))
    [scope] = app.scopes
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/api",
        "/api/items",
        b"/api/items",
    )
    assert scope["query_string"] == b"a=1"


async def test_http_1_0_and_an_absolute_target() -> None:
    app = Recorder()
    async with serving(app) as port:
        await exchange(port, b"GET http://test/abs?q HTTP/1.0\r\nHost: test\r\n\r\n")
    [scope] = app.scopes
    assert scope["http_version"] == "1.0"
    assert (scope["path"], scope["query_string"]) == ("/abs", b"q")


async def test_a_chunked_body_comes_in_pieces_with_more_body() -> None:
    app = Recorder()
    chunked = (
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    async with serving(app) as port:
        [reply] = parse(await exchange(port, chunked), [("POST", "/")])
    assert reply.status == 200
    assert b"".join(m["body"] for m in app.received) == b"hello world"
    assert all(m["type"] == "http.request" for m in app.received)
    assert [m["more_body"] for m in app.received][-1] is False
    assert all(m["more_body"] for m in app.received[:-1])


async def test_a_counted_body_ends_without_an_empty_message() -> None:
    app = Recorder()
    async with serving(app) as port:
        await exchange(port, request("POST", "/", "Connection: close\r\n", b"0123456789"))
    assert app.received == [{"type": "http.request", "body": b"0123456789", "more_body": False}]


async def test_100_continue_only_once_the_app_reads() -> None:
    async def reads(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError
        if scope["path"] == "/read":
            assert (await receive())["body"] == b"data"
        await hello(send)

    head = "Expect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n"
    async with serving(reads) as port:
        with trio.fail_after(DEADLINE):
            async with await trionet.connect_tcp(LOOPBACK, port) as conn:
                await conn.send(request("POST", "/read", head).replace(b"\r\n\r\n", b"\r\n\r\n", 1))
                seen = b""
                while b"100 Continue" not in seen:
                    seen += (await anext(aiter(conn))).data  # type: ignore[union-attr]
                await conn.send(b"data")
                seen += await read_until_closed(conn)
        [reply] = parse(seen, [("POST", "/read")])
        assert (reply.informational, reply.status) == ([100], 200)
        # An app that answers without reading: no 100, and the body is never
        # asked for.
        raw = await exchange(port, request("POST", "/", head))
        [reply] = parse(raw, [("POST", "/")])
        assert (reply.informational, reply.status) == ([], 200)


async def test_a_body_in_one_message_gets_its_content_length() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await hello(send, b"x" * 1000)

    async with serving(app, lifespan="off") as port:
        [reply] = parse(
            await exchange(port, request(headers="Connection: close\r\n")), [("GET", "/")]
        )
    assert reply.headers["content-length"] == "1000"
    assert "transfer-encoding" not in reply.headers
    assert reply.body == b"x" * 1000


async def test_a_streamed_body_is_chunked_and_transfer_encoding_is_the_servers() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"transfer-encoding", b"gzip")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        for piece in (b"one ", b"two ", b""):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"three"})

    async with serving(app, lifespan="off") as port:
        [reply] = parse(
            await exchange(port, request(headers="Connection: close\r\n")), [("GET", "/")]
        )
    assert reply.status == 201
    assert reply.headers["transfer-encoding"] == "chunked"  # the app's field dropped
    assert reply.body == b"one two three"


async def test_head_gets_the_headers_and_no_body() -> None:
    async with serving(lambda s, r, send: hello(send, b"hello"), lifespan="off") as port:
        raw = await exchange(port, request("HEAD", "/", "Connection: close\r\n"))
    [reply] = parse(raw, [("HEAD", "/")])
    assert (reply.status, reply.headers["content-length"], reply.body) == (200, "5", b"")


async def test_trailers_follow_the_body() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"data", "more_body": False})
        await send(
            {"type": "http.response.trailers", "headers": [(b"x-a", b"1")], "more_trailers": True}
        )
        await send({"type": "http.response.trailers", "headers": [(b"x-b", b"2")]})

    async with serving(app, lifespan="off") as port:
        raw = await exchange(port, request(headers="TE: trailers\r\nConnection: close\r\n"))
    [reply] = parse(raw, [("GET", "/")])
    assert reply.body == b"data"
    assert reply.trailers == {"x-a": "1", "x-b": "2"}


async def test_early_hints_go_before_the_response() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        links = [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]
        await send({"type": "http.response.early_hint", "links": links})
        await hello(send)

    async with serving(app, lifespan="off") as port:
        raw = await exchange(port, request(headers="Connection: close\r\n"))
    assert raw.startswith(
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n"
    )
    [reply] = parse(raw, [("GET", "/")])
    assert (reply.informational, reply.status, reply.body) == ([103], 200, b"hello")


async def test_pathsend_sends_the_file(tmp_path: Path) -> None:
    content = bytes(range(256)) * 2000  # several reads
    (tmp_path / "data.bin").write_bytes(content)

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(tmp_path / "data.bin")})

    async with serving(app, lifespan="off") as port:
        [reply] = parse(
            await exchange(port, request(headers="Connection: close\r\n")), [("GET", "/")]
        )
    assert reply.headers["content-length"] == str(len(content))
    assert reply.body == content


async def test_receive_after_the_response_says_disconnect() -> None:
    seen: list[Message] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await receive()
        await hello(send)
        seen.append(await receive())

    async with serving(app, lifespan="off") as port:
        await exchange(port, request(headers="Connection: close\r\n"))
    assert seen == [{"type": "http.disconnect"}]


async def test_disconnect_reaches_an_app_waiting_in_receive() -> None:
    """hypercorn issue #210: under trio, ``http.disconnect`` never came."""
    waiting = trio.Event()
    got: list[Message] = []

    async def long_poll(scope: Message, receive: Receive, send: Send) -> None:
        await receive()  # the (empty) body
        waiting.set()
        got.append(await receive())  # no response yet: only the client's leaving ends this

    async with serving(long_poll, lifespan="off") as port:
        with trio.fail_after(DEADLINE):
            conn = await trionet.connect_tcp(LOOPBACK, port)
            await conn.send(request())
            await waiting.wait()
            await conn.aclose()
            await wait_until(lambda: bool(got))
    assert got == [{"type": "http.disconnect"}]


async def test_send_after_the_client_left_raises_an_oserror_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    raised: list[BaseException] = []
    streaming = trio.Event()

    async def stream_forever(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
                streaming.set()
        except OSError as exc:
            raised.append(exc)
            raise

    async with serving(stream_forever, lifespan="off") as port:
        with trio.fail_after(DEADLINE):
            conn = await trionet.connect_tcp(LOOPBACK, port)
            await conn.send(request())
            await streaming.wait()
            await conn.aclose()
            await wait_until(lambda: bool(raised))
    assert isinstance(raised[0], trionet.asgi.ClientDisconnected)
    assert isinstance(raised[0], OSError)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize(
    "failure",
    ["raise-before", "return-silently", "start-only", "unknown-message", "bad-status", "str-body"],
)
async def test_an_app_that_fails_before_its_body_gets_a_500(
    failure: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        if failure == "raise-before":
            raise LookupError("broken")
        if failure == "start-only":
            await send({"type": "http.response.start", "status": 200})
        elif failure == "unknown-message":
            await send({"type": "http.response.bogus"})
        elif failure == "bad-status":
            await send({"type": "http.response.start", "status": 99})
        elif failure == "str-body":
            await send({"type": "http.response.start", "status": 200})
            await send({"type": "http.response.body", "body": "text"})

    async with serving(app, lifespan="off") as port:
        [reply] = parse(await exchange(port, request()), [("GET", "/")])
        # The server goes on.
        [again] = parse(await exchange(port, request()), [("GET", "/")])
    assert reply.status == again.status == 500
    assert [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_app_that_fails_mid_body_aborts_the_connection() -> None:
    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise LookupError("broken halfway")

    async with serving(app, lifespan="off") as port:
        raw = await exchange(port, request())
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert parse(raw, [("GET", "/")]) == []  # a truncated body, seen as one


async def test_a_body_over_max_body_size_is_answered_413_and_the_app_sees_disconnect() -> None:
    got: list[Message] = []

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            got.append(message)
            if message["type"] == "http.disconnect" or not message["more_body"]:
                break
        if got[-1]["type"] == "http.request":
            await hello(send)

    chunked = (
        b"POST / HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"8\r\n01234567\r\n8\r\n89abcdef\r\n0\r\n\r\n"
    )
    async with serving(app, lifespan="off", max_body_size=10) as port:
        [reply] = parse(await exchange(port, chunked), [("POST", "/")])
        # A Content-Length over the limit is refused before the app is called.
        [early] = parse(await exchange(port, request("POST", "/", "", b"x" * 11)), [("POST", "/")])
    assert reply.status == early.status == 413
    assert got[0] == {"type": "http.request", "body": b"01234567", "more_body": True}
    assert got[1:] == [{"type": "http.disconnect"}]


async def test_keep_alive_serves_many_requests_on_one_connection() -> None:
    app = Recorder()
    async with serving(app) as port:
        raw = await exchange(port, request() + request() + request(headers="Connection: close\r\n"))
    assert [r.status for r in parse(raw, [("GET", "/")] * 3)] == [200, 200, 200]
    assert len({scope["client"] for scope in app.scopes}) == 1


async def test_responses_with_the_same_fields_do_not_share_them(tmp_path: Path) -> None:
    """The server reuses the encoding of a field list it has seen: a file's
    length set for one response must not reach the next."""
    (tmp_path / "f").write_bytes(b"file body")
    headers = [(b"content-type", b"text/plain"), (b"x-same", b"1")]

    async def app(scope: Message, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        if scope["path"] == "/file":
            await send({"type": "http.response.pathsend", "path": str(tmp_path / "f")})
        else:
            await send({"type": "http.response.body", "body": b"short"})

    async with serving(app, lifespan="off") as port:
        raw = await exchange(
            port, request("GET", "/file") + request() + request(headers="Connection: close\r\n")
        )
    file, first, second = parse(raw, [("GET", "/file"), ("GET", "/"), ("GET", "/")])
    assert (file.body, file.headers["content-length"]) == (b"file body", "9")
    for reply in (first, second):
        assert (reply.body, reply.headers["content-length"], reply.headers["x-same"]) == (
            b"short",
            "5",
            "1",
        )


async def test_new_connections_are_refused_at_once_during_a_graceful_shutdown() -> None:
    """hypercorn issue #128: the listeners closed late, and new connections
    stalled in the backlog while the server drained."""
    working = trio.Event()
    finish = trio.Event()

    async def slow(scope: Message, receive: Receive, send: Send) -> None:
        working.set()
        await finish.wait()
        await hello(send)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.asgi.serve, slow, 0, LOOPBACK, lifespan="off"))
        with trio.fail_after(DEADLINE):
            in_flight = await trionet.connect_tcp(LOOPBACK, server.port)
            await in_flight.send(request())
            await working.wait()
            nursery.start_soon(server.shutdown, 30)
            await trio.testing.wait_all_tasks_blocked()  # it has begun: no more accepting
            with pytest.raises(trionet.ConnectError):
                await trionet.connect_tcp(LOOPBACK, server.port)
            # The request in flight is still answered, then the server ends.
            finish.set()
            async with in_flight:
                [reply] = parse(await read_until_closed(in_flight), [("GET", "/")])
            assert (reply.status, reply.headers["connection"]) == (200, "close")


async def test_over_tls_the_scope_says_https_and_has_the_tls_extension(
    trionet_tls: TLSCertificates,
) -> None:
    app = Recorder()
    async with serving(app, ssl_context=trionet_tls.server_context) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.http.Client(ssl_context=trionet_tls.client_context) as client:
                assert (await client.get(f"https://localhost:{port}/")).status == 200
    [scope] = app.scopes
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int)
    assert 0 < tls["cipher_suite"] <= 0xFFFF
    assert (tls["client_cert_chain"], tls["client_cert_name"]) == ([], None)  # none sent


async def test_the_tls_extension_has_the_server_certificate_and_the_client_chain(
    trionet_tls: TLSCertificates, tmp_path: Path
) -> None:
    # Mutual TLS: the server's certificate from files (trionet.tls knows
    # it), the client's issued by an intermediate CA and sent with it.
    server_cert = trionet_tls.ca.issue_cert("localhost")
    server_cert.private_key_and_cert_chain_pem.write_to_path(tmp_path / "server.pem")
    intermediate = trionet_tls.ca.create_child_ca()
    alice = intermediate.issue_cert("alice@example.test", common_name="alice@example.test")
    alice.private_key_and_cert_chain_pem.write_to_path(tmp_path / "alice.pem")
    trionet_tls.ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    server_context = trionet.tls.server_context(
        tmp_path / "server.pem", client_ca=tmp_path / "ca.pem"
    )
    client_context = trionet.tls.client_context(
        cafile=tmp_path / "ca.pem", certfile=tmp_path / "alice.pem"
    )
    app = Recorder()
    async with serving(app, ssl_context=server_context) as port:
        with trio.fail_after(DEADLINE):
            async with trionet.http.Client(ssl_context=client_context) as client:
                assert (await client.get(f"https://localhost:{port}/")).status == 200
    [scope] = app.scopes
    tls = scope["extensions"]["tls"]

    def same(pem: str, blob: Any) -> bool:
        # PEM text may differ in line breaks; the certificates must not.
        return ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert(blob.bytes().decode())

    assert same(tls["server_cert"], server_cert.cert_chain_pems[0])
    assert len(tls["client_cert_chain"]) == 2 == len(alice.cert_chain_pems)
    assert all(
        same(pem, blob)
        for pem, blob in zip(tls["client_cert_chain"], alice.cert_chain_pems, strict=True)
    )
    # RFC 4514: the most specific name first.
    assert tls["client_cert_name"].startswith("CN=alice@example.test,OU=Testing cert #")
    assert tls["client_cert_error"] is None
