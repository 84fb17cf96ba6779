"""The trionet HTTP client (``trionet.http.Client``) against Node's own
``http`` and ``https`` servers (``tests/node/http_client_peer.js``).

The Node server prints one JSON line per event: each TCP connection it
accepts (and closes), each request with what it received (method, URL,
header fields, body length and SHA-256), each socket it destroyed instead of
answering. The tests read them all once Node has been told to exit, so they
can count the connections Node saw: keep-alive reuse, pool limits and retries
are checked on the server's side, not only by the client's statistics."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import trio

import trionet
import trionet.http
import trionet.tls
from tests._node import NODE_TIMEOUT, node_command, node_executable, parse_report
from tests._process import OutputReader, refusing_port, running
from trionet.testing import TLSCertificates

pytestmark = pytest.mark.node

# Seconds any one test's exchanges with Node may take: they are milliseconds
# over loopback; the rest is margin for a loaded two-core machine.
EXCHANGE_TIMEOUT = 20.0

MIB = 1024 * 1024
COMPRESSIBLE = b"compress me " * 1000


@pytest.fixture(autouse=True)
def node() -> str:
    # Checked outside trio, so that pytest says why a test skipped (on CI,
    # CI=true, a missing node fails instead).
    return node_executable()


@dataclass
class NodePeer:
    """A running ``http_client_peer.js``; ``events`` is filled once it has
    exited (what it printed after its "listening" line)."""

    port: int
    scheme: str
    output: OutputReader
    events: list[dict[str, Any]] = field(default_factory=list)

    async def wait_for_event(self, kind: str) -> dict[str, Any]:
        """Read Node's reports until one of ``kind`` (while it runs)."""
        with trio.fail_after(NODE_TIMEOUT):
            line = await self.output.wait_for(rf'"event": ?"{kind}"')
        return parse_report(line.string, kind)

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == kind]

    @property
    def connections(self) -> int:
        """TCP connections Node accepted."""
        return len(self.of("connection"))

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The requests Node read and answered, in order."""
        return self.of("request")


@asynccontextmanager
async def node_http_server(**config: Any) -> AsyncIterator[NodePeer]:
    """Run ``http_client_peer.js`` with ``config``; yield it once listening.
    On leaving, terminate it (it prints ``{"event": "exit"}`` last and exits
    0) and collect everything it reported into ``peer.events``."""
    command = node_command("http_client_peer.js", json.dumps(config))
    async with running(command) as (process, output):
        with trio.fail_after(NODE_TIMEOUT):
            listening = parse_report(await output.readline(), "that it listens")
        assert listening["event"] == "listening"
        peer = NodePeer(listening["port"], "https" if "tls" in config else "http", output)
        yield peer
        process.terminate()
        with trio.fail_after(NODE_TIMEOUT):
            await output.read_rest()
            status = await process.wait()
    assert status == 0
    peer.events = [parse_report(line, "an event") for line in output.lines[1:]]
    # Everything Node printed before it exited has been read.
    assert peer.events[-1] == {"event": "exit"}


def client(**kwargs: Any) -> trionet.http.Client:
    """A client that ignores the environment's proxies (loopback only)."""
    return trionet.http.Client(trust_env=False, **kwargs)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- keep-alive and the pool -------------------------------------------------


async def test_keep_alive_reuses_one_connection() -> None:
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                bodies = []
                for index in range(20):
                    response = await http.get(peer.url(f"/hello?i={index}"))
                    assert response.status == 200
                    bodies.append(await response.read())
                stats = http.statistics()
    assert bodies == [f"hello /hello?i={index}".encode() for index in range(20)]
    assert peer.connections == 1
    # Node saw the 20 requests one after the other on that one socket.
    assert [request["on_socket"] for request in peer.requests] == list(range(1, 21))
    assert stats.connections_opened == 1
    assert stats.connections_reused == 19
    assert stats.requests == 20
    assert stats.retries == 0


