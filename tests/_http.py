"""Raw HTTP/1.1 exchanges for tests: send exactly these bytes, read what comes
back, and parse it with h11 as the client (a parser we did not write)."""

from __future__ import annotations

from dataclasses import dataclass, field

import h11
import trio

import trionet

LOOPBACK = "127.0.0.1"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    informational: list[int] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)


async def read_until_closed(conn: trionet.TCPConnection) -> bytes:
    received = bytearray()
    try:
        async for event in conn:
            if isinstance(event, trionet.Data):
                received += event.data
    except trionet.ConnectionReset:
        pass
    return bytes(received)


# Seconds an exchange with a loopback server may take, at most.
EXCHANGE_TIMEOUT = 10


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, then read until the server closes the connection."""
    with trio.fail_after(EXCHANGE_TIMEOUT):
        async with await trionet.connect_tcp(LOOPBACK, port) as conn:
            await conn.send(data)
            return await read_until_closed(conn)


def parse(raw: bytes, requests: list[tuple[str, str]]) -> list[Reply]:
    """The responses in ``raw``, one per ``(method, target)`` sent, as far as
    they go (a response cut short is left out)."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(raw)
    client.receive_data(b"")
    replies: list[Reply] = []
    for method, target in requests:
        client.send(h11.Request(method=method, target=target, headers=[("host", "test")]))
        client.send(h11.EndOfMessage())
        reply: Reply | None = None
        informational: list[int] = []
        body = bytearray()
        try:
            while True:
                event = client.next_event()
                if isinstance(event, h11.InformationalResponse):
                    informational.append(event.status_code)
                elif isinstance(event, h11.Response):
                    headers = {k.decode().lower(): v.decode("latin-1") for k, v in event.headers}
                    reply = Reply(event.status_code, headers, b"", informational)
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert reply is not None
                    reply.body = bytes(body)
                    reply.trailers = {
                        k.decode().lower(): v.decode("latin-1") for k, v in event.headers
                    }
                    replies.append(reply)
                    break
                else:
                    return replies
        except h11.RemoteProtocolError:
            return replies
        if client.our_state is not h11.DONE or client.their_state is not h11.DONE:
            return replies
        client.start_next_cycle()
    return replies


def request(method: str = "GET", target: str = "/", headers: str = "", body: bytes = b"") -> bytes:
    """A request's bytes; ``headers`` are extra ``Name: value`` lines."""
    head = f"{method} {target} HTTP/1.1\r\nHost: test\r\n{headers}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body
