"""Tools for testing code built on trionet.

* :func:`memory_tcp_pair`: two connected :class:`~trionet.TCPConnection`
  objects over in-memory streams, for deterministic tests (no sockets, works
  with pytest-trio's ``autojump_clock``).
* A pytest plugin, registered by entry point when trionet is installed, with
  the fixtures ``trionet_tcp_server`` (start a handler on a loopback port in
  the test's nursery; a handler error fails the test) and ``trionet_tls``
  (trustme certificates as server and client ``ssl.SSLContext``).
"""

from __future__ import annotations

import trio.testing

from .. import _stream
from ._certificates import TLSCertificates as TLSCertificates

__all__ = ["TLSCertificates", "memory_tcp_pair"]


def memory_tcp_pair() -> tuple[_stream.TCPConnection, _stream.TCPConnection]:
    """Return two connected :class:`~trionet.TCPConnection` objects that talk
    over in-memory streams.

    What one sends the other receives, ``send_eof`` gives the other an
    :class:`~trionet.EndOfStream`, and ``aclose`` ends the other's loop too. No
    socket is involved, so tests are deterministic and timeouts can be tested
    with ``autojump_clock``. The addresses are ``""``.

    Returns:
        The two ends, ``(client, server)``.
    """
    left, right = trio.testing.memory_stream_pair()
    return _stream.TCPConnection(left), _stream.TCPConnection(right)
