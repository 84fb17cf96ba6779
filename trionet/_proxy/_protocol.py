"""The PROXY protocol, versions 1 and 2, without I/O: bytes in, a header out.

Theory of operation
-------------------
HAProxy's ``doc/proxy-protocol.txt`` (revision 2020/03/05) defines a header a
proxy writes first on a connection to say whom it speaks for. Version 1
(section 2.1) is one US-ASCII line of at most 107 bytes, CRLF included;
version 2 (section 2.2) is 16 bytes (signature, version and command, family
and protocol, a big-endian length) and that many more: addresses, then TLVs.

:func:`parse_proxy_header` takes whatever has arrived and answers a complete
header and its size, ``None`` (a proper prefix of a header that may still be
valid), or :class:`ProxyHeaderError`. It judges each byte as it comes (the
spec: "abort the connection as soon as possible") and never needs a byte past
the header, so a reader that consumes all it was shown while the answer is
``None`` never eats into the protocol that follows. Where the spec leaves a
choice the parser is strict, since the header decides which address a server
believes ("Any sequence which does not exactly match the protocol must be
discarded").
"""

from __future__ import annotations

import ipaddress
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "V1_MAX_SIZE",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderError",
    "ProxySSL",
    "encode_v1",
    "encode_v2",
    "parse_proxy_header",
]

#: The longest version 1 line, CRLF included (spec section 2.1, "worst case").
V1_MAX_SIZE = 107
#: The 12 bytes every version 2 header starts with (spec section 2.2).
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

Address: TypeAlias = tuple[str, int] | str | None
_IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

_V1_PREFIX = b"PROXY "
_V1_FAMILIES = ("TCP4", "TCP6", "UNKNOWN")
_V2_FIXED = 16

# Indexed by the family nibble: AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX.
_FAMILY_NAMES = ("UNKNOWN", "TCP4", "TCP6", "UNIX")
_ADDRESS_SIZES = (0, 12, 36, 216)
# Section 2.2 lists the family/protocol bytes "expected in practice" and calls
# them "the valid combinations": a family without a protocol (or the reverse)
# is not one of them.
_VALID_FAMILY_BYTES = frozenset({0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32})
_DGRAM = 0x2
_LOCAL, _PROXY = 0x0, 0x1

_TYPE_ALPN, _TYPE_AUTHORITY, _TYPE_CRC32C, _TYPE_UNIQUE_ID, _TYPE_SSL = 0x01, 0x02, 0x03, 0x05, 0x20
# Two copies of a TLV the parser interprets would leave "which one counts" to
# chance (and to whichever other component reads the header), so they are
# refused; NOOP and the types passed through uninterpreted may repeat.
_SINGLE_TLVS = frozenset({_TYPE_ALPN, _TYPE_AUTHORITY, _TYPE_CRC32C, _TYPE_UNIQUE_ID, _TYPE_SSL})
_UNIQUE_ID_MAX = 128
# Section 2.2.6: the SSL sub-TLVs are US-ASCII, but for the UTF-8 common name.
_SSL_VERSION, _SSL_CN, _SSL_CIPHER, _SSL_SIG_ALG, _SSL_KEY_ALG = range(0x21, 0x26)

_IPV4_TEXT = re.compile(r"[0-9.]{7,15}")
# inet_pton's form: hex groups, "::", and a dotted IPv4 tail (what inet_ntop
# writes for a v4-mapped address, so what HAProxy sends for one). No "%zone".
_IPV6_TEXT = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_IPV6_PARTIAL = re.compile(r"[0-9A-Fa-f:.]{0,45}")
_PORT_TEXT = re.compile(r"0|[1-9][0-9]{0,4}")


