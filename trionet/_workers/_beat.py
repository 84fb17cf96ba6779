"""The heartbeat a worker sends its supervisor, sans I/O.

One JSON object per line, over the socket pair the supervisor made for the
worker: whether the worker is ready (it serves every ``listen`` entry), its
servers' summed counters, and the entries it does not serve yet (named in the
error when it never gets ready). The supervisor sends nothing back: the
worker only waits for the end of the stream, which says the supervisor is
gone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

from .._server import ServerStatistics

__all__ = ["MAX_LINE", "Beat", "BeatReader"]

# A beat is a few hundred bytes; anything much longer is not one of ours.
MAX_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat."""

    ready: bool
    servers: ServerStatistics
    pending: tuple[str, ...] = ()

    def encode(self) -> bytes:
        """The beat as one line."""
        message = {"ready": self.ready, "servers": asdict(self.servers), "pending": self.pending}
        return json.dumps(message, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def decode(cls, line: bytes) -> Beat:
        """Parse one line.

        Raises:
            ValueError: It is not a beat.
        """
        try:
            message = json.loads(line)
            counters = message["servers"]
            # A worker started after a code update may count more, or fewer,
            # things than its supervisor: take what both know, 0 for the rest.
            servers = ServerStatistics(
                **{f.name: int(counters.get(f.name, 0)) for f in fields(ServerStatistics)}
            )
            return cls(
                ready=bool(message["ready"]),
                servers=servers,
                pending=tuple(str(item) for item in message["pending"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a heartbeat: {line[:200]!r}") from exc


class BeatReader:
    """Splits what arrives into beats."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Beat]:
        """Add received bytes; return the beats they complete.

        Raises:
            ValueError: A line is too long or is not a beat.
        """
        self._buffer += data
        beats = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            beats.append(Beat.decode(line))
        if len(self._buffer) > MAX_LINE:
            raise ValueError(f"a heartbeat longer than {MAX_LINE} bytes")
        return beats