@pytest.mark.parametrize(
    ("limits", "limit"),
    [({"max_connections": 4}, 4), ({"max_connections_per_host": 2}, 2)],
    ids=["max_connections=4", "max_connections_per_host=2"],
)
async def test_concurrent_requests_within_the_pool_limits(
    limits: dict[str, int], limit: int
) -> None:
    bodies: dict[int, bytes] = {}
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client(**limits) as http:

                async def fetch(index: int) -> None:
                    # Node answers after 50 ms: the 20 requests overlap.
                    response = await http.get(peer.url(f"/slow?ms=50&i={index}"))
                    assert response.status == 200
                    bodies[index] = await response.read()

                async with trio.open_nursery() as nursery:
                    for index in range(20):
                        nursery.start_soon(fetch, index)
                stats = http.statistics()
    assert bodies == {index: f"hello /slow?ms=50&i={index}".encode() for index in range(20)}
    assert len(peer.requests) == 20
    # The 20 tasks asked at once: the pool opened as many connections as the
    # limit allows, no more, and the others waited for them.
    assert peer.connections == limit
    assert max(request["in_flight"] for request in peer.requests) <= limit
    assert stats.connections_opened == limit
    assert stats.connections_reused == 20 - limit


# -- chunked responses ---------------------------------------------------------


async def test_chunked_response_read_whole() -> None:
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                response = await http.get(peer.url("/chunked?parts=5&pause=20"))
    assert response.status == 200
    # Node sent it chunked (no length known in advance).
    assert response.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.headers
    assert await response.read() == b"".join(f"part {i}\n".encode() for i in range(5))


async def test_chunked_response_streamed_as_it_arrives() -> None:
    chunks = []
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with (
                client() as http,
                http.stream("GET", peer.url("/chunked?parts=5&pause=50")) as response,
            ):
                assert response.status == 200
                async for chunk in response:
                    chunks.append(chunk)
    assert b"".join(chunks) == b"".join(f"part {i}\n".encode() for i in range(5))
    # Node paused 50 ms between its writes: they arrived as separate pieces.
    assert len(chunks) > 1


async def test_large_chunked_response_arrives_intact() -> None:
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                response = await http.get(peer.url(f"/big?bytes={5 * MIB}"))
    body = await response.read()
    assert response.headers.get("transfer-encoding") == "chunked"
    assert len(body) == 5 * MIB
    assert sha256(body) == response.headers["x-body-sha256"]


# -- request bodies ------------------------------------------------------------


async def test_streamed_request_body_is_sent_chunked() -> None:
    pieces = [b"first piece, ", b"", os.urandom(100_000), "and the end: 終わり".encode()]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece
            await trio.sleep(0.01)

    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                response = await http.post(peer.url("/echo"), content=body())
    seen = await response.json()
    expected = b"".join(pieces)
    assert seen["method"] == "POST"
    assert seen["headers"]["transfer-encoding"] == "chunked"
    assert "content-length" not in seen["headers"]
    assert seen["body_length"] == len(expected)
    assert seen["body_sha256"] == sha256(expected)


async def test_bytes_request_body_has_a_content_length() -> None:
    data = os.urandom(50_000)
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                response = await http.put(peer.url("/echo"), content=data)
    seen = await response.json()
    assert seen["method"] == "PUT"
    assert seen["headers"]["content-length"] == str(len(data))
    assert "transfer-encoding" not in seen["headers"]
    assert seen["body_sha256"] == sha256(data)


async def test_json_request_body() -> None:
    value = {"name": "trionet ↔ Node", "numbers": [1, 2.5, None], "ok": True}
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                response = await http.post(peer.url("/echo"), json=value)
    seen = await response.json()
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["content-length"] == str(seen["body_length"])
    assert json.loads(seen["body_text"]) == value


# -- redirects -----------------------------------------------------------------


async def post_redirected(status: int) -> tuple[trionet.http.ClientResponse, NodePeer]:
    """POST a payload to Node's ``/redirect``, which answers ``status`` to
    ``/echo?hop=2``; the response, and Node once it has exited."""
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                response = await http.post(
                    peer.url("/redirect"),
                    params={"status": status, "to": "/echo?hop=2"},
                    content=b"the payload",
                    headers={"content-type": "application/octet-stream"},
                )
    return response, peer


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_redirect_turns_post_into_get_without_body(status: int) -> None:
    response, peer = await post_redirected(status)
    assert response.status == 200
    assert response.url == peer.url("/echo?hop=2")
    assert response.method == "GET"
    assert [hop.status for hop in response.history] == [status]
    assert response.history[0].url == peer.url(
        "/redirect?" + urlencode({"status": status, "to": "/echo?hop=2"})
    )
    first, second = peer.requests
    assert (first["method"], first["body_length"]) == ("POST", len(b"the payload"))
    assert (second["method"], second["url"], second["body_length"]) == ("GET", "/echo?hop=2", 0)
    for name in ("content-length", "content-type", "transfer-encoding"):
        assert name not in second["headers"]
    # The redirect's body was drained: the second hop reused the connection.
    assert peer.connections == 1