@dataclass(frozen=True, slots=True)
class ProxySSL:
    """The ``PP2_TYPE_SSL`` TLV of a version 2 header (spec section 2.2.6).

    Attributes:
        client_ssl: ``PP2_CLIENT_SSL``: the client connected over TLS.
        client_cert_connection: ``PP2_CLIENT_CERT_CONN``: it presented a
            certificate on this connection.
        client_cert_session: ``PP2_CLIENT_CERT_SESS``: it presented one at
            least once in this TLS session.
        verified: The ``verify`` field is zero (a certificate was presented
            and verified, if one was).
        version: ``PP2_SUBTYPE_SSL_VERSION``, e.g. ``"TLSv1.3"``.
        common_name: ``PP2_SUBTYPE_SSL_CN`` of the client certificate.
        cipher: ``PP2_SUBTYPE_SSL_CIPHER``.
        signature_algorithm: ``PP2_SUBTYPE_SSL_SIG_ALG``.
        key_algorithm: ``PP2_SUBTYPE_SSL_KEY_ALG``.
    """

    client_ssl: bool
    client_cert_connection: bool
    client_cert_session: bool
    verified: bool
    version: str | None = None
    common_name: str | None = None
    cipher: str | None = None
    signature_algorithm: str | None = None
    key_algorithm: str | None = None


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed PROXY protocol header.

    Attributes:
        version: 1 or 2.
        command: ``"PROXY"``, or ``"LOCAL"`` (version 2: the proxy's own
            connection, e.g. a health check).
        family: ``"TCP4"``, ``"TCP6"``, ``"UNIX"`` or ``"UNKNOWN"`` (version
            1 ``UNKNOWN``, version 2 ``AF_UNSPEC`` or any ``LOCAL``).
        source: The original client: ``(ip, port)`` for TCP, a path for UNIX,
            else ``None``.
        destination: The address the client connected to, alike.
        tlvs: Every version 2 TLV as ``(type, value)``, in order.
        alpn: ``PP2_TYPE_ALPN``.
        authority: ``PP2_TYPE_AUTHORITY`` (the host name, e.g. the SNI).
        unique_id: ``PP2_TYPE_UNIQUE_ID``.
        ssl: ``PP2_TYPE_SSL``.
    """

    version: int
    command: str
    family: str
    source: Address
    destination: Address
    tlvs: tuple[tuple[int, bytes], ...] = ()
    alpn: bytes | None = None
    authority: str | None = None
    unique_id: bytes | None = None
    ssl: ProxySSL | None = None

    @property
    def trusted_addresses(self) -> bool:
        """Whether :attr:`source` and :attr:`destination` replace the
        connection's own addresses: ``False`` for ``LOCAL`` and ``UNKNOWN``,
        where the spec says to keep the real ones."""
        return self.command == "PROXY" and self.family in ("TCP4", "TCP6", "UNIX")


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY protocol header (the message says why)."""


def parse_proxy_header(
    data: bytes, *, versions: str = "auto", max_size: int = 4096
) -> tuple[ProxyHeader, int] | None:
    """Parse the PROXY protocol header at the start of ``data``.

    The answer is decided by the bytes of the header alone: while this
    returns ``None`` every byte of ``data`` belongs to the header (a version
    1 line has no CRLF yet and is shorter than its limit; a version 2 header
    has fewer than 16 + its length bytes), so a reader may consume all of
    them and ask again with more. Once it returns ``(header, size)``, the
    bytes from ``size`` on are not the header's.

    Args:
        data: The connection's first bytes (any prefix of them).
        versions: ``"v1"``, ``"v2"`` or ``"auto"``: which versions are
            accepted; ``"auto"`` tells them apart by their first byte.
        max_size: Most bytes a header may have. A version 1 line is bounded
            by :data:`V1_MAX_SIZE` as well (by the smaller of the two).

    Returns:
        The header and the number of bytes of ``data`` it took, or ``None``
        while ``data`` is a proper prefix of a header that may still be
        valid.

    Raises:
        ProxyHeaderError: ``data`` cannot start a valid header of an accepted
            version, or the header would be larger than allowed.
        ValueError: ``versions`` is not one of the three.
    """
    if versions not in ("v1", "v2", "auto"):
        raise ValueError(f"versions must be 'v1', 'v2' or 'auto', not {versions!r}")
    data = bytes(data)
    looks_v1 = _V1_PREFIX.startswith(data[: len(_V1_PREFIX)])
    looks_v2 = V2_SIGNATURE.startswith(data[: len(V2_SIGNATURE)])
    if looks_v1 and versions != "v2":
        return _parse_v1(data, min(V1_MAX_SIZE, max_size))
    if looks_v2 and versions != "v1":
        return _parse_v2(data, max_size)
    if looks_v1 or looks_v2:
        found = "v1" if looks_v1 else "v2"
        raise ProxyHeaderError(f"a {found} PROXY header, but only {versions} is accepted")
    raise ProxyHeaderError(f"not a PROXY protocol header: starts with {data[:16]!r}")


