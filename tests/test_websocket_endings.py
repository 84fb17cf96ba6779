"""Every way a WebSocket connection can end surfaces as
:class:`trionet.websocket.WebSocketClosed` with a code, on both sides: here
the peer floods pings and then resets the connection, so the automatic pongs
the reader writes meet a broken socket (that write used to escape the
reader's task as an ``ExceptionGroup``)."""

from __future__ import annotations

import pytest
import trio

import trionet.websocket
from tests._ws import (
    HANG_GUARD,
    PING,
    RawPeer,
    Record,
    frame,
    raw_listener,
    start_ws,
)
from trionet.websocket import WebSocketClosed

# Pings in the flood: enough that the peer's receive buffer fills with pongs
# it never reads, so the reader's writes are still going when the reset lands.
FLOOD = 5000


def ping_flood(masked: bool) -> bytes:
    return b"".join(frame(PING, i.to_bytes(4, "big"), masked=masked) for i in range(FLOOD))


@pytest.mark.parametrize("round_", range(5))
async def test_client_sees_connection_closed_when_peer_resets_during_ping_flood(
    round_: int,
) -> None:
    async with raw_listener() as listener, trio.open_nursery() as nursery:
        ended: list[BaseException] = []

        async def client() -> None:
            try:
                async with trionet.websocket.connect(f"ws://127.0.0.1:{listener.port}/") as ws:
                    async for _ in ws:
                        pass
            except BaseException as exc:
                ended.append(exc)

        nursery.start_soon(client)
        with trio.fail_after(HANG_GUARD):
            async with listener.accept() as peer:
                await peer.send_raw(ping_flood(masked=False))
                await peer.reset()
    [error] = ended
    assert type(error) is WebSocketClosed, repr(error)
    assert error.code == 1006


@pytest.mark.parametrize("round_", range(5))
async def test_server_handler_sees_connection_closed_when_peer_resets_during_ping_flood(
    nursery: trio.Nursery, round_: int
) -> None:
    record = Record()
    server = await start_ws(nursery, record.handler)
    async with RawPeer.connect(server.port) as peer:
        with trio.fail_after(HANG_GUARD):
            await record.accepted.wait()
            await peer.send_raw(ping_flood(masked=True))
            await peer.reset()
    await record.wait()
    assert type(record.error) is WebSocketClosed, repr(record.error)
    assert record.error.code == 1006
    assert server.statistics().handler_errors == 0
