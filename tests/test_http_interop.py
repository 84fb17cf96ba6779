"""trionet.http against HTTP clients we did not write: curl, Node's ``http`` and
``https`` modules, and Python's ``http.client``.

Every peer runs on loopback against a server started in the test's nursery
with ``handler_errors="raise"`` (a handler bug fails the test). Each test
asserts what the client saw (status, headers, the body's digest) and, where
it matters, what the server counted (connections accepted)."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import h11
import pytest
import trio
import trustme

import trionet
import trionet.http
import trionet.tls
from tests._node import NODE_TIMEOUT, node_executable, parse_report
from tests._peers import require_executable
from tests._wait import wait_until
from trionet.http import Request, Response

# Every test here runs under each request parser (h11, httptools).
pytestmark = pytest.mark.usefixtures("http_parser")

LOOPBACK = "127.0.0.1"

# Seconds a whole curl run may take (a few requests over loopback take
# milliseconds; the rest is margin for a loaded two-core machine). curl's own
# --max-time is shorter, so that it reports a stall itself.
CURL_TIMEOUT = 30.0
CURL_MAX_TIME = "20"

# Seconds a stdlib http.client run may take, and its socket timeout.
CLIENT_TIMEOUT = 20.0

Handler = Callable[[Request], Awaitable[Response | None]]


# -- peers ----------------------------------------------------------------------


def curl_executable() -> str:
    """The path of ``curl``. Without it, the test is skipped; on CI
    (``CI=true``) it fails instead, so that interop tests never silently stop
    running."""
    return require_executable("curl", "apt-get install curl")


@pytest.fixture
def curl() -> str:
    # Checked here, outside trio, so that pytest reports why a test skipped.
    return curl_executable()


@pytest.fixture
def node() -> str:
    return node_executable()


@dataclass
class CurlRun:
    returncode: int
    stdout: bytes
    stderr: str


async def run_curl(curl: str, *args: str | Path) -> CurlRun:
    """Run curl with ``args``: no ~/.curlrc (``-q``), no proxy whatever the
    environment says, errors shown, bounded in time."""
    command = [
        curl,
        "-q",
        "--silent",
        "--show-error",
        "--noproxy",
        "*",
        "--max-time",
        CURL_MAX_TIME,
        *map(str, args),
    ]
    with trio.fail_after(CURL_TIMEOUT):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    return CurlRun(result.returncode, result.stdout, result.stderr.decode("utf-8", "replace"))


# The preamble of every Node script: its parameters (one JSON argument), a
# request helper collecting the whole response, and one JSON report line.
NODE_PREAMBLE = r"""
const http = require('http');
const https = require('https');
const crypto = require('crypto');
const params = JSON.parse(process.argv[1]);
function fetch(module, options, body) {
  return new Promise((resolve, reject) => {
    const req = module.request(options, (res) => {
      // Read now: the socket is detached from the response once it ends.
      const alpn = res.socket.alpnProtocol === undefined ? null : res.socket.alpnProtocol;
      const authorized = res.socket.authorized === undefined ? null : res.socket.authorized;
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        const data = Buffer.concat(chunks);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          trailers: res.trailers,
          body: data.toString('utf8'),
          length: data.length,
          sha256: crypto.createHash('sha256').update(data).digest('hex'),
          reused: req.reusedSocket,
          alpn,
          authorized,
        });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
function report(value) { process.stdout.write(JSON.stringify(value) + '\n'); }
"""


async def run_node_script(script: str, **params: Any) -> dict[str, Any]:
    """Run ``script`` (after NODE_PREAMBLE) with ``node -e``; return its JSON
    report (the last line of its stdout). Fails the test if node exits
    non-zero."""
    command = [node_executable(), "-e", NODE_PREAMBLE + script, json.dumps(params)]
    with trio.fail_after(NODE_TIMEOUT):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False
        )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"node exited {result.returncode}: {stderr}"
    lines = result.stdout.decode("utf-8").splitlines()
    return parse_report(lines[-1] if lines else None, "its results")


# -- the server ----------------------------------------------------------------


def payload(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# The streamed response: 64 pieces of 1000 bytes, sent as they are made.
STREAM_PIECES = [payload(1000, seed) for seed in range(64)]
STREAM_BODY = b"".join(STREAM_PIECES)


class App:
    """The handler of these tests; records what it saw."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []  # method, target, HTTP version
        self.headers: list[trionet.http.Headers] = []
        self.alpn: list[str | None] = []

    async def __call__(self, request: Request) -> Response | None:
        self.requests.append((request.method, request.target, request.http_version))
        self.headers.append(request.headers)
        self.alpn.append(request.tls.alpn_protocol if request.tls else None)
        if request.path == "/digest":
            body = await request.read()
            return Response.json(
                {
                    "sha256": sha256(body),
                    "length": len(body),
                    "transfer-encoding": request.headers.get("transfer-encoding"),
                    "content-length": request.headers.get("content-length"),
                    "expect": request.headers.get("expect"),
                }
            )
        if request.path == "/json":
            data = await request.json()
            return Response.json({"received": data, "method": request.method})
        if request.path == "/stream":
            stream = await request.respond_stream(200, {"content-type": "application/octet-stream"})
            for piece in STREAM_PIECES:
                await stream.send(piece)
                await trio.lowlevel.checkpoint()
            return None
        if request.path == "/trailers":
            stream = await request.respond_stream(200, {"trailer": "x-checksum"})
            for piece in STREAM_PIECES:
                await stream.send(piece)
            await stream.finish({"x-checksum": sha256(STREAM_BODY)})
            return None
        return Response.text(f"hello {request.target}")


async def start_http(nursery: trio.Nursery, handler: Handler, **kwargs: Any) -> trionet.Server:
    kwargs.setdefault("handler_errors", "raise")
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, handler, 0, LOOPBACK, **kwargs)
    )
    return server


def url(server: trionet.Server, path: str) -> str:
    return f"http://{LOOPBACK}:{server.port}{path}"


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    certfile: Path
    keyfile: Path


@pytest.fixture
def tls_files(tmp_path: Path) -> TLSFiles:
    """A trustme CA and a certificate for localhost/127.0.0.1, as PEM files."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", LOOPBACK)
    files = TLSFiles(tmp_path / "ca.pem", tmp_path / "server.crt", tmp_path / "server.key")
    files.ca.write_bytes(ca.cert_pem.bytes())
    files.certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    files.keyfile.write_bytes(cert.private_key_pem.bytes())
    return files


def server_context(files: TLSFiles) -> ssl.SSLContext:
    return trionet.tls.server_context(files.certfile, files.keyfile)


# -- curl -------------------------------------------------------------------------


async def test_curl_keep_alive_reuses_one_connection(nursery: trio.Nursery, curl: str) -> None:
    app = App()
    server = await start_http(nursery, app)
    run = await run_curl(curl, "-v", url(server, "/a"), url(server, "/b"), url(server, "/c"))
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"hello /ahello /bhello /c"
    assert re.search(r"Re-?using existing connection", run.stderr, re.IGNORECASE), run.stderr
    assert [target for _, target, _ in app.requests] == ["/a", "/b", "/c"]
    assert server.statistics().accepted == 1


async def test_curl_chunked_upload(nursery: trio.Nursery, curl: str, tmp_path: Path) -> None:
    body = payload(200_000)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(body)
    server = await start_http(nursery, App())
    run = await run_curl(
        curl,
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        f"@{upload}",
        url(server, "/digest"),
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["transfer-encoding"] == "chunked"
    assert report["content-length"] is None
    assert (report["sha256"], report["length"]) == (sha256(body), len(body))


async def test_curl_expect_100_continue(nursery: trio.Nursery, curl: str, tmp_path: Path) -> None:
    # curl sends `Expect: 100-continue` by itself for large bodies (the size
    # depends on its version); it is asked for explicitly so that the test does
    # not depend on that threshold. curl waits 1 s for the 100 and then sends
    # the body anyway: the -v transcript shows whether the 100 came.
    body = payload(2_000_000, seed=1)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(body)
    server = await start_http(nursery, App(), max_body_size=4_000_000)
    run = await run_curl(
        curl,
        "-v",
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        f"@{upload}",
        url(server, "/digest"),
    )
    assert run.returncode == 0, run.stderr
    assert re.search(r"^< HTTP/1\.1 100 Continue", run.stderr, re.MULTILINE), run.stderr
    assert re.search(r"^< HTTP/1\.1 200 OK", run.stderr, re.MULTILINE), run.stderr
    report = json.loads(run.stdout)
    assert report["expect"] == "100-continue"
    assert report["content-length"] == str(len(body))
    assert (report["sha256"], report["length"]) == (sha256(body), len(body))


async def test_curl_head(nursery: trio.Nursery, curl: str) -> None:
    # Two HEAD requests on one connection: a body sent after the first response
    # would be read as the start of the second.
    app = App()
    server = await start_http(nursery, app)
    get = await run_curl(curl, url(server, "/resource"))
    assert get.returncode == 0, get.stderr
    run = await run_curl(curl, "-v", "-I", url(server, "/resource"), url(server, "/resource"))
    assert run.returncode == 0, run.stderr
    assert "Excess found" not in run.stderr
    heads = run.stdout.decode("latin-1").split("\r\n\r\n")
    assert heads[-1] == ""
    heads = heads[:-1]
    assert len(heads) == 2, run.stdout
    for head in heads:
        lines = head.split("\r\n")
        assert lines[0] == "HTTP/1.1 200 OK"
        fields = dict(line.lower().split(": ", 1) for line in lines[1:])
        assert fields["content-length"] == str(len(get.stdout))
        assert fields["content-type"] == "text/plain; charset=utf-8"
    assert [method for method, _, _ in app.requests] == ["GET", "HEAD", "HEAD"]
    assert server.statistics().accepted == 2  # the GET, then both HEADs


async def test_curl_https_with_cacert_negotiates_http11(
    nursery: trio.Nursery, curl: str, tls_files: TLSFiles
) -> None:
    app = App()
    server = await start_http(nursery, app, ssl_context=server_context(tls_files))
    run = await run_curl(
        curl,
        "-v",
        "--cacert",
        tls_files.ca,
        "--resolve",
        f"localhost:{server.port}:{LOOPBACK}",
        f"https://localhost:{server.port}/secure",
        f"https://localhost:{server.port}/again",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == b"hello /securehello /again"
    # curl offers h2 and http/1.1; the server must pick http/1.1, what it speaks.
    assert re.search(r"ALPN[:,] server accepted (to use )?http/1\.1", run.stderr), run.stderr
    assert app.alpn == ["http/1.1", "http/1.1"]
    assert server.statistics().accepted == 1


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param([], id="content-length"),
        pytest.param(["-H", "Expect:"], id="content-length-without-expect"),
        pytest.param(["-H", "Transfer-Encoding: chunked"], id="chunked"),
        pytest.param(
            ["-H", "Expect:", "-H", "Transfer-Encoding: chunked"], id="chunked-without-expect"
        ),
    ],
)
async def test_curl_sees_413_not_a_reset(
    nursery: trio.Nursery, curl: str, tmp_path: Path, framing: list[str]
) -> None:
    # Without Expect, curl is still sending the body when the 413 comes: the
    # server's lingering close lets it read the 413 rather than get a reset.
    upload = tmp_path / "upload.bin"
    upload.write_bytes(payload(200_000))
    server = await start_http(nursery, App(), max_body_size=1000)
    run = await run_curl(
        curl,
        *framing,
        "--data-binary",
        f"@{upload}",
        "--write-out",
        "\n%{http_code}",
        url(server, "/digest"),
    )
    assert run.returncode == 0, run.stderr
    body, _, code = run.stdout.rpartition(b"\n")
    assert code == b"413"
    assert body.startswith(b"413 ")
    stats = server.statistics()
    assert stats.handler_errors == 0


async def test_curl_http10_connection_closes(nursery: trio.Nursery, curl: str) -> None:
    app = App()
    server = await start_http(nursery, app)
    run = await run_curl(curl, "-v", "--http1.0", url(server, "/one"), url(server, "/stream"))
    assert run.returncode == 0, run.stderr
    # The streamed body has no length: to HTTP/1.0 it is delimited by the close.
    assert run.stdout == b"hello /one" + STREAM_BODY
    assert not re.search(r"Re-?using existing connection", run.stderr, re.IGNORECASE)
    assert [(target, version) for _, target, version in app.requests] == [
        ("/one", "1.0"),
        ("/stream", "1.0"),
    ]
    assert server.statistics().accepted == 2
    await wait_until(lambda: server.statistics().active == 0)


# -- Node -------------------------------------------------------------------------


@pytest.mark.node
async def test_node_keep_alive_agent(nursery: trio.Nursery, node: str) -> None:
    app = App()
    server = await start_http(nursery, app)
    report = await run_node_script(
        r"""
const agent = new http.Agent({keepAlive: true, maxSockets: 1});
(async () => {
  const results = [];
  for (let i = 0; i < 20; i++) {
    const r = await fetch(http, {host: '127.0.0.1', port: params.port, path: '/n/' + i, agent});
    results.push([r.status, r.body, r.reused]);
  }
  agent.destroy();
  report({results});
})();
""",
        port=server.port,
    )
    assert report["results"] == [[200, f"hello /n/{i}", i > 0] for i in range(20)]
    assert len(app.requests) == 20
    assert server.statistics().accepted == 1


@pytest.mark.node
async def test_node_keep_alive_413_on_a_reused_connection(nursery: trio.Nursery, node: str) -> None:
    server = await start_http(nursery, App(), max_body_size=1000)
    report = await run_node_script(
        r"""
const agent = new http.Agent({keepAlive: true, maxSockets: 1});
const options = {host: '127.0.0.1', port: params.port, agent};
(async () => {
  const first = await fetch(http, {...options, path: '/first'});
  let second;
  try {
    const r = await fetch(http, {...options, path: '/digest', method: 'POST',
                                 headers: {'content-length': 5000}}, Buffer.alloc(5000));
    second = [r.status, r.body, r.reused];
  } catch (error) {
    second = String(error);
  }
  agent.destroy();
  report({first: [first.status, first.body], second});
})();
""",
        port=server.port,
    )
    assert report == {
        "first": [200, "hello /first"],
        "second": [413, "413 Request Entity Too Large\n", True],
    }


@pytest.mark.node
async def test_node_post_json(nursery: trio.Nursery, node: str) -> None:
    server = await start_http(nursery, App())
    document = {"name": "欢迎光临", "numbers": [1, 2.5, None], "nested": {"ok": True}}
    report = await run_node_script(
        r"""
(async () => {
  const body = Buffer.from(JSON.stringify(params.document), 'utf8');
  const r = await fetch(http, {
    host: '127.0.0.1', port: params.port, path: '/json', method: 'POST',
    headers: {'content-type': 'application/json', 'content-length': body.length},
  }, body);
  report({status: r.status, type: r.headers['content-type'], body: JSON.parse(r.body)});
})();
""",
        port=server.port,
        document=document,
    )
    assert report == {
        "status": 200,
        "type": "application/json",
        "body": {"received": document, "method": "POST"},
    }


@pytest.mark.node
async def test_node_https_get_with_ca(
    nursery: trio.Nursery, node: str, tls_files: TLSFiles
) -> None:
    app = App()
    server = await start_http(nursery, app, ssl_context=server_context(tls_files))
    report = await run_node_script(
        r"""
(async () => {
  const r = await fetch(https, {
    host: '127.0.0.1', port: params.port, path: '/tls', ca: params.ca,
    ALPNProtocols: ['h2', 'http/1.1'],
  });
  report({status: r.status, body: r.body, authorized: r.authorized, alpn: r.alpn});
})();
""",
        port=server.port,
        ca=tls_files.ca.read_text(),
    )
    assert report == {
        "status": 200,
        "body": "hello /tls",
        "authorized": True,
        "alpn": "http/1.1",
    }
    assert app.alpn == ["http/1.1"]


@pytest.mark.node
async def test_node_receives_streamed_response(nursery: trio.Nursery, node: str) -> None:
    server = await start_http(nursery, App())
    report = await run_node_script(
        r"""
(async () => {
  const r = await fetch(http, {host: '127.0.0.1', port: params.port, path: '/stream'});
  report({status: r.status, te: r.headers['transfer-encoding'],
          cl: r.headers['content-length'] || null, length: r.length, sha256: r.sha256});
})();
""",
        port=server.port,
    )
    assert report == {
        "status": 200,
        "te": "chunked",
        "cl": None,
        "length": len(STREAM_BODY),
        "sha256": sha256(STREAM_BODY),
    }


@pytest.mark.node
async def test_node_receives_trailers(nursery: trio.Nursery, node: str) -> None:
    server = await start_http(nursery, App())
    report = await run_node_script(
        r"""
(async () => {
  const r = await fetch(http, {host: '127.0.0.1', port: params.port, path: '/trailers',
                               headers: {te: 'trailers'}});
  report({status: r.status, te: r.headers['transfer-encoding'], trailer: r.headers['trailer'],
          trailers: r.trailers, sha256: r.sha256});
})();
""",
        port=server.port,
    )
    assert report == {
        "status": 200,
        "te": "chunked",
        "trailer": "x-checksum",
        "trailers": {"x-checksum": sha256(STREAM_BODY)},
        "sha256": sha256(STREAM_BODY),
    }


# -- Python's http.client ------------------------------------------------------------


def five_requests(port: int) -> list[tuple[int, bytes, str | None]]:
    """Five requests over one ``http.client.HTTPConnection`` (run in a thread)."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=CLIENT_TIMEOUT)
    results = []
    try:
        for i in range(5):
            if i % 2:
                conn.request("POST", "/digest", body=payload(5000, seed=i))
            else:
                conn.request("GET", f"/n/{i}")
            response = conn.getresponse()
            results.append((response.status, response.read(), response.getheader("connection")))
    finally:
        conn.close()
    return results


async def test_stdlib_http_client_keep_alive(nursery: trio.Nursery) -> None:
    app = App()
    server = await start_http(nursery, app)
    with trio.fail_after(CLIENT_TIMEOUT + 5):
        results = await trio.to_thread.run_sync(five_requests, server.port, abandon_on_cancel=True)
    assert [status for status, _, _ in results] == [200] * 5
    assert [connection for _, _, connection in results] == [None] * 5
    for i, (_, body, _) in enumerate(results):
        if i % 2:
            expected = payload(5000, seed=i)
            assert json.loads(body)["sha256"] == sha256(expected)
        else:
            assert body == f"hello /n/{i}".encode()
    assert [method for method, _, _ in app.requests] == ["GET", "POST", "GET", "POST", "GET"]
    assert server.statistics().accepted == 1


def post_and_read(port: int, body: bytes, context: ssl.SSLContext | None) -> tuple[int, bytes]:
    """POST ``body`` with http.client, which sends the whole body before it
    reads anything: a server that closes without reading it resets the
    connection, and the response is lost."""
    conn: http.client.HTTPConnection
    if context is None:
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=CLIENT_TIMEOUT)
    else:
        conn = http.client.HTTPSConnection(
            "localhost", port, timeout=CLIENT_TIMEOUT, context=context
        )
    try:
        conn.request("POST", "/digest", body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_stdlib_http_client_sees_413(
    nursery: trio.Nursery, tls_files: TLSFiles, scheme: str
) -> None:
    # http.client (like urllib3 and requests) sends the whole body before it
    # reads the response.
    context = None
    kwargs: dict[str, Any] = {}
    if scheme == "https":
        kwargs["ssl_context"] = server_context(tls_files)
        context = ssl.create_default_context(cafile=tls_files.ca)
    server = await start_http(nursery, App(), max_body_size=1000, **kwargs)
    with trio.fail_after(CLIENT_TIMEOUT + 5):
        status, body = await trio.to_thread.run_sync(
            post_and_read, server.port, payload(200_000), context, abandon_on_cancel=True
        )
    assert status == 413
    assert body.startswith(b"413 ")


# -- lingering close: an upload still arriving after the error response -----------
#
# Over a real network a client's body is still on its way when the server has
# answered its head (413 for a too-large Content-Length): the server must read
# and discard it for a moment, or its kernel resets the connection and a client
# that sends before it reads (http.client, urllib3, requests) reports a reset
# instead of the 413. On loopback, where nothing is in flight, the same is
# reproduced deterministically: read the 413 first, then send the body.

# Less than the lingering close reads (_LINGER_BYTES, 1 MiB).
UNDER_LINGER_LIMIT = 900_000
# More than it reads.
OVER_LINGER_LIMIT = 4_000_000


@pytest.mark.parametrize(
    ("scheme", "size"),
    [
        pytest.param("http", UNDER_LINGER_LIMIT, id="http"),
        pytest.param(
            "https",
            UNDER_LINGER_LIMIT,
            id="https",
        ),
        pytest.param(
            "http",
            OVER_LINGER_LIMIT,
            id="http-4MB",
        ),
    ],
)
async def test_upload_arriving_after_413_is_not_reset(
    nursery: trio.Nursery, tls_files: TLSFiles, scheme: str, size: int
) -> None:
    kwargs: dict[str, Any] = {}
    if scheme == "https":
        kwargs["ssl_context"] = server_context(tls_files)
    server = await start_http(nursery, App(), max_body_size=1000, **kwargs)
    with trio.fail_after(CLIENT_TIMEOUT):
        stream: trio.abc.Stream = await trio.open_tcp_stream(LOOPBACK, server.port)
        if scheme == "https":
            context = ssl.create_default_context(cafile=tls_files.ca)
            stream = trio.SSLStream(
                stream, context, server_hostname="localhost", https_compatible=True
            )
        async with stream:
            await stream.send_all(
                f"POST /digest HTTP/1.1\r\nHost: test\r\nContent-Length: {size}\r\n\r\n".encode()
            )
            # The whole 413, before a byte of the body is sent.
            client = h11.Connection(h11.CLIENT)
            client.send(h11.Request(method="POST", target="/", headers=[("host", "test")]))
            status = None
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    client.receive_data(bytes(await stream.receive_some(65536)))
                    continue
                if isinstance(event, h11.Response):
                    status = event.status_code
                if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            assert status == 413
            # The body the client had already sent: the server must take it.
            sent = 0
            try:
                while sent < size:
                    piece = min(64 * 1024, size - sent)
                    await stream.send_all(bytes(piece))
                    sent += piece
            except trio.BrokenResourceError as exc:
                pytest.fail(f"the upload was reset after {sent} of {size} bytes: {exc!r}")