def _parse_v1(data: bytes, limit: int) -> tuple[ProxyHeader, int] | None:
    end = data.find(b"\r")
    terminated = end != -1
    line = data[:end] if terminated else data
    if b"\n" in line:
        raise ProxyHeaderError("a v1 PROXY line may only end with CRLF, not a bare LF")
    if terminated and end + 1 < len(data) and data[end + 1] != 0x0A:
        raise ProxyHeaderError("a v1 PROXY line may only end with CRLF, not a bare CR")
    if len(line) + 2 > limit:
        raise ProxyHeaderError(f"no CRLF in the first {limit} bytes of a v1 PROXY line")
    # Latin-1 maps every byte to one character, so decoding cannot fail; the
    # field checks below admit only ASCII where ASCII is due.
    fields = _v1_fields(line.decode("latin-1"), terminated)
    if not terminated or end + 2 > len(data):
        return None
    if fields[1] == "UNKNOWN":
        return ProxyHeader(1, "PROXY", "UNKNOWN", None, None), end + 2
    ips = [_ip_text(ipaddress.ip_address(text)) for text in fields[2:4]]
    ports = [int(text) for text in fields[4:6]]
    return ProxyHeader(1, "PROXY", fields[1], (ips[0], ports[0]), (ips[1], ports[1])), end + 2


def _v1_fields(line: str, terminated: bool) -> list[str]:
    """Check the fields of a v1 line seen so far; the last one is still
    growing unless the line is ``terminated``. Returns the fields."""
    fields = line.split(" ")
    for index, field in enumerate(fields):
        growing = index == len(fields) - 1 and not terminated
        if index == 0:
            ok = field == "PROXY" or (growing and "PROXY".startswith(field))
        elif index == 1:
            ok = field in _V1_FAMILIES or (
                growing and any(name.startswith(field) for name in _V1_FAMILIES)
            )
            if field == "UNKNOWN" and not growing:
                # Section 2.1: "the receiver must ignore anything presented
                # before the CRLF" after UNKNOWN.
                return fields
        elif index in (2, 3):
            ok = _v1_address_ok(fields[1], field, growing)
        elif index in (4, 5):
            # Every prefix of a port without leading zeros is one too.
            ok = (growing and not field) or (
                _PORT_TEXT.fullmatch(field) is not None and int(field) <= 0xFFFF
            )
        else:
            raise ProxyHeaderError("a v1 PROXY line has too many fields")
        if not ok:
            raise ProxyHeaderError(f"malformed field {index + 1} of a v1 PROXY line: {field!r}")
    if terminated and len(fields) != 6:
        raise ProxyHeaderError("a v1 PROXY line has too few fields")
    return fields


def _v1_address_ok(family: str, text: str, growing: bool) -> bool:
    if family == "TCP4":
        if growing:
            # Appending digits never cures a leading zero or an octet above
            # 255, so a prefix is valid when its shortest completion is.
            parts = text.split(".")
            if len(parts) > 4:
                return False
            text = ".".join([*parts[:-1], parts[-1] or "0", *["0"] * (4 - len(parts))])
        if not _IPV4_TEXT.fullmatch(text):
            return False
        version = 4
    else:
        if growing:
            # Only the characters and length of a growing IPv6 address are
            # checked; the whole one is parsed once its field ends.
            return _IPV6_PARTIAL.fullmatch(text) is not None
        if not _IPV6_TEXT.fullmatch(text):
            return False
        version = 6
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False


