"""What an HTTP server connection counts."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HTTPConnectionStatistics"]


@dataclass(frozen=True, slots=True)
class HTTPConnectionStatistics:
    """A snapshot of an :class:`~trionet.http.HTTPConnection`'s counters.

    Attributes:
        bytes_received: Bytes read from the transport.
        bytes_sent: Bytes written to the transport.
        requests: Requests received.
    """

    bytes_received: int
    bytes_sent: int
    requests: int
