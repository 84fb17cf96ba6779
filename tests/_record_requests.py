"""Records every byte stream a server connection in this process reads
(``ServerProtocol.receive_data``), read by read, for
``tests/test_http_parsers.py`` to replay through both request parsers.

Only on request: ``scripts/record_http_requests`` runs the HTTP server
tests with ``TRIONET_RECORD_REQUESTS`` naming the file to write."""

from __future__ import annotations

import base64
import gzip
import json
import os
from typing import Any

from trionet.http._server._protocol import ServerProtocol

# A stream longer than this is cut here: what matters is its heads and the
# framing of its bodies, not megabytes of payload.
MAX_STREAM = 4 * 1024

_open: dict[int, list[bytes]] = {}
_done: list[list[bytes]] = []


def install() -> bool:
    """Start recording when ``TRIONET_RECORD_REQUESTS`` is set; whether it is."""
    if not os.environ.get("TRIONET_RECORD_REQUESTS"):
        return False
    init, receive, ahead = (
        ServerProtocol.__init__,
        ServerProtocol.receive_data,
        ServerProtocol.receive_ahead,
    )

    def recording_init(self: ServerProtocol, *args: Any) -> None:
        previous = _open.pop(id(self), None)  # (an id is reused once freed)
        if previous:
            _done.append(previous)
        _open[id(self)] = []
        init(self, *args)

    def record(self: ServerProtocol, data: bytes) -> None:
        pieces = _open.get(id(self))
        if pieces is not None and data and sum(map(len, pieces)) < MAX_STREAM:
            pieces.append(bytes(data))

    def recording_receive(self: ServerProtocol, data: bytes) -> None:
        record(self, data)
        receive(self, data)

    def recording_ahead(self: ServerProtocol, data: bytes) -> None:
        record(self, data)
        ahead(self, data)

    ServerProtocol.__init__ = recording_init  # type: ignore[method-assign]
    ServerProtocol.receive_data = recording_receive  # type: ignore[method-assign]
    ServerProtocol.receive_ahead = recording_ahead  # type: ignore[method-assign]
    return True


def save() -> None:
    """Write what was recorded, each stream once."""
    path = os.environ["TRIONET_RECORD_REQUESTS"]
    streams: dict[bytes, list[str]] = {}
    for pieces in [*_done, *_open.values()]:
        whole = b"".join(pieces)
        if whole:
            streams.setdefault(whole, [base64.b64encode(p).decode("ascii") for p in pieces])
    with gzip.open(path, "wt", encoding="ascii") as file:
        json.dump(sorted(streams.values()), file, indent=0)