@pytest.mark.parametrize("status", [307, 308])
async def test_redirect_repeats_post_with_its_body(status: int) -> None:
    response, peer = await post_redirected(status)
    assert response.status == 200
    assert response.url == peer.url("/echo?hop=2")
    assert response.method == "POST"
    assert [hop.status for hop in response.history] == [status]
    first, second = peer.requests
    assert (second["method"], second["url"]) == ("POST", "/echo?hop=2")
    assert second["body_sha256"] == first["body_sha256"] == sha256(b"the payload")
    assert second["headers"]["content-type"] == "application/octet-stream"
    assert second["headers"]["content-length"] == str(len(b"the payload"))
    assert peer.connections == 1


async def test_redirect_chain_history() -> None:
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                # 302 -> 308 (absolute Location) -> /echo.
                last = peer.url("/redirect?status=308&to=/echo")
                response = await http.get(peer.url("/redirect"), params={"status": 302, "to": last})
    assert response.status == 200
    assert response.url == peer.url("/echo")
    assert [hop.status for hop in response.history] == [302, 308]
    assert response.history[1].url == last
    assert [request["url"] for request in peer.requests] == [
        "/redirect?" + urlencode({"status": 302, "to": last}),
        "/redirect?status=308&to=/echo",
        "/echo",
    ]


# -- a server that closes a kept-alive connection ------------------------------


# How Node drops the reused connection: socket.destroy() closes it with a FIN,
# socket.resetAndDestroy() with a RST. Either way not one byte of a response
# was sent, so the request may be retried (RFC 9110 section 9.2.2).
DROPS = ["destroy", "reset"]


def drop_sequence(peer: NodePeer) -> list[tuple[str, int]]:
    """What Node did, connections and close events aside."""
    return [
        (event["event"], event["connection"])
        for event in peer.events
        if event["event"] in ("connection", "request", "dropped")
    ]


@pytest.mark.parametrize("how", DROPS)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_idempotent_request_retried_when_reused_connection_is_dropped(
    method: str, how: str
) -> None:
    async with node_http_server(dropReused=how) as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                first = await http.get(peer.url("/hello?first"))
                # Node closes the socket as this request arrives on it.
                second = await http.request(
                    method, peer.url("/echo?second"), content=b"again" if method == "PUT" else None
                )
                stats = http.statistics()
    assert first.status == 200
    assert second.status == 200
    seen = await second.json()
    assert (seen["method"], seen["url"]) == (method, "/echo?second")
    assert seen["on_socket"] == 1  # on a connection of its own
    assert drop_sequence(peer) == [
        ("connection", 1),
        ("request", 1),
        ("dropped", 1),
        ("connection", 2),
        ("request", 2),
    ]
    assert stats.retries == 1
    assert stats.connections_opened == 2


@pytest.mark.parametrize("how", DROPS)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_non_idempotent_request_not_retried_when_connection_is_dropped(
    method: str, how: str
) -> None:
    async with node_http_server(dropReused=how) as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                first = await http.get(peer.url("/hello?first"))
                with pytest.raises(trionet.http.ServerDisconnected) as caught:
                    await http.request(method, peer.url("/echo?second"), content=b"once only")
                stats = http.statistics()
    assert first.status == 200
    assert caught.value.before_response is True
    # Also what code written against the rest of trionet catches.
    assert isinstance(caught.value, trionet.ConnectionClosed)
    # Node saw the request once, and no second connection: never retried.
    assert drop_sequence(peer) == [("connection", 1), ("request", 1), ("dropped", 1)]
    assert peer.of("dropped")[0]["method"] == method
    assert stats.retries == 0


