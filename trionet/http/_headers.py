"""HTTP header fields: case-insensitive names, several values, order kept.

RFC 9110 section 5: field names are case-insensitive, a field may appear more
than once, and the values of a repeated field mean the same as their
comma-separated concatenation (section 5.3), except ``Set-Cookie``
(RFC 6265 section 3), whose values must be kept apart. Received fields are
kept as the parser gave them (bytes) and decoded only when read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import overload

__all__ = ["Headers", "HeadersInput", "is_token"]


# RFC 9110 section 5.1 (a field name is a token) and 5.5 (a value is visible
# characters, obs-text, spaces and tabs; no CR or LF: no response splitting).
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+")
_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def is_token(text: str) -> bool:
    """Whether ``text`` is a token (RFC 9110 section 5.6.2): a field name,
    a method, a WebSocket subprotocol."""
    return _NAME.fullmatch(text) is not None


# Fields the connection itself writes: a handler setting them would break the
# framing of the response or of the next one.
_HOP_BY_HOP = ("content-length", "transfer-encoding", "connection")
_HOP_BY_HOP_BYTES = frozenset(name.encode() for name in _HOP_BY_HOP)
_NAME_BYTES = re.compile(_NAME.pattern.encode())
_VALUE_BYTES = re.compile(_VALUE.pattern.encode("latin-1"))


class _Wire:
    """A :class:`Headers` checked and encoded for sending, with the fields the
    writer must know about. ``block`` leaves out ``Transfer-Encoding`` and
    ``Connection``: the connection writes those, as it decides the framing
    and whether it stays open."""

    __slots__ = ("block", "connection", "length", "transfer_encoding")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        lines = []
        found: dict[str, list[str]] = {}
        for name, value in fields:
            if not is_token(name):
                raise ValueError(f"not a valid header field name: {name!r}")
            value = value.strip(" \t")
            if not _VALUE.fullmatch(value):
                raise ValueError(f"not a valid value for {name}: {value!r}")
            if name in _HOP_BY_HOP:
                found.setdefault(name, []).append(value)
                if name != "content-length":
                    continue  # written by the connection, which decides them
            lines.append(f"{name}: {value}\r\n")
        self.block = "".join(lines).encode("latin-1")
        lengths = {v.strip() for value in found.get("content-length", []) for v in value.split(",")}
        if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
            raise ValueError(f"not a valid Content-Length: {sorted(lengths)}")
        self.length = int(lengths.pop()) if lengths else None
        codings = found.get("transfer-encoding")
        self.transfer_encoding = ", ".join(codings).encode("latin-1") if codings else None
        connection = found.get("connection")
        self.connection = ", ".join(connection).encode("latin-1") if connection else None

    @classmethod
    def from_raw(cls, fields: Iterable[tuple[bytes, bytes]]) -> _Wire:
        """The same, checked and encoded straight from byte fields (an ASGI
        application's), without decoding them first.

        Raises:
            ValueError: As the constructor.
        """
        wire = cls.__new__(cls)
        lines: list[bytes] = []
        found: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            if not _NAME_BYTES.fullmatch(name):
                raise ValueError(f"not a valid header field name: {name!r}")
            value = value.strip(b" \t")
            if not _VALUE_BYTES.fullmatch(value):
                raise ValueError(f"not a valid value for {name!r}: {value!r}")
            name = name.lower()
            if name in _HOP_BY_HOP_BYTES:
                found.setdefault(name, []).append(value)
                if name != b"content-length":
                    continue
            lines += (name, b": ", value, b"\r\n")
        wire.block = b"".join(lines)
        declared = found.get(b"content-length", ())
        lengths = {v.strip() for value in declared for v in value.split(b",")}
        if len(lengths) > 1 or (lengths and not next(iter(lengths)).isdigit()):
            raise ValueError(f"not a valid Content-Length: {sorted(lengths)}")
        wire.length = int(lengths.pop()) if lengths else None
        codings = found.get(b"transfer-encoding")
        wire.transfer_encoding = b", ".join(codings) if codings else None
        connection = found.get(b"connection")
        wire.connection = b", ".join(connection) if connection else None
        return wire


#: What a caller may pass as headers: a mapping, pairs, or :class:`Headers`.
HeadersInput = Mapping[str, str] | Iterable[tuple[str, str]]


def _text(value: bytes) -> str:
    # Field values are ASCII in practice; obs-text (RFC 9110 section 5.5) is
    # kept byte for byte as Latin-1.
    return value.decode("latin-1")


def _raw_name(name: str) -> bytes | None:
    """``name`` as the lower-case bytes a received field name would match;
    ``None`` (which matches nothing) when it is not ASCII, as no field name
    of a parsed message is."""
    try:
        return name.lower().encode("ascii")
    except UnicodeEncodeError:
        return None


class Headers:
    """An ordered, case-insensitive, multi-valued collection of header fields.

    ``headers["content-type"]`` gives the value (several values of one field
    are joined with ``", "``, RFC 9110 section 5.3); :meth:`get_all` gives them
    one by one. Iterating gives ``(name, value)`` pairs in the order received,
    names in lower case.

    Args:
        fields: Initial fields: a mapping or ``(name, value)`` pairs.
    """

    # Fields that arrived (a request's, a response's) stay as the parser's
    # bytes in ``_raw`` until something needs them all as text: a lookup by
    # name reads the bytes. An idle WebSocket keeps its upgrade request's
    # headers for its whole life, and most are never read.
    __slots__ = ("_encoded", "_list", "_raw")

    def __init__(self, fields: HeadersInput | None = None) -> None:
        self._list: list[tuple[str, str]] = []
        self._raw: list[tuple[bytes, bytes]] | None = None
        self._encoded: _Wire | None = None
        if fields is None:
            return
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        for name, value in pairs:
            self.add(name, value)

    @classmethod
    def _from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Headers over received fields, decoded when first needed (the list
        is kept, not copied: callers hand over one nobody changes)."""
        headers = cls.__new__(cls)
        headers._raw = raw if isinstance(raw, list) else list(raw)
        headers._list = []
        headers._encoded = None
        return headers

    @classmethod
    def _to_send(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Headers over byte fields to send (an ASGI response's), checked and
        encoded now, without decoding them.

        Raises:
            ValueError: A field name or value is not valid.
        """
        headers = cls._from_raw(raw)
        headers._encoded = _Wire.from_raw(raw)
        return headers

    def _copy_encoded(self) -> Headers:
        """A copy that shares the received bytes and the encoding (neither
        is ever changed in place: a change makes the copy its own list)."""
        headers = Headers.__new__(Headers)
        headers._raw = self._raw
        headers._list = [] if self._raw is not None else list(self._list)
        headers._encoded = self._encoded
        return headers

    @property
    def _fields(self) -> list[tuple[str, str]]:
        raw = self._raw
        if raw is not None:
            self._list = [(name.decode("ascii").lower(), _text(value)) for name, value in raw]
            self._raw = None
        return self._list

    @_fields.setter
    def _fields(self, fields: list[tuple[str, str]]) -> None:
        self._raw = None
        self._list = fields

    def _wire(self) -> _Wire:
        """The fields encoded for sending; kept until the next change, so a
        response sent many times is encoded once."""
        if self._encoded is None:
            self._encoded = _Wire(self._fields)
        return self._encoded

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._fields == other._fields
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        raw = self._raw
        return len(raw) if raw is not None else len(self._list)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        raw = self._raw
        if raw is not None:
            wanted_bytes = _raw_name(name)
            return any(field.lower() == wanted_bytes for field, _ in raw)
        wanted = name.lower()
        return any(field == wanted for field, _ in self._list)

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        """Return the field's value (repeated values joined with ``", "``).

        Args:
            name: The field name, in any case.
            default: What to return when the field is absent.

        Returns:
            The value, or ``default``.
        """
        values = self.get_all(name)
        return ", ".join(values) if values else default

    def get_all(self, name: str) -> list[str]:
        """Return every value of a field, in order (``Set-Cookie`` needs this).

        Args:
            name: The field name, in any case.

        Returns:
            The values; empty when the field is absent.
        """
        raw = self._raw
        if raw is not None:
            wanted_bytes = _raw_name(name)
            return [_text(value) for field, value in raw if field.lower() == wanted_bytes]
        wanted = name.lower()
        return [value for field, value in self._list if field == wanted]

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any others of the same name.

        Args:
            name: The field name.
            value: The field value.

        Raises:
            TypeError: ``name`` or ``value`` is not a ``str``.
        """
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header names and values are str, not {name!r}: {value!r}")
        self._fields.append((name.lower(), value))
        self._encoded = None

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name with one.

        Args:
            name: The field name.
            value: The field value.
        """
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        """Remove every field of this name (absent is fine).

        Args:
            name: The field name.
        """
        wanted = name.lower()
        self._fields = [(field, value) for field, value in self._fields if field != wanted]
        self._encoded = None

    def items(self) -> list[tuple[str, str]]:
        """Return the ``(name, value)`` pairs in order, names in lower case.

        Returns:
            A new list.
        """
        return list(self._fields)

    def copy(self) -> Headers:
        """Return an independent copy.

        Returns:
            A new :class:`Headers`.
        """
        headers = Headers.__new__(Headers)
        headers._fields = list(self._fields)
        headers._encoded = None
        return headers
