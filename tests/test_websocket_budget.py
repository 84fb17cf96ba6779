"""A WebSocket server bounds the messages queued on all its connections
together (``max_total_queued_bytes``): slow readers cannot add up to
unbounded memory, the senders are held back by TCP instead, and everything
still arrives, in order, once the handlers read."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

import trionet
import trionet.http
import trionet.websocket
from tests._ws import HANG_GUARD, LOOPBACK

CONNECTIONS = 10
MESSAGES = 20
MESSAGE_SIZE = 16 * 1024
BUDGET = 64 * 1024
# What one reader may take past the budget: one read of the socket (the
# budget is looked at before each read, and a read may hold several
# messages) plus the message it completes.
READ_SIZE = 64 * 1024
SLACK = CONNECTIONS * (READ_SIZE + MESSAGE_SIZE)


def payload(client: int, index: int) -> bytes:
    return bytes([client]) * 8 + index.to_bytes(4, "big") + bytes(MESSAGE_SIZE - 12)


async def run_slow_readers(serve: object, budget: int | None) -> tuple[int, dict[int, list[bytes]]]:
    """Start a server whose handlers read nothing until told to; let
    CONNECTIONS clients send MESSAGES each; return the bytes queued on the
    server once everything settled, and what each handler then read."""
    release = trio.Event()
    connections: list[trionet.websocket.WebSocketConnection] = []
    received: dict[int, list[bytes]] = {}

    async def handler(ws: trionet.websocket.WebSocketConnection) -> None:
        connections.append(ws)
        await release.wait()
        got: list[bytes] = []
        async for message in ws:
            assert isinstance(message, trionet.websocket.BinaryMessage)
            got.append(message.data)
            if len(got) == MESSAGES:
                break
        received[got[0][0]] = got

    kwargs = {} if budget is None else {"max_total_queued_bytes": budget}
    async with trio.open_nursery() as nursery:
        if serve is trionet.http.serve:

            async def app(request: trionet.http.Request) -> None:
                ws = await request.accept_websocket(max_queued_bytes=1 << 20, compression=False)
                await handler(ws)

            server = await nursery.start(partial(trionet.http.serve, app, 0, LOOPBACK, **kwargs))
        else:
            server = await nursery.start(
                partial(
                    trionet.websocket.serve,
                    handler,
                    0,
                    LOOPBACK,
                    max_queued_bytes=1 << 20,
                    compression=False,
                    **kwargs,
                )
            )
        url = f"ws://{LOOPBACK}:{server.port}/"

        async def client(index: int) -> None:
            async with trionet.websocket.connect(url, compression=False) as ws:
                for i in range(MESSAGES):
                    await ws.send(payload(index, i))
                async for _ in ws:  # until the server closes, once its handler is done
                    pass

        with trio.fail_after(HANG_GUARD):
            async with trio.open_nursery() as clients:
                for index in range(CONNECTIONS):
                    clients.start_soon(client, index)
                while len(connections) < CONNECTIONS:
                    await trio.testing.wait_all_tasks_blocked()
                # Loopback delivers during the send call: once every task
                # waits, no byte is on its way to a reader any more.
                await trio.testing.wait_all_tasks_blocked()
                queued = sum(ws.statistics().queued_bytes for ws in connections)
                release.set()
                while len(received) < CONNECTIONS:
                    await trio.testing.wait_all_tasks_blocked()
                for ws in connections:
                    await ws.aclose()
        await server.shutdown()
    return queued, received


@pytest.mark.parametrize("serve", [trionet.websocket.serve, trionet.http.serve])
async def test_slow_readers_together_stay_within_the_server_budget(serve: object) -> None:
    queued, received = await run_slow_readers(serve, BUDGET)
    assert queued <= BUDGET + SLACK
    assert sorted(received) == list(range(CONNECTIONS))
    for client, messages in received.items():
        assert messages == [payload(client, i) for i in range(MESSAGES)]


async def test_without_a_tight_budget_the_same_readers_queue_everything() -> None:
    # The control: the same load with the default budget (64 MiB) queues all
    # of it, far past what the budget above allows.
    queued, received = await run_slow_readers(trionet.websocket.serve, None)
    assert queued > BUDGET + SLACK
    assert queued == CONNECTIONS * MESSAGES * MESSAGE_SIZE
    assert len(received) == CONNECTIONS


async def test_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_total_queued_bytes"):
        await trionet.websocket.serve(trionet.websocket.serve, 0, max_total_queued_bytes=0)  # type: ignore[arg-type]