async def test_streamed_put_not_retried_when_connection_is_dropped() -> None:
    # Only with a RST: after a FIN, whether the rest of the streamed body
    # meets a reset depends on timing.
    async def body() -> AsyncIterator[bytes]:
        yield b"cannot be "
        yield b"sent twice"

    async with node_http_server(dropReused="reset") as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                await http.get(peer.url("/hello?first"))
                with pytest.raises(trionet.http.ServerDisconnected) as caught:
                    await http.put(peer.url("/echo?second"), content=body())
                stats = http.statistics()
    assert caught.value.before_response is True
    assert drop_sequence(peer) == [("connection", 1), ("request", 1), ("dropped", 1)]
    assert stats.retries == 0


async def test_node_keep_alive_timeout_closes_idle_connection() -> None:
    # Node 20 closes an idle keep-alive socket 1 s after keepAliveTimeout (a
    # buffer it adds so that a client honouring "Keep-Alive: timeout=0" stops
    # first): here after 1.1 s.
    async with node_http_server(keepAliveTimeout=100) as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client(keepalive_expiry=10) as http:
                first = await http.get(peer.url("/hello?first"))
                # Not a sleep: Node's own report that it closed the idle
                # connection.
                assert await peer.wait_for_event("close") == {"event": "close", "connection": 1}
                second = await http.get(peer.url("/hello?second"))
                stats = http.statistics()
    assert (first.status, second.status) == (200, 200)
    assert await second.read() == b"hello /hello?second"
    assert peer.connections == 2
    # Node closed the first connection while it was idle, before the second
    # request; the client saw that before reusing it: no retry was needed.
    assert [(event["event"], event.get("connection")) for event in peer.events[:5]] == [
        ("connection", 1),
        ("request", 1),
        ("close", 1),
        ("connection", 2),
        ("request", 2),
    ]
    assert stats.connections_opened == 2
    assert stats.connections_reused == 0
    assert stats.retries == 0


# -- HTTPS ---------------------------------------------------------------------


@dataclass
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


def tls_files(tls: TLSCertificates, directory: Path, *identities: str, **kwargs: Any) -> TLSFiles:
    """A certificate issued by the fixture's trustme CA, and that CA, as PEM
    files for Node (or for ``trionet.tls.client_context``)."""
    issued = tls.ca.issue_cert(*identities, **kwargs)
    directory.mkdir()
    files = TLSFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    tls.ca.cert_pem.write_to_path(str(files.ca))
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(files.key))
    return files


@pytest.fixture
def server_tls(trionet_tls: TLSCertificates, tmp_path: Path) -> TLSFiles:
    return tls_files(trionet_tls, tmp_path / "server", "localhost", "127.0.0.1")


async def test_https_keep_alive(server_tls: TLSFiles, trionet_tls: TLSCertificates) -> None:
    config = {"cert": str(server_tls.cert), "key": str(server_tls.key)}
    async with node_http_server(tls=config) as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client(ssl_context=trionet_tls.client_context) as http:
                responses = [await http.get(peer.url(f"/hello?i={i}")) for i in range(5)]
                stats = http.statistics()
    assert [response.status for response in responses] == [200] * 5
    assert [await response.read() for response in responses] == [
        f"hello /hello?i={i}".encode() for i in range(5)
    ]
    assert responses[0].url == f"https://127.0.0.1:{peer.port}/hello?i=0"
    assert peer.connections == 1
    assert stats.connections_opened == 1
    assert stats.connections_reused == 4


async def test_https_untrusted_certificate(server_tls: TLSFiles) -> None:
    config = {"cert": str(server_tls.cert), "key": str(server_tls.key)}
    async with node_http_server(tls=config) as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:  # the system's trust store
                with pytest.raises(trionet.http.HTTPTLSError) as caught:
                    await http.get(peer.url("/hello"))
    assert isinstance(caught.value, trionet.TLSError)
    assert "certificate" in str(caught.value).lower()
    assert peer.requests == []


def mutual_tls_config(server_tls: TLSFiles) -> dict[str, Any]:
    """Node's https server asking for a client certificate from the CA."""
    return {
        "cert": str(server_tls.cert),
        "key": str(server_tls.key),
        "ca": str(server_tls.ca),
        "requestCert": True,
    }


@pytest.fixture
def client_tls(trionet_tls: TLSCertificates, tmp_path: Path) -> TLSFiles:
    return tls_files(
        trionet_tls, tmp_path / "client", "client.example", common_name="trionet client"
    )


