"""trionet/websocket/_deflate.py on its own, sans-IO: offers and answers as
strings, and whole conversations between two wsproto connections as bytes.
No event loop, no socket (the network side is tests/test_websocket_compression.py)."""

from __future__ import annotations

import os

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, TextMessage
from wsproto.utilities import RemoteProtocolError

from trionet.websocket._deflate import bounded_deflate


# The answer's parameters (the handshake puts the extension's name before them).
@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("permessage-deflate", ""),
        ("permessage-deflate; client_max_window_bits", "client_max_window_bits=15"),
        ('permessage-deflate; server_max_window_bits="10"', "server_max_window_bits=10"),
        ("permessage-deflate; server_no_context_takeover", "server_no_context_takeover"),
    ],
)
def test_offers_the_server_takes(offer: str, answer: str) -> None:
    assert bounded_deflate(None).accept(offer) == answer


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; x-unknown",
        "permessage-deflate; server_max_window_bits=abc",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
        "permessage-deflate; ; server_no_context_takeover",
    ],
)
def test_offers_the_server_declines(offer: str) -> None:
    assert bounded_deflate(None).accept(offer) is None


@pytest.mark.parametrize(
    "answer",
    [
        "permessage-deflate; x-unknown",
        "permessage-deflate; client_max_window_bits",  # only an offer may omit it
        "permessage-deflate; server_max_window_bits=7",
    ],
)
def test_answers_the_client_refuses(answer: str) -> None:
    with pytest.raises(RemoteProtocolError, match="RFC 7692"):
        bounded_deflate(None).finalize(answer)


def pair(limit: int | None) -> tuple[Connection, Connection]:
    """A client and a server wsproto connection, both deflating, the
    server's inflating at most ``limit`` bytes per message."""
    client_ext, server_ext = bounded_deflate(None), bounded_deflate(limit)
    answer = server_ext.accept(client_ext.offer())
    assert isinstance(answer, str)
    client_ext.finalize(answer)
    return (
        Connection(ConnectionType.CLIENT, [client_ext]),
        Connection(ConnectionType.SERVER, [server_ext]),
    )


def test_compressed_messages_come_through_whole() -> None:
    client, server = pair(limit=1 << 20)
    text = "héllo " * 1000
    wire = client.send(TextMessage(text)) + client.send(BytesMessage(b"\x00" * 5000))
    assert len(wire) < 200  # compressed
    server.receive_data(wire)
    events = list(server.events())
    assert [type(e) for e in events] == [TextMessage, BytesMessage]
    assert events[0].data == text
    assert events[1].data == b"\x00" * 5000


def test_a_message_inflating_past_the_limit_is_1009_after_inflating_only_the_limit() -> None:
    client, server = pair(limit=1000)
    bomb = client.send(BytesMessage(b"\x00" * 10_000_000))  # about 10 KB on the wire
    assert len(bomb) < 20_000
    server.receive_data(bomb)
    events = list(server.events())
    assert len(events) == 1
    assert isinstance(events[0], CloseConnection)
    assert events[0].code == 1009


def test_a_message_at_the_limit_passes() -> None:
    client, server = pair(limit=1000)
    payload = os.urandom(1000)  # incompressible: the inflated size is exact
    server.receive_data(client.send(BytesMessage(payload)))
    [event] = list(server.events())
    assert isinstance(event, BytesMessage)
    assert event.data == payload
