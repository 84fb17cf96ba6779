"""The everyday client against httpbin (from PyPI, under waitress): the
parts a user switching from httpx tries first, on a server we did not
write. Cookies, auth and uploads have their own files
(test_http_client_cookies.py, _auth.py, _multipart.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

import trionet.http

BOUND = 20  # seconds: a hang fails the test instead of the run


def client() -> trionet.http.Client:
    return trionet.http.Client(trust_env=False)


async def body_json(response: trionet.http.ClientResponse) -> Any:
    return json.loads(await response.read())


@pytest.mark.parametrize(
    ("path", "hops"),
    [
        ("/redirect/3", 3),
        ("/relative-redirect/2", 2),
        ("/absolute-redirect/2", 2),
        ("/redirect-to?url=/get&status_code=307", 1),
    ],
)
async def test_redirects(httpbin: int, path: str, hops: int) -> None:
    base = f"http://127.0.0.1:{httpbin}"
    async with client() as http:
        with trio.fail_after(BOUND):
            response = await http.get(base + path)
            assert response.status == 200
            assert response.url == f"{base}/get"
            assert len(response.history) == hops
            assert all(hop.is_redirect for hop in response.history)
            # Not followed when asked not to.
            first = await http.get(base + path, follow_redirects=False)
            assert first.is_redirect
            assert first.history == []


@pytest.mark.parametrize(("path", "flag"), [("/gzip", "gzipped"), ("/deflate", "deflated")])
async def test_compressed_bodies(httpbin: int, path: str, flag: str) -> None:
    async with client() as http:
        with trio.fail_after(BOUND):
            response = await http.get(f"http://127.0.0.1:{httpbin}{path}")
            assert response.headers["content-encoding"] == path.strip("/")
            assert (await body_json(response))[flag] is True


async def test_brotli_body(httpbin: int) -> None:
    async with client() as http:
        with trio.fail_after(BOUND):
            response = await http.get(f"http://127.0.0.1:{httpbin}/brotli")
            assert response.headers["content-encoding"] == "br"
            assert (await body_json(response))["brotli"] is True


async def test_streamed_json_lines(httpbin: int) -> None:
    async with client() as http:
        with trio.fail_after(BOUND):
            async with http.stream("GET", f"http://127.0.0.1:{httpbin}/stream/5") as response:
                lines = [json.loads(line) async for line in response.aiter_lines() if line]
    assert [line["id"] for line in lines] == [0, 1, 2, 3, 4]


async def test_a_dripped_body_arrives_whole(httpbin: int) -> None:
    url = f"http://127.0.0.1:{httpbin}/drip?numbytes=10&duration=0&delay=0&code=200"
    async with client() as http:
        with trio.fail_after(BOUND):
            async with http.stream("GET", url) as response:
                pieces = [piece async for piece in response]
    assert b"".join(pieces) == b"*" * 10


@pytest.mark.parametrize("status", [200, 204, 304, 404, 418, 500, 503])
async def test_status_codes(httpbin: int, status: int) -> None:
    async with client() as http:
        with trio.fail_after(BOUND):
            response = await http.get(f"http://127.0.0.1:{httpbin}/status/{status}")
    assert response.status == status
    assert response.ok is (status < 400)
    if status >= 400:
        with pytest.raises(trionet.http.HTTPStatusError) as raised:
            response.raise_for_status()
        assert raised.value.response is response


async def test_what_httpbin_saw_of_each_body(httpbin: int) -> None:
    base = f"http://127.0.0.1:{httpbin}"
    async with client() as http:
        with trio.fail_after(BOUND):
            sent_json = await body_json(await http.post(f"{base}/post", json={"a": [1, 2]}))
            sent_form = await body_json(await http.post(f"{base}/post", data={"b": "2 3"}))
            sent_raw = await body_json(
                await http.put(f"{base}/put", content=b"raw", params={"q": "1"})
            )
            sent_head = await http.head(f"{base}/get")
    assert sent_json["json"] == {"a": [1, 2]}
    assert sent_form["form"] == {"b": "2 3"}
    assert (sent_raw["data"], sent_raw["args"]) == ("raw", {"q": "1"})
    assert sent_head.status == 200
    assert await sent_head.read() == b""