async def test_https_client_certificate(server_tls: TLSFiles, client_tls: TLSFiles) -> None:
    config = mutual_tls_config(server_tls)
    context = trionet.tls.client_context(
        cafile=server_tls.ca, certfile=client_tls.cert, keyfile=client_tls.key
    )
    async with node_http_server(tls=config) as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client(ssl_context=context) as http:
                response = await http.get(peer.url("/echo"))
    assert response.status == 200
    seen = await response.json()
    assert seen["client_cert"]["CN"] == "trionet client"
    assert peer.requests[0]["client_cert"]["CN"] == "trionet client"


async def test_https_client_certificate_missing(server_tls: TLSFiles) -> None:
    context = trionet.tls.client_context(cafile=server_tls.ca)
    async with node_http_server(tls=mutual_tls_config(server_tls)) as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client(ssl_context=context) as http:
                with pytest.raises(trionet.http.HTTPError) as caught:
                    await http.get(peer.url("/echo"))
    # With TLS 1.3 the client's side of the handshake completes; Node then
    # rejects it with a "certificate required" alert, which the client meets
    # when it reads the response: a failed connection (observed:
    # ServerDisconnected with before_response=True), not retried.
    assert isinstance(caught.value, trionet.http.TransportError)
    assert "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE" in peer.of("tlsClientError")[0]["error"]
    assert peer.requests == []
    assert peer.connections == 1


async def test_https_client_certificate_missing_says_why(server_tls: TLSFiles) -> None:
    context = trionet.tls.client_context(cafile=server_tls.ca)
    async with node_http_server(tls=mutual_tls_config(server_tls)) as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client(ssl_context=context) as http:
                with pytest.raises(trionet.http.HTTPError) as caught:
                    await http.get(peer.url("/echo"))
    assert "certificate required" in str(caught.value)


# -- content codings -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/gzip", "/deflate", "/deflate-raw", "/br"])
async def test_compressed_response_is_decoded(path: str) -> None:
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http:
                response = await http.get(peer.url(path))
    assert response.status == 200
    assert response.headers["content-encoding"] in ("gzip", "deflate", "br")
    # What Node sent is much shorter than what the client returns.
    assert int(response.headers["content-length"]) < len(COMPRESSIBLE) // 10
    assert await response.read() == COMPRESSIBLE
    (request,) = peer.requests
    # br and zstd: the test dependencies include brotli and backports.zstd.
    assert request["headers"]["accept-encoding"] == "gzip, deflate, br, zstd"
    assert request["headers"]["host"] == f"127.0.0.1:{peer.port}"
    assert request["headers"]["user-agent"] == f"trionet/{trionet.__version__}"


# -- server-sent events ------------------------------------------------------


async def test_server_sent_events_resume_across_connections() -> None:
    # Node sends two events per connection and ends it; the client connects
    # again with Last-Event-ID each time, until Node answers 204.
    async with node_http_server() as peer:
        with trio.fail_after(EXCHANGE_TIMEOUT):
            async with client() as http, http.events(peer.url("/events?upto=5&per=2")) as events:
                received = [event async for event in events]
    assert [(event.event, event.id, event.data) for event in received] == [
        ("tick", str(n), f"tick {n}\né") for n in range(1, 6)
    ]
    last_ids = [request["headers"].get("last-event-id") for request in peer.requests]
    assert last_ids == [None, "2", "4", "5"]
    assert all(request["headers"]["accept"] == "text/event-stream" for request in peer.requests)


# -- Unix sockets --------------------------------------------------------------


async def test_uds_sends_every_request_to_the_unix_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As curl --unix-socket: the URL names the host (Host, and the path),
    # the socket is where the bytes go, and proxies are not used.
    path = str(tmp_path / "api.sock")
    with refusing_port() as nowhere:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{nowhere}")
        async with node_http_server(path=path) as peer:
            with trio.fail_after(EXCHANGE_TIMEOUT):
                async with trionet.http.Client(uds=path) as http:
                    first = await http.get("http://docker/echo?all=1")
                    second = await http.post("http://docker/echo", json={"n": 1})
    assert (first.status, second.status) == (200, 200)
    assert [(r["method"], r["url"], r["headers"]["host"]) for r in peer.requests] == [
        ("GET", "/echo?all=1", "docker"),
        ("POST", "/echo", "docker"),
    ]
    assert peer.connections == 1  # kept alive
    with pytest.raises(ValueError, match="uds="):
        trionet.http.Client(uds=path, proxy="http://127.0.0.1:1")
