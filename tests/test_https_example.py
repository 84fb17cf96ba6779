"""``examples/https_hello.py`` run as a subprocess with a trustme certificate,
and fetched by clients we did not write that verify it: curl and Python's
``ssl`` with ``http.client``. Both offer ``h2`` before ``http/1.1`` over ALPN,
as browsers do; the server must choose ``http/1.1``, the protocol it speaks."""

from __future__ import annotations

import http.client
import re
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme

from tests._peers import require_executable
from tests._process import EXAMPLES, STARTUP_TIMEOUT, child_env, read_port, running

# Seconds a curl run may take (one request over loopback takes milliseconds;
# the rest is margin for a loaded machine). curl's own --max-time is shorter,
# so that it reports a stall itself.
CURL_TIMEOUT = 30.0
CURL_MAX_TIME = "20"

# Seconds the http.client fetch may take, and its socket timeout.
CLIENT_TIMEOUT = 20.0

BODY = b"hello world\n"


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture
def tls_files(tmp_path: Path) -> TLSFiles:
    """A trustme CA, and a certificate it signed for 127.0.0.1, as PEM files."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(tmp_path / "ca.pem", tmp_path / "server.crt", tmp_path / "server.key")
    files.ca.write_bytes(ca.cert_pem.bytes())
    files.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    files.key.write_bytes(issued.private_key_pem.bytes())
    return files


@pytest.fixture
def curl() -> str:
    """The path of ``curl``. Without it, the test is skipped; on CI
    (``CI=true``) it fails instead, so that the test never silently stops
    running."""
    return require_executable("curl", "apt-get install curl")


def example(port: int, files: TLSFiles) -> list[str]:
    return [
        sys.executable,
        str(EXAMPLES / "https_hello.py"),
        *("--port", str(port), "--cert", str(files.cert), "--key", str(files.key)),
    ]


async def test_curl_fetches_hello_over_https(curl: str, tls_files: TLSFiles) -> None:
    async with running(example(0, tls_files)) as (_, output):
        port = await read_port(output, r"^Server running at https://127\.0\.0\.1:(\d+)/$")
        url = f"https://127.0.0.1:{port}/"
        with trio.fail_after(CURL_TIMEOUT):
            result = await trio.run_process(
                [curl, "-v", "--max-time", CURL_MAX_TIME, "--cacert", str(tls_files.ca), url],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    transcript = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, transcript
    assert result.stdout == BODY
    # curl 7.88 writes "ALPN: offers h2,http/1.1" and "ALPN: server accepted
    # http/1.1"; older versions "ALPN, offering h2" and "ALPN, server accepted
    # to use http/1.1".
    assert re.search(r"ALPN[:,] offer\w* h2", transcript), transcript
    assert re.search(r"ALPN[:,] server accepted (to use )?http/1\.1\b", transcript), transcript
    assert re.search(r"^< HTTP/1\.1 200 ", transcript, re.MULTILINE), transcript


@dataclass
class Fetched:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    alpn: str | None
    tls_version: str | None


def fetch(port: int, cafile: Path) -> Fetched:
    """GET / with the standard library, verifying the certificate."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.set_alpn_protocols(["h2", "http/1.1"])
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=CLIENT_TIMEOUT)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        assert isinstance(conn.sock, ssl.SSLSocket)
        return Fetched(
            response.status,
            response.headers,
            body,
            conn.sock.selected_alpn_protocol(),
            conn.sock.version(),
        )
    finally:
        conn.close()


async def test_http_client_fetches_hello_over_https(tls_files: TLSFiles) -> None:
    async with running(example(0, tls_files)) as (_, output):
        port = await read_port(output, r"^Server running at https://127\.0\.0\.1:(\d+)/$")
        with trio.fail_after(CLIENT_TIMEOUT + 5):
            fetched = await trio.to_thread.run_sync(fetch, port, tls_files.ca)
    assert fetched.status == 200
    assert fetched.body == BODY
    assert fetched.alpn == "http/1.1"
    assert fetched.tls_version in {"TLSv1.2", "TLSv1.3"}
    # res.writeHead(200) with no headers: Node sends no Content-Type either.
    assert fetched.headers["content-type"] is None
    assert fetched.headers["content-length"] == str(len(BODY))


async def test_a_missing_key_file_is_a_one_line_error(tls_files: TLSFiles) -> None:
    missing = tls_files.key.with_name("missing.key")
    command = example(0, tls_files)  # refused before binding: no port needed
    command[command.index(str(tls_files.key))] = str(missing)
    with trio.fail_after(STARTUP_TIMEOUT):
        result = await trio.run_process(
            command, capture_stdout=True, capture_stderr=True, check=False, env=child_env()
        )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2, stderr  # argparse's error status
    assert str(missing) in stderr
    assert "Traceback" not in stderr
