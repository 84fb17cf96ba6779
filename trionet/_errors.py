"""The exceptions trionet raises.

Two axes (see STYLE.md): misuse of the API by the caller raises at once with a
builtin type (``TypeError``, ``ValueError``, ``trio.ClosedResourceError``,
``trio.BusyResourceError``); a peer or network that misbehaves raises a
:class:`ConnectionClosed` subclass. Operating-system errors never escape as a
bare ``OSError``: reads and writes are translated in
:mod:`trionet._transport`, connects in :mod:`trionet._connect`, binds where
the listening sockets are made.
"""

from __future__ import annotations

__all__ = [
    "BindError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionReset",
    "TLSError",
]


class ConnectionClosed(Exception):
    """The connection ended abnormally: reset, broken transport or protocol
    violation.

    A clean end (the peer's end of stream) is not an error: the event loop just
    ends. Catch this class to handle every abnormal end of every protocol.

    Attributes:
        reason: A human-readable description of what happened.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionReset(ConnectionClosed):
    """The peer reset the connection, or the transport broke under us
    (``ECONNRESET``, ``EPIPE``, an unexpected end of a stream that had to go on).
    """


class TLSError(ConnectionClosed):
    """The TLS layer failed: handshake failure, certificate rejected, or a
    record that could not be decrypted, or the peer closed TCP without a TLS
    ``close_notify`` (a possible truncation attack, RFC 8446 section 6.1).
    """


class ConnectError(OSError):
    """Opening a connection failed: refused, unreachable, name not found.

    It is an :class:`OSError` (``errno`` is kept when the system gave one), so
    code that already handles socket errors keeps working.
    """


class ConnectTimeout(ConnectError, TimeoutError):
    """Opening a connection took longer than its ``connect_timeout``."""


class BindError(OSError):
    """A server could not listen on its address. The message names the address;
    ``errno`` is kept (``errno.EADDRINUSE`` for an address already in use).
    """
