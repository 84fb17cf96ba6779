"""``auth=`` on trionet's client: Basic, Bearer, Digest (RFC 7616) and a
flow of one's own; the Digest answer checked against RFC 7616's own worked
example, sans I/O; then against httpbin (from PyPI, served by waitress on
loopback), including credentials that must not follow a redirect to another
origin."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import pytest
import trio

import trionet.http
from trionet.http import (
    Auth,
    AuthRequest,
    BasicAuth,
    BearerAuth,
    ClientResponse,
    DigestAuth,
    Headers,
    Response,
)
from trionet.testing import MockTransport

BOUND = 20


# -- sans I/O ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_answers_rfc_7616s_example(algorithm: str, expected: str) -> None:
    # RFC 7616 section 3.9.1: Mufasa asks for /dir/index.html.
    auth = DigestAuth("Mufasa", "Circle of Life")
    auth._cnonce = lambda: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    request = AuthRequest("GET", "http://www.example.org/dir/index.html", Headers())
    flow = auth.auth_flow(request)
    first = next(flow)
    assert "authorization" not in first.headers  # nothing before the challenge
    challenge = (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", '
        f"algorithm={algorithm}, "
        'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    second = flow.send(unauthorized(challenge))
    answer = second.headers["authorization"]
    assert answer.startswith("Digest ")
    fields = dict(part.strip().split("=", 1) for part in answer[7:].split(","))
    assert fields["response"] == f'"{expected}"'
    assert (fields["uri"], fields["qop"], fields["nc"]) == ('"/dir/index.html"', "auth", "00000001")
    assert fields["opaque"] == '"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    # Refused again for the same nonce: the credentials are wrong; give up.
    with pytest.raises(StopIteration):
        flow.send(unauthorized(challenge))


def unauthorized(challenge: str) -> ClientResponse:
    return ClientResponse(
        status=401,
        reason="Unauthorized",
        headers=Headers([("www-authenticate", challenge)]),
        http_version="1.1",
        url="http://www.example.org/dir/index.html",
        method="GET",
        conn=None,
        release=None,  # type: ignore[arg-type]
        read_timeout=None,
        max_size=0,
        elapsed=0.0,
    )


def test_basic_bearer_and_what_auth_accepts() -> None:
    request = AuthRequest("GET", "http://x/", Headers())
    next(BasicAuth("Aladdin", "open sesame").auth_flow(request))
    assert request.headers["authorization"] == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="  # RFC 7617
    next(BearerAuth("mF_9.B5f-4.1JqM").auth_flow(request))
    assert request.headers["authorization"] == "Bearer mF_9.B5f-4.1JqM"  # RFC 6750
    with pytest.raises(ValueError, match="bearer token"):
        BearerAuth("a\r\nb")
    with pytest.raises(TypeError, match="auth="):
        trionet.http.Client(auth="user:password")  # type: ignore[arg-type]


# -- against httpbin -----------------------------------------------------------------


async def get_json(client: trionet.http.Client, url: str, **options: Any) -> tuple[int, Any]:
    response = await client.get(url, **options)
    body = await response.read()
    return response.status, json.loads(body) if body else None


async def test_basic_auth_against_httpbin(httpbin: int) -> None:
    base = f"http://127.0.0.1:{httpbin}"
    async with trionet.http.Client(trust_env=False) as client:
        with trio.fail_after(BOUND):
            url = f"{base}/basic-auth/ann/s3cret"
            ok = await get_json(client, url, auth=("ann", "s3cret"))
            assert ok == (200, {"authenticated": True, "user": "ann"})
            status, _ = await get_json(client, url, auth=("ann", "no"))
            assert status == 401
            status, body = await get_json(client, f"{base}/bearer", auth=BearerAuth("tok"))
            assert (status, body) == (200, {"authenticated": True, "token": "tok"})


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
async def test_digest_auth_against_httpbin(httpbin: int, algorithm: str) -> None:
    base = f"http://127.0.0.1:{httpbin}"
    auth = DigestAuth("ann", "s3cret")
    url = f"{base}/digest-auth/auth/ann/s3cret/{algorithm}"
    async with trionet.http.Client(trust_env=False, auth=auth) as client:
        with trio.fail_after(BOUND):
            assert await get_json(client, url) == (200, {"authenticated": True, "user": "ann"})
            wrong = await client.get(url, auth=DigestAuth("ann", "wrong"))
            assert wrong.status == 401  # answered once, refused, given up


async def test_credentials_do_not_follow_a_redirect_to_another_origin(httpbin: int) -> None:
    # 127.0.0.1 and localhost are two origins: httpbin's /headers, reached
    # through a redirect to the other one, shows what arrived there.
    other = f"http://localhost:{httpbin}/headers"
    same = f"http://127.0.0.1:{httpbin}/headers"
    async with trionet.http.Client(trust_env=False, auth=("ann", "s3cret")) as client:
        with trio.fail_after(BOUND):
            for target, sent in ((other, False), (same, True)):
                redirect = f"http://127.0.0.1:{httpbin}/redirect-to?url={target}"
                status, body = await get_json(client, redirect)
                assert status == 200
                assert ("Authorization" in body["headers"]) is sent


class RefreshingToken(Auth):
    """A flow of one's own: a bearer token, renewed once after a 401."""

    def __init__(self) -> None:
        self.token = "old"

    def auth_flow(self, request: AuthRequest) -> Generator[AuthRequest, ClientResponse, None]:
        request.headers.set("authorization", f"Bearer {self.token}")
        response = yield request
        if response.status == 401:
            self.token = "new"
            request.headers.set("authorization", f"Bearer {self.token}")
            yield request


async def test_a_custom_flow_retries_after_a_401(autojump_clock: trio.abc.Clock) -> None:
    mock = MockTransport()
    api = mock.post("https://api.example.com/orders").respond_with(
        Response(401, {"www-authenticate": 'Bearer error="invalid_token"'}),
        Response.json({"ok": True}, 201),
    )
    async with trionet.http.Client(transport=mock, auth=RefreshingToken()) as client:
        response = await client.post("https://api.example.com/orders", json={"n": 1})
    assert response.status == 201
    sent = [call.request for call in api.calls]
    assert [request.headers["authorization"] for request in sent] == ["Bearer old", "Bearer new"]
    # The body went both times.
    assert [request.json() for request in sent] == [{"n": 1}, {"n": 1}]