def _parse_v2(data: bytes, max_size: int) -> tuple[ProxyHeader, int] | None:
    command = data[12] & 0xF if len(data) > 12 else _PROXY
    if len(data) > 12 and data[12] >> 4 != 2:
        raise ProxyHeaderError(f"unsupported PROXY protocol version {data[12] >> 4}")
    if command not in (_LOCAL, _PROXY):
        raise ProxyHeaderError(f"unknown v2 PROXY command {command}")
    if len(data) > 13 and data[13] not in _VALID_FAMILY_BYTES:
        raise ProxyHeaderError(f"unknown v2 family/protocol byte 0x{data[13]:02x}")
    # A datagram header describes a UDP or UNIX_DGRAM peer, which a stream
    # server has not got: believing its addresses would be spoofing.
    if len(data) > 13 and command == _PROXY and data[13] & 0xF == _DGRAM:
        raise ProxyHeaderError("a v2 PROXY header for a datagram protocol")
    if len(data) < _V2_FIXED:
        return None
    size = _V2_FIXED + int.from_bytes(data[14:16], "big")
    if size > max_size:
        raise ProxyHeaderError(f"a {size}-byte v2 PROXY header (at most {max_size} allowed)")
    family = data[13] >> 4
    if command == _PROXY and size < _V2_FIXED + _ADDRESS_SIZES[family]:
        raise ProxyHeaderError(f"a v2 header too short for its {_FAMILY_NAMES[family]} addresses")
    if len(data) < size:
        return None
    if command == _LOCAL:
        # Section 2.2: for LOCAL the receiver "must discard the protocol block
        # including the family", and HAProxy reads none of it either.
        return ProxyHeader(2, "LOCAL", "UNKNOWN", None, None), size
    return _v2_header(data[:size], family), size


def _v2_header(block: bytes, family: int) -> ProxyHeader:
    start = _V2_FIXED + _ADDRESS_SIZES[family]
    source, destination = _v2_addresses(family, block[_V2_FIXED:start])
    tlvs: list[tuple[int, bytes]] = []
    interpreted: dict[int, bytes] = {}
    for kind, offset, value in _split_tlvs(block, start, "TLV"):
        if kind in _SINGLE_TLVS:
            if kind in interpreted:
                raise ProxyHeaderError(f"TLV 0x{kind:02x} appears twice in a v2 PROXY header")
            interpreted[kind] = value
        if kind == _TYPE_CRC32C:
            _check_crc32c(block, offset, value)
        tlvs.append((kind, value))
    unique_id = interpreted.get(_TYPE_UNIQUE_ID)
    if unique_id is not None and len(unique_id) > _UNIQUE_ID_MAX:
        raise ProxyHeaderError(f"a {len(unique_id)}-byte unique ID (at most 128 allowed)")
    authority = interpreted.get(_TYPE_AUTHORITY)
    ssl = interpreted.get(_TYPE_SSL)
    return ProxyHeader(
        version=2,
        command="PROXY",
        family=_FAMILY_NAMES[family],
        source=source,
        destination=destination,
        tlvs=tuple(tlvs),
        alpn=interpreted.get(_TYPE_ALPN),
        authority=None if authority is None else _decode(authority, "utf-8", "authority TLV"),
        unique_id=unique_id,
        ssl=None if ssl is None else _parse_ssl(ssl),
    )


