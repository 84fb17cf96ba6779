"""Reading a PROXY protocol header off a newly accepted connection: the
trio side of :mod:`._protocol`.

Theory of operation
-------------------
A proxy that speaks the PROXY protocol (HAProxy's ``send-proxy``, nginx's
``proxy_protocol on``, AWS NLB) writes one header before anything of the
protocol it carries: the original client's and destination's addresses (and
in version 2, TLVs). The server must read exactly that header and nothing
more: what follows belongs to TLS or HTTP, and the readers above take the
socket as it is.

So the header is read with ``MSG_PEEK``: look at what the socket holds, let
the sans-IO parser say whether a whole header is there and how long it is,
then take exactly that many bytes. While the header is incomplete every byte
seen so far is the header's (the parser's promise), so those are taken too
and the next peek waits for more. Nothing is ever read past the header, and
no buffer has to be handed to the layer above.

The header is believed only from trusted peers (``proxy_allow_from``): from
anyone else the connection is served as if the option were off, and a PROXY
line it sends is just a malformed request (gunicorn's 2026 fix of the same
hole). A trusted peer that sends no header, a malformed or oversized one, or
nothing within ``proxy_header_timeout`` is closed: counted with the
handshake failures and logged at debug level.
"""

from __future__ import annotations

import socket as stdlib_socket
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from .. import _checks as checks
from .._server import HandshakeFailed, SocketAddress
from .._trust import TrustedPeers
from ._protocol import ProxyHeader, ProxyHeaderError, parse_proxy_header

__all__ = [
    "DEFAULT_MAX_PROXY_HEADER_SIZE",
    "DEFAULT_PROXY_ALLOW_FROM",
    "DEFAULT_PROXY_HEADER_TIMEOUT",
    "PROXY_PROTOCOL_MODES",
    "Proxied",
    "ProxyOptions",
    "read_proxy_header",
]

#: The values of ``proxy_protocol=``: off, one version, or either.
PROXY_PROTOCOL_MODES = ("off", "v1", "v2", "auto")

# A proxy writes its header with the connection's first bytes, at once (the
# spec asks senders to send it in one write): seconds are plenty, and a
# client that connects and stays silent should not hold a slot for long.
DEFAULT_PROXY_HEADER_TIMEOUT = 5.0

# Version 1 is at most 107 bytes. Version 2 may announce up to 64 KiB of
# TLVs; what real proxies send (addresses, ALPN, authority, SSL details,
# a unique ID) fits in a few hundred bytes, and 4 KiB leaves room for a
# client certificate's common name and more without letting a peer make
# each connection hold 64 KiB.
DEFAULT_MAX_PROXY_HEADER_SIZE = 4096

# Who may speak for a client when the option is on and the caller says
# nothing: this machine only (gunicorn's default too).
DEFAULT_PROXY_ALLOW_FROM = ("127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """A server's PROXY protocol settings, checked once.

    Attributes:
        versions: ``"v1"``, ``"v2"`` or ``"auto"`` (either).
        allow_from: The peers whose header is believed.
        timeout: Seconds a trusted peer gets to send its header.
        max_size: Bytes a header may have.
    """

    versions: str
    allow_from: TrustedPeers
    timeout: float
    max_size: int

    @classmethod
    def build(
        cls,
        mode: str,
        allow_from: str | Iterable[str] | None,
        timeout: float,
        max_size: int,
    ) -> ProxyOptions | None:
        """The options for these arguments, or ``None`` when ``mode`` is
        ``"off"``.

        Raises:
            ValueError: A value is out of range or an address is malformed.
            TypeError: A value is of the wrong kind.
        """
        checks.one_of("proxy_protocol", mode, PROXY_PROTOCOL_MODES)
        seconds = checks.seconds("proxy_header_timeout", timeout)
        assert seconds is not None
        checks.count("max_proxy_header_size", max_size, minimum=16)
        trusted = TrustedPeers(allow_from)
        if mode == "off":
            return None
        return cls(mode, trusted, seconds, max_size)


@dataclass(frozen=True, slots=True)
class Proxied:
    """What a connection learnt from its PROXY header.

    Attributes:
        header: The header.
        peer: The address of the proxy (the socket's own peer).
    """

    header: ProxyHeader
    peer: SocketAddress


def _peer_of(sock: trio.socket.SocketType) -> SocketAddress:
    try:
        peer = sock.getpeername()
    except OSError:
        return ""
    return peer if isinstance(peer, tuple | str) else str(peer)


async def read_proxy_header(stream: trio.SocketStream, options: ProxyOptions) -> Proxied | None:
    """Read the PROXY header a trusted peer sends first, and nothing after it.

    Args:
        stream: The accepted connection, before anything else read it.
        options: The server's settings.

    Returns:
        The header and the proxy's address, or ``None`` when the peer is not
        trusted (its connection is served as it is).

    Raises:
        HandshakeFailed: A trusted peer sent no valid header in time (the
            server closes the connection and counts it).
    """
    sock = stream.socket
    peer = _peer_of(sock)
    if not options.allow_from.trusts(peer):
        return None
    taken = b""
    with trio.move_on_after(options.timeout):
        try:
            while True:
                seen = await sock.recv(options.max_size - len(taken), stdlib_socket.MSG_PEEK)
                if not seen:
                    raise HandshakeFailed("the proxy closed before sending its PROXY header")
                parsed = parse_proxy_header(
                    taken + seen, versions=options.versions, max_size=options.max_size
                )
                if parsed is None:
                    # All of it is the header's: take it, then wait for more.
                    taken += await _take(sock, len(seen))
                    continue
                header, size = parsed
                await _take(sock, size - len(taken))
                return Proxied(header, peer)
        except ProxyHeaderError as exc:
            raise HandshakeFailed(f"bad PROXY header: {exc}") from None
        except OSError as exc:
            raise HandshakeFailed(f"connection lost before the PROXY header: {exc}") from None
    raise HandshakeFailed(f"no PROXY header within {options.timeout:g} s")


async def _take(sock: trio.socket.SocketType, size: int) -> bytes:
    """Read exactly ``size`` bytes the socket is known to hold (they were
    peeked)."""
    data = b""
    while len(data) < size:
        chunk = await sock.recv(size - len(data))
        if not chunk:  # pragma: no cover (peeked bytes are there to read)
            raise HandshakeFailed("the proxy closed inside its PROXY header")
        data += chunk
    return data
