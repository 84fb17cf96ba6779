"""The heartbeat a worker sends its supervisor, sans I/O.

One JSON object per line, over the socket pair the supervisor made for the
worker: whether the worker is ready (it serves every ``listen`` entry), its
servers' summed counters, the snapshots of its
:class:`~trionet.metrics.Metrics` by namespace, and the entries it does not
serve yet (named in the error when it never gets ready).

The supervisor sends one byte, :data:`ASK`, when it wants a beat *now* (a
scrape of the workers' metrics): the worker counts the requests it has read
and each beat says how many it answers (``answered``), so the supervisor
knows which beat is fresh enough without any clock. Otherwise the worker
only waits for the end of the stream, which says the supervisor is gone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .._server import ServerStatistics

__all__ = ["ASK", "MAX_LINE", "Beat", "BeatReader", "check_snapshot"]

# A beat is a few hundred bytes, or some kilobytes with the metrics of many
# servers (a histogram per method); anything much longer is not one of ours.
MAX_LINE = 16 * 1024 * 1024

#: What the supervisor sends to ask for a beat now.
ASK = b"?"

#: Metrics snapshots by namespace (see ``trionet.metrics.Metrics.snapshot``).
MetricsSnapshots = dict[str, dict[str, Any]]


def check_snapshot(value: object, where: str = "metrics") -> None:
    """Check that ``value`` is a snapshot: dicts with str keys down to
    numeric leaves.

    Raises:
        ValueError: It is not.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{where} is not an object")
    for key, item in value.items():
        if not isinstance(key, str):
            raise ValueError(f"{where} has a key that is not a string")
        if isinstance(item, dict):
            check_snapshot(item, f"{where}.{key}")
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"{where}.{key} is not a number")


@dataclass(frozen=True, slots=True)
class Beat:
    """One heartbeat."""

    ready: bool
    servers: ServerStatistics
    pending: tuple[str, ...] = ()
    metrics: MetricsSnapshots = field(default_factory=dict)
    answered: int = 0

    def encode(self) -> bytes:
        """The beat as one line."""
        message = {
            "ready": self.ready,
            "servers": asdict(self.servers),
            "pending": self.pending,
            "metrics": self.metrics,
            "answered": self.answered,
        }
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
            metrics = message.get("metrics", {})
            check_snapshot(metrics)
            return cls(
                ready=bool(message["ready"]),
                servers=servers,
                pending=tuple(str(item) for item in message["pending"]),
                metrics=metrics,
                answered=int(message.get("answered", 0)),
            )
        except (AttributeError, KeyError, TypeError, ValueError, RecursionError) as exc:
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
