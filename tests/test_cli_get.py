"""``trionet get``, run as a real process against loopback servers: the body
on standard output, the flags, ``--trace`` (measured steps), and errors as one
line with a non-zero status."""

from __future__ import annotations

import json
import os
import pty
import re
import select
from functools import partial
from pathlib import Path

import pytest
import trio

import trionet
import trionet.http
from tests._process import child_env, refusing_port
from tests.test_cli import run_cli, trionet_command
from trionet.testing import TLSCertificates


async def app(request: trionet.http.Request) -> trionet.http.Response:
    if request.path == "/echo":
        body = await request.read()
        return trionet.http.Response.json(
            {
                "method": request.method,
                "headers": dict(request.headers.items()),
                "body": body.decode("utf-8", "replace"),
            }
        )
    if request.path == "/old":
        return trionet.http.Response(301, {"location": "/new"}, b"moved\n")
    if request.path == "/missing":
        return trionet.http.Response(404, {"content-type": "text/plain"}, b"no such page\n")
    if request.path == "/big":
        return trionet.http.Response(200, {}, b"x" * 3_000_000)
    return trionet.http.Response(200, {"content-type": "text/plain"}, b"Hello World\n")


@pytest.fixture
async def base_url(nursery: trio.Nursery) -> str:
    server = await nursery.start(trionet.http.serve, app, 0, "127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
async def tls_url(nursery: trio.Nursery, trionet_tls: TLSCertificates) -> str:
    serve = partial(trionet.http.serve, ssl_context=trionet_tls.server_context)
    server = await nursery.start(serve, app, 0, "127.0.0.1")
    return f"https://localhost:{server.port}"


@pytest.fixture
def cafile(tmp_path: Path, trionet_tls: TLSCertificates) -> str:
    path = tmp_path / "ca.pem"
    trionet_tls.ca.cert_pem.write_to_path(str(path))
    return str(path)


def one_error_line(stderr: bytes, pattern: str) -> None:
    lines = stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert re.fullmatch(pattern, lines[0]), lines[0]


async def test_prints_the_body(base_url: str) -> None:
    result = await run_cli("get", f"{base_url}/hello")
    assert result.returncode == 0
    assert result.stdout == b"Hello World\n"
    assert result.stderr == b""


async def test_method_headers_and_data_are_sent(base_url: str, tmp_path: Path) -> None:
    result = await run_cli(
        "get", "-X", "PUT", "-H", "X-Test: one", "-H", "Content-Type: text/x", "-d", "hé",
        f"{base_url}/echo",
    )  # fmt: skip
    assert result.returncode == 0
    seen = json.loads(result.stdout)
    assert seen["method"] == "PUT"
    assert seen["headers"]["x-test"] == "one"
    assert seen["headers"]["content-type"] == "text/x"
    assert seen["body"] == "hé"
    # -d alone means POST (as with curl); @FILE sends a file.
    upload = tmp_path / "upload.txt"
    upload.write_bytes(b"from a file")
    result = await run_cli("get", "-d", f"@{upload}", f"{base_url}/echo")
    seen = json.loads(result.stdout)
    assert (seen["method"], seen["body"]) == ("POST", "from a file")


async def test_include_prints_the_head_first(base_url: str) -> None:
    result = await run_cli("get", "-i", f"{base_url}/")
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    assert head.splitlines()[0] == b"HTTP/1.1 200 OK"
    assert b"content-length: 12" in head.splitlines()
    assert body == b"Hello World\n"


async def test_output_goes_to_a_file(base_url: str, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    result = await run_cli("get", "-o", str(target), f"{base_url}/big")
    assert result.returncode == 0
    assert result.stdout == b""
    assert result.stderr == b""  # no terminal: no progress bar
    assert target.read_bytes() == b"x" * 3_000_000


async def test_redirects_are_followed_unless_told_not_to(base_url: str) -> None:
    result = await run_cli("get", f"{base_url}/old")
    assert result.stdout == b"Hello World\n"
    result = await run_cli("get", "--no-follow", "-i", f"{base_url}/old")
    assert result.stdout.startswith(b"HTTP/1.1 301 Moved Permanently\r\n")
    assert result.stdout.endswith(b"\r\n\r\nmoved\n")


async def test_fail_turns_an_error_status_into_exit_22(base_url: str) -> None:
    result = await run_cli("get", f"{base_url}/missing")
    assert result.returncode == 0  # as curl: a response is a success
    assert result.stdout == b"no such page\n"
    result = await run_cli("get", "--fail", f"{base_url}/missing")
    assert result.returncode == 22
    assert result.stdout == b""
    one_error_line(result.stderr, r"trionet get: the server answered 404 Not Found")


async def test_trace_shows_each_step_measured(base_url: str) -> None:
    url = base_url.replace("127.0.0.1", "localhost")
    result = await run_cli("get", "--trace", f"{url}/old")
    assert result.returncode == 0
    assert result.stdout == b"Hello World\n"
    trace = result.stderr.decode()
    step = r"\[ *\d+\.\d ms\] "
    ms = r"\d+\.\d ms"
    expected = [
        rf"{step}\* name lookup: localhost -> .*127\.0\.0\.1.* \({ms}\)",
        rf"{step}\* TCP connected to 127\.0\.0\.1 port \d+ \(three-way handshake, {ms}\)",
        rf"{step}> GET /old HTTP/1\.1",
        rf"{step}\* request sent \({ms}\)",
        rf"{step}< HTTP/1\.1 301 Moved Permanently \(time to first byte {ms}, head complete {ms}\)",
        rf"{step}<   location: /new",
        rf"{step}\* redirect 301: following GET {re.escape(url)}/new",
        rf"{step}\* request for {re.escape(url)}/new \(reusing a kept-alive connection\)",
        rf"{step}< HTTP/1\.1 200 OK .*",
        rf"{step}\* done: 12 bytes of body, total {ms}",
    ]
    lines = trace.splitlines()
    position = 0
    for pattern in expected:
        while not re.fullmatch(pattern, lines[position]):
            position += 1
            assert position < len(lines), f"no line matches {pattern!r} in order:\n{trace}"
    # The redirect reused the connection: one lookup, one connect.
    assert trace.count("name lookup") == 1
    assert trace.count("TCP connected") == 1


async def test_https_with_a_ca_file_and_the_trace_of_tls(tls_url: str, cafile: str) -> None:
    result = await run_cli("get", "--cafile", cafile, "--trace", f"{tls_url}/")
    assert result.returncode == 0
    assert result.stdout == b"Hello World\n"
    assert re.search(
        r"\* TLS handshake: TLSv1\.[23] \S+(, ALPN http/1\.1)?, certificate verified for localhost"
        r" \(\d+\.\d ms\)",
        result.stderr.decode(),
    )


async def test_https_untrusted_is_one_line_unless_insecure(tls_url: str) -> None:
    result = await run_cli("get", f"{tls_url}/")
    assert result.returncode == 1
    assert result.stdout == b""
    one_error_line(result.stderr, r"trionet get: TLS with https://localhost:\d+: .*certificate.*")
    result = await run_cli("get", "--insecure", "--trace", f"{tls_url}/")
    assert result.returncode == 0
    assert result.stdout == b"Hello World\n"
    assert "certificate NOT verified (--insecure)" in result.stderr.decode()


async def test_failures_are_one_line_and_a_nonzero_status(base_url: str) -> None:
    with refusing_port() as port:
        result = await run_cli("get", f"http://127.0.0.1:{port}/")
    assert result.returncode == 1
    one_error_line(
        result.stderr,
        rf"trionet get: cannot connect to http://127\.0\.0\.1:{port}: Connection refused",
    )
    # Usage errors: status 2, as argparse gives.
    result = await run_cli("get", "ftp://example.test/")
    assert result.returncode == 2
    one_error_line(
        result.stderr, r"trionet get: not an http:// or https:// URL: 'ftp://example.test/'"
    )
    result = await run_cli("get", "-H", "no colon", f"{base_url}/")
    assert result.returncode == 2
    one_error_line(result.stderr, r"trionet get: a header is 'NAME: VALUE', not 'no colon'")
    result = await run_cli("get", "-d", "@/nonexistent/file", f"{base_url}/")
    assert result.returncode == 1
    one_error_line(result.stderr, r"trionet get: No such file or directory: /nonexistent/file")
    result = await run_cli("get", "--timeout", "0", f"{base_url}/")
    assert result.returncode == 2
    one_error_line(result.stderr, r"trionet get: the connect timeout must be > 0 seconds.*")


async def test_help_documents_every_flag() -> None:
    result = await run_cli("get", "--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    for flag in (
        "-X METHOD", "-H 'NAME: VALUE'", "-d DATA", "-o FILE", "--insecure", "--trace", "-i",
        "--cafile FILE", "--no-follow", "--max-redirects N", "--timeout SECONDS", "--proxy URL",
        "--fail", "URL",
    ):  # fmt: skip
        assert flag in text, flag
    assert "exit status" in text


async def test_a_long_download_to_a_file_shows_progress_on_a_terminal(
    base_url: str, tmp_path: Path
) -> None:
    # Standard error is a terminal (a pseudo-terminal): the progress bar
    # appears there, and ends with the total.
    main, secondary = pty.openpty()
    target = tmp_path / "big.bin"
    try:
        with trio.fail_after(30):
            result = await trio.run_process(
                [*trionet_command(), "get", "-o", str(target), f"{base_url}/big"],
                stderr=secondary,
                capture_stdout=True,
                check=False,
                env=child_env(),
            )
        os.close(secondary)
        secondary = -1
        shown = b""
        while select.select([main], [], [], 0)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other side is gone: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
        if secondary >= 0:
            os.close(secondary)
    assert result.returncode == 0
    assert target.stat().st_size == 3_000_000
    text = shown.decode()
    assert "100% 2.9 MiB of 2.9 MiB" in text
    assert "[#########################] 100%" in text
    assert text.rstrip().endswith("2.9 MiB received")
