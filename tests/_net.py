"""Small helpers shared by the socket tests."""

from __future__ import annotations

import socket

import trionet


def ipv6_loopback_available(kind: socket.SocketKind = socket.SOCK_STREAM) -> bool:
    """Whether this machine can bind ``::1`` (some containers have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, kind) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


async def receive_all(conn: trionet.TCPConnection) -> bytes:
    """Everything the peer sends until its end of stream."""
    data = b""
    async for event in conn:
        if isinstance(event, trionet.Data):
            data += event.data
    return data


async def receive_exactly(conn: trionet.TCPConnection, size: int) -> bytes:
    """Exactly ``size`` bytes from the connection's next Data events."""
    data = b""
    while len(data) < size:
        event = await anext(conn)
        assert isinstance(event, trionet.Data), f"got {event!r} after {data!r}"
        data += event.data
    assert len(data) == size, f"more than expected: {data!r}"
    return data
