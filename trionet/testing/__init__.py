"""Tools for testing code built on trionet.

* :func:`memory_tcp_pair`: two connected :class:`~trionet.TCPConnection`
  objects over in-memory streams, for deterministic tests (no sockets, works
  with pytest-trio's ``autojump_clock``); :func:`memory_stream_pair` gives the
  bare trio streams underneath, with socket-like bounded buffers.
* :class:`VirtualUDPNetwork`: real :class:`~trionet.UDPSocket` objects and
  :func:`~trionet.serve_udp` servers on a simulated network, with seeded loss,
  duplication, reordering and latency, for deterministic tests of protocols
  built on UDP.
* :class:`VirtualTCPNetwork`: the unchanged :func:`~trionet.serve_tcp`,
  :func:`~trionet.connect_tcp` and everything above them (HTTP, WebSocket,
  TLS) on a simulated stream network with latency, bandwidth, bounded
  buffers, seeded segmentation, stalls and resets.
* A pytest plugin, registered by entry point when trionet is installed, with
  the fixtures ``trionet_tcp_server`` and ``trionet_udp_server`` (start a
  handler on a loopback port in the test's nursery; a handler error fails the
  test) and ``trionet_tls`` (trustme certificates as server and client
  ``ssl.SSLContext``).
"""

from __future__ import annotations

from .. import _stream
from ._certificates import TLSCertificates as TLSCertificates
from ._http_mock import MockCall as MockCall
from ._http_mock import MockRequest as MockRequest
from ._http_mock import MockRoute as MockRoute
from ._http_mock import MockTransport as MockTransport
from ._http_mock import UnmatchedRequest as UnmatchedRequest
from ._memory import DEFAULT_MEMORY_BUFFER as DEFAULT_MEMORY_BUFFER
from ._memory import MemoryStream as MemoryStream
from ._memory import memory_stream_pair as memory_stream_pair
from ._servers import LocalServer as LocalServer
from ._tcp_network import DEFAULT_VIRTUAL_STREAM_BUFFER as DEFAULT_VIRTUAL_STREAM_BUFFER
from ._tcp_network import VirtualConnection as VirtualConnection
from ._tcp_network import VirtualTCPNetwork as VirtualTCPNetwork
from ._tcp_network import VirtualTCPStatistics as VirtualTCPStatistics
from ._udp_network import DEFAULT_VIRTUAL_RECEIVE_BUFFER as DEFAULT_VIRTUAL_RECEIVE_BUFFER
from ._udp_network import DEFAULT_VIRTUAL_REORDER_DELAY as DEFAULT_VIRTUAL_REORDER_DELAY
from ._udp_network import VirtualNetworkStatistics as VirtualNetworkStatistics
from ._udp_network import VirtualUDPNetwork as VirtualUDPNetwork

__all__ = [
    "DEFAULT_MEMORY_BUFFER",
    "DEFAULT_VIRTUAL_RECEIVE_BUFFER",
    "DEFAULT_VIRTUAL_REORDER_DELAY",
    "DEFAULT_VIRTUAL_STREAM_BUFFER",
    "LocalServer",
    "MemoryStream",
    "MockCall",
    "MockRequest",
    "MockRoute",
    "MockTransport",
    "TLSCertificates",
    "UnmatchedRequest",
    "VirtualConnection",
    "VirtualNetworkStatistics",
    "VirtualTCPNetwork",
    "VirtualTCPStatistics",
    "VirtualUDPNetwork",
    "memory_stream_pair",
    "memory_tcp_pair",
]


def memory_tcp_pair(
    *, buffer_size: int = DEFAULT_MEMORY_BUFFER
) -> tuple[_stream.TCPConnection, _stream.TCPConnection]:
    """Return two connected :class:`~trionet.TCPConnection` objects that talk
    over in-memory streams.

    What one sends the other receives, ``send_eof`` gives the other an
    :class:`~trionet.EndOfStream`, and ``aclose`` ends the other's loop too
    (its sends then raise :class:`~trionet.ConnectionReset`). Each direction
    buffers at most ``buffer_size`` bytes, as a socket's kernel buffers do, so
    ``send`` blocks while the peer does not read: backpressure can be tested.
    No socket is involved, so tests are deterministic and timeouts can be
    tested with ``autojump_clock``. The addresses are ``""``.

    Args:
        buffer_size: Bytes each direction holds before ``send`` waits
            (default 64 KiB).

    Returns:
        The two ends, ``(client, server)``.

    Raises:
        ValueError: ``buffer_size`` is less than 1.
    """
    left, right = memory_stream_pair(buffer_size)
    return _stream.TCPConnection(left), _stream.TCPConnection(right)