def _v2_addresses(family: int, raw: bytes) -> tuple[Address, Address]:
    if family in (1, 2):
        width = 4 if family == 1 else 16
        source, destination = raw[:width], raw[width : 2 * width]
        source_port, destination_port = struct.unpack("!HH", raw[2 * width :])
        return (
            (_ip_text(ipaddress.ip_address(source)), source_port),
            (_ip_text(ipaddress.ip_address(destination)), destination_port),
        )
    if family == 3:
        # NUL-padded, and decoded as Python decodes its own AF_UNIX sockets'
        # paths, so undecodable bytes survive as surrogates.
        paths = (field.split(b"\0", 1)[0] for field in (raw[:108], raw[108:]))
        source_path, destination_path = (path.decode("utf-8", "surrogateescape") for path in paths)
        return source_path, destination_path
    return None, None


def _ip_text(ip: _IPAddress) -> str:
    # Compressed, with a v4-mapped address as "::ffff:a.b.c.d" as inet_ntop
    # (and so a dual-stack socket's getpeername) writes it; str() does that
    # only from Python 3.13 on.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return ip.compressed


def _split_tlvs(block: bytes, start: int, what: str) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(type, offset of the value, value)`` of the TLVs that must
    exactly fill ``block[start:]``."""
    offset = start
    while offset < len(block):
        if offset + 3 > len(block):
            raise ProxyHeaderError(f"a truncated {what} at the end of a v2 PROXY header")
        kind = block[offset]
        value_start = offset + 3
        offset = value_start + int.from_bytes(block[offset + 1 : value_start], "big")
        if offset > len(block):
            raise ProxyHeaderError(f"{what} 0x{kind:02x} runs past the end of its block")
        yield kind, value_start, block[value_start:offset]


def _decode(value: bytes, encoding: str, what: str) -> str:
    try:
        return value.decode(encoding)
    except UnicodeDecodeError:
        raise ProxyHeaderError(f"the {what} is not valid {encoding}") from None


def _check_crc32c(block: bytes, offset: int, value: bytes) -> None:
    if len(value) != 4:
        raise ProxyHeaderError(f"a {len(value)}-byte CRC32C TLV (4 expected)")
    # Section 2.2.3: the checksum of the whole header with this field zeroed.
    zeroed = block[:offset] + bytes(4) + block[offset + 4 :]
    if _crc32c(zeroed) != int.from_bytes(value, "big"):
        raise ProxyHeaderError("the v2 PROXY header's CRC32C does not match")


def _parse_ssl(value: bytes) -> ProxySSL:
    if len(value) < 5:
        raise ProxyHeaderError(f"a {len(value)}-byte SSL TLV (at least 5 expected)")
    client, verify = struct.unpack("!BI", value[:5])
    found: dict[int, str] = {}
    for kind, _, sub_value in _split_tlvs(value, 5, "SSL sub-TLV"):
        if not _SSL_VERSION <= kind <= _SSL_KEY_ALG:
            continue  # an SSL detail the spec does not define: skipped like a TLV
        if kind in found:
            raise ProxyHeaderError(f"SSL sub-TLV 0x{kind:02x} appears twice")
        encoding = "utf-8" if kind == _SSL_CN else "ascii"
        found[kind] = _decode(sub_value, encoding, f"SSL sub-TLV 0x{kind:02x}")
    # The client bits, then the sub-types in the order of ProxySSL's fields.
    strings = [found.get(kind) for kind in range(_SSL_VERSION, _SSL_KEY_ALG + 1)]
    return ProxySSL(
        client & 0x01 != 0, client & 0x02 != 0, client & 0x04 != 0, verify == 0, *strings
    )


def _crc32c_entry(crc: int) -> int:
    # CRC-32C (Castagnoli, RFC 4960 appendix B), reflected polynomial.
    for _ in range(8):
        crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc


_CRC32C_TABLE = tuple(_crc32c_entry(byte) for byte in range(256))


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def encode_v1(source: tuple[str, int] | None, destination: tuple[str, int] | None) -> bytes:
    """Build a version 1 header line.

    Args:
        source: The client's ``(ip, port)``, or ``None`` with ``destination``
            ``None`` too for ``PROXY UNKNOWN``.
        destination: The ``(ip, port)`` it connected to.

    Returns:
        The line, CRLF included.

    Raises:
        ValueError: Only one address is given, they are of different IP
            versions, or one is malformed.
    """
    if source is None and destination is None:
        return b"PROXY UNKNOWN\r\n"
    src, dst, src_port, dst_port = _ip_pair(source, destination)
    line = f"PROXY TCP{src.version} {_ip_text(src)} {_ip_text(dst)} {src_port} {dst_port}\r\n"
    return line.encode("ascii")


def encode_v2(
    source: Address = None,
    destination: Address = None,
    *,
    command: str = "PROXY",
    tlvs: Sequence[tuple[int, bytes]] = (),
    unix: bool = False,
    crc32c: bool = False,
) -> bytes:
    """Build a version 2 header.

    Args:
        source: The client's ``(ip, port)`` (or path, with ``unix``), or
            ``None`` with ``destination`` ``None`` too for ``AF_UNSPEC``.
        destination: The address it connected to, alike.
        command: ``"PROXY"``, or ``"LOCAL"`` (which carries no addresses).
        tlvs: ``(type, value)`` records to append, in order.
        unix: The addresses are AF_UNIX paths (at most 108 bytes each).
        crc32c: Append a ``PP2_TYPE_CRC32C`` TLV holding the checksum.

    Returns:
        The header.

    Raises:
        ValueError: The arguments do not make a valid header (see above), or
            it would be longer than the 16-bit length field allows.
    """
    if command not in ("PROXY", "LOCAL"):
        raise ValueError(f"command must be 'PROXY' or 'LOCAL', not {command!r}")
    if command == "LOCAL" and (source is not None or destination is not None):
        raise ValueError("a LOCAL header carries no addresses")
    addresses = b""
    family_byte = 0x00
    if unix:
        if not isinstance(source, str) or not isinstance(destination, str):
            raise ValueError("unix=True takes two paths")
        paths = [path.encode("utf-8", "surrogateescape") for path in (source, destination)]
        if any(len(path) > 108 or b"\0" in path for path in paths):
            raise ValueError("a UNIX path in a v2 header is at most 108 bytes, without NULs")
        addresses, family_byte = b"".join(path.ljust(108, b"\0") for path in paths), 0x31
    elif source is not None or destination is not None:
        if isinstance(source, str) or isinstance(destination, str):
            raise ValueError("paths need unix=True")
        src, dst, src_port, dst_port = _ip_pair(source, destination)
        addresses = src.packed + dst.packed + struct.pack("!HH", src_port, dst_port)
        family_byte = 0x11 if src.version == 4 else 0x21
    records = [*tlvs, (_TYPE_CRC32C, bytes(4))] if crc32c else list(tlvs)
    size = len(addresses) + sum(3 + len(value) for _, value in records)
    if size > 0xFFFF or not all(0 <= kind <= 0xFF for kind, _ in records):
        raise ValueError("a v2 header holds 65535 bytes after its first 16, TLV types 0-255")
    body = addresses + b"".join(struct.pack("!BH", kind, len(v)) + v for kind, v in records)
    ver_cmd = 0x21 if command == "PROXY" else 0x20
    header = V2_SIGNATURE + struct.pack("!BBH", ver_cmd, family_byte, len(body)) + body
    if crc32c:
        header = header[:-4] + _crc32c(header).to_bytes(4, "big")
    return header


def _ip_pair(
    source: tuple[str, int] | None, destination: tuple[str, int] | None
) -> tuple[_IPAddress, _IPAddress, int, int]:
    """Check two ``(ip, port)`` of one IP version, for the encoders."""
    if source is None or destination is None:
        raise ValueError("give both addresses or neither")
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("the two addresses are of different IP versions")
    if not (0 <= source[1] <= 0xFFFF and 0 <= destination[1] <= 0xFFFF):
        raise ValueError("a port is out of range")
    return src, dst, source[1], destination[1]
