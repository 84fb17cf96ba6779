"""``files=`` (multipart/form-data, RFC 7578) and ``data=`` on trionet's
client: against httpbin (from PyPI, under waitress), which parses the parts
with werkzeug, and against trionet's server to see the bytes sent."""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import pytest
import trio

import trionet
import trionet.http
from tests._http import LOOPBACK
from trionet.http import Request, Response

BOUND = 20
MiB = 1024 * 1024


async def test_files_and_fields_reach_httpbin(httpbin: int, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"0123456789abcdef" * (MiB // 4))  # 4 MiB, read while sent
    small = tmp_path / "report.csv"
    small.write_text("a,b\n1,2\n")
    async with trionet.http.Client(trust_env=False) as client:
        with trio.fail_after(BOUND), small.open("rb") as opened:
            response = await client.post(
                f"http://127.0.0.1:{httpbin}/post",
                data={"title": "Grüße", "n": "1"},
                files={
                    "notes": ("notes.txt", b"hello", "text/plain"),
                    "big": big,
                    "report": opened,
                    "text": "plain text",
                },
            )
            echoed = json.loads(await response.read())
    assert echoed["form"] == {"title": "Grüße", "n": "1"}
    assert echoed["files"]["notes"] == "hello"
    assert echoed["files"]["report"] == "a,b\n1,2\n"
    assert echoed["files"]["text"] == "plain text"
    assert len(echoed["files"]["big"]) == 4 * MiB
    # Every length was known: one Content-Length, no chunks.
    headers = echoed["headers"]
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert int(headers["Content-Length"]) > 4 * MiB
    assert "Transfer-Encoding" not in headers


async def capture(nursery: trio.Nursery) -> tuple[str, list[Request], list[bytes]]:
    seen: list[Request] = []
    bodies: list[bytes] = []

    async def handler(request: Request) -> Response:
        seen.append(request)
        bodies.append(await request.read())
        return Response(200, body=b"ok")

    start: Callable[..., Awaitable[trionet.Server]] = nursery.start
    server = await start(partial(trionet.http.serve, handler, 0, LOOPBACK, max_body_size=16 * MiB))
    return f"http://{LOOPBACK}:{server.port}/upload", seen, bodies


async def test_the_parts_on_the_wire(nursery: trio.Nursery) -> None:
    url, seen, bodies = await capture(nursery)
    async with trionet.http.Client(trust_env=False) as client:
        with trio.fail_after(BOUND):
            await client.post(
                url,
                files=[
                    ('we"ird\nname', ('a "quoted"\r\nname.png', b"\x89PNG")),
                    ("stream", io.BytesIO(b"no length known")),  # no file number: chunked
                ],
            )
    [request], [body] = seen, bodies
    boundary = request.headers["content-type"].partition("boundary=")[2]
    assert request.headers.get("transfer-encoding") == "chunked"
    parts = body.split(f"--{boundary}".encode())
    assert parts[0] == b""
    assert parts[-1] == b"--\r\n"
    first, second = parts[1], parts[2]
    assert (
        b'Content-Disposition: form-data; name="we%22ird%0Aname"; '
        b'filename="a %22quoted%22%0D%0Aname.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n'
    ) in first
    assert b'name="stream"; filename="upload"\r\nContent-Type: application/octet-stream' in second
    assert second.endswith(b"\r\n\r\nno length known\r\n")


async def test_bodies_that_do_not_go_together() -> None:
    async with trionet.http.Client(trust_env=False) as client:
        with pytest.raises(TypeError, match="files go with form fields"):
            await client.post("http://127.0.0.1:1/", files={"f": b"x"}, json={"a": 1})
        with pytest.raises(TypeError, match="form or data"):
            await client.post("http://127.0.0.1:1/", form={"a": "1"}, data={"a": "1"})
        with pytest.raises(TypeError, match="a binary file or a path"):
            await client.post("http://127.0.0.1:1/", files={"f": 42})  # type: ignore[dict-item]
