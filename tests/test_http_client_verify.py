"""``verify=`` on trionet's client, as httpx spells it: the system's store
by default, a CA file, the certifi bundle, an ``ssl.SSLContext``, or no
verification; against trionet's TLS server on loopback with certificates
from a throwaway CA (trustme)."""

from __future__ import annotations

import ssl
from functools import partial
from pathlib import Path

import pytest
import trio
import trustme

import trionet
import trionet.http
from tests._http import LOOPBACK
from trionet.http import HTTPTLSError, Request, Response

BOUND = 20


async def hello(request: Request) -> Response:
    return Response(200, body=b"hello")


async def serve_tls(nursery: trio.Nursery, ca: trustme.CA, *names: str) -> int:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, hello, 0, LOOPBACK, ssl_context=context)
    )
    return server.port


async def status(url: str, **options: object) -> int:
    async with trionet.http.Client(trust_env=False, **options) as client:  # type: ignore[arg-type]
        with trio.fail_after(BOUND):
            return (await client.get(url)).status


async def test_verify_takes_a_ca_file_or_nothing(nursery: trio.Nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    port = await serve_tls(nursery, ca, "localhost")
    url = f"https://localhost:{port}/"
    with pytest.raises(HTTPTLSError, match="certificate"):
        await status(url)  # the system's store does not know this CA
    assert await status(url, verify=str(ca_file)) == 200
    assert await status(url, verify=ca_file) == 200
    context = ssl.create_default_context(cafile=str(ca_file))
    assert await status(url, verify=context) == 200
    # A certificate for another name: refused with the CA, taken without checks.
    other = await serve_tls(nursery, ca, "other.example")
    with pytest.raises(HTTPTLSError, match="Hostname mismatch"):
        await status(f"https://localhost:{other}/", verify=ca_file)
    assert await status(f"https://localhost:{other}/", verify=False) == 200


async def test_verify_certifi_uses_its_bundle(nursery: trio.Nursery) -> None:
    ca = trustme.CA()
    port = await serve_tls(nursery, ca, "localhost")
    with pytest.raises(HTTPTLSError, match="certificate"):
        await status(f"https://localhost:{port}/", verify="certifi")
    context = trionet.http._client._connection.verify_context("certifi")
    assert context is not None
    assert len(context.get_ca_certs()) > 50  # Mozilla's roots


def test_what_verify_refuses(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such CA file"):
        trionet.http.Client(verify=str(tmp_path / "missing.pem"))
    with pytest.raises(TypeError, match="verify="):
        trionet.http.Client(verify=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        trionet.http.Client(verify=False, ssl_context=ssl.create_default_context())
