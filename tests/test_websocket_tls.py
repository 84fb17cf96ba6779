"""WebSocket over TLS: ``wss://`` to ``accept_websocket`` on an HTTPS
server, certificates verified by default."""

from __future__ import annotations

from functools import partial

import pytest
import trio

import trionet
import trionet.http
import trionet.websocket
from trionet.testing import TLSCertificates


async def echo_app(request: trionet.http.Request) -> trionet.http.Response | None:
    if request.is_websocket_upgrade:
        ws = await request.accept_websocket()
        async for message in ws:
            await ws.send(message.data)
        return None
    return trionet.http.Response.text("plain")


async def start_https(nursery: trio.Nursery, tls: TLSCertificates) -> trionet.Server:
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, ssl_context=tls.server_context), echo_app, 0, "127.0.0.1"
    )
    return server


async def test_wss_round_trip_with_a_trusted_certificate(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    server = await start_https(nursery, trionet_tls)
    url = f"wss://127.0.0.1:{server.port}/echo"
    async with trionet.websocket.connect(url, ssl_context=trionet_tls.client_context) as ws:
        await ws.send("over TLS")
        await ws.send(b"\x00" * 100_000)
        assert await ws.receive() == trionet.websocket.TextMessage("over TLS")
        assert await ws.receive() == trionet.websocket.BinaryMessage(b"\x00" * 100_000)
        assert ws.tls is not None
        assert ws.tls.version is not None
    assert ws.close_code == 1000


async def test_wss_verifies_the_certificate_by_default(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    server = await start_https(nursery, trionet_tls)
    # No ssl_context: the system's trust store, which does not know the test
    # authority. The connection is refused, not silently unverified.
    with trio.fail_after(10), pytest.raises(trionet.TLSError):
        async with trionet.websocket.connect(f"wss://127.0.0.1:{server.port}/"):
            pass
