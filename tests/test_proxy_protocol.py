"""The sans-IO PROXY protocol parser and encoder (trionet._proxy._protocol).

Checked against HAProxy's ``doc/proxy-protocol.txt``: its examples and byte
layouts (v2 headers are built here byte by byte, not with the encoder), every
refusal the parser promises, the incremental contract the server's reader
relies on, and the ``proxy-protocol`` package from PyPI as an oracle.
"""

from __future__ import annotations

import ast
import ipaddress
import socket
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxyprotocol.result import (
    ProxyResult,
    ProxyResultIPv4,
    ProxyResultIPv6,
    ProxyResultLocal,
    ProxyResultType,
    ProxyResultUnix,
    ProxyResultUnknown,
)
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

from trionet._proxy import (
    V1_MAX_SIZE,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    ProxySSL,
    encode_v1,
    encode_v2,
    parse_proxy_header,
)
from trionet._proxy import _protocol as protocol_module
from trionet._proxy._protocol import _crc32c

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Section 2.2, written out as the spec lists it.
SPEC_SIGNATURE = bytes([0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A])
PROXY_V2, LOCAL_V2 = 0x21, 0x20  # version 2 in the high nibble, the command in the low one
TCP4, UDP4, TCP6, UDP6, UNIX_STREAM, UNIX_DGRAM, UNSPEC = 0x11, 0x12, 0x21, 0x22, 0x31, 0x32, 0x00


def v2(ver_cmd: int, fam: int, body: bytes, *, length: int | None = None) -> bytes:
    """A v2 header from the spec's ``struct proxy_hdr_v2``: signature, ver_cmd,
    fam, a big-endian length (that of ``body`` unless given), then ``body``."""
    size = len(body) if length is None else length
    return SPEC_SIGNATURE + bytes([ver_cmd, fam, size >> 8, size & 0xFF]) + body


def tlv(kind: int, value: bytes) -> bytes:
    """The spec's ``struct pp2_tlv``: type, length_hi, length_lo, value."""
    return bytes([kind, len(value) >> 8, len(value) & 0xFF]) + value


def ipv4_block(src: str, dst: str, sport: int, dport: int) -> bytes:
    """The spec's ``ipv4_addr``: both addresses, then both ports, big-endian."""
    return (
        ipaddress.IPv4Address(src).packed
        + ipaddress.IPv4Address(dst).packed
        + bytes([sport >> 8, sport & 0xFF, dport >> 8, dport & 0xFF])
    )


def with_crc(header_without_crc: bytes) -> bytes:
    """Append a PP2_TYPE_CRC32C TLV (fixing the length field), then fill it in
    as section 2.2.3 says: checksum of the header with the field zeroed."""
    length = int.from_bytes(header_without_crc[14:16], "big") + 7
    zeroed = header_without_crc[:14] + length.to_bytes(2, "big")
    zeroed += header_without_crc[16:] + tlv(0x03, bytes(4))
    return zeroed[:-4] + _crc32c(zeroed).to_bytes(4, "big")


def parse(data: bytes, **kwargs: object) -> ProxyHeader:
    """Parse a complete header that must take all of ``data``."""
    result = parse_proxy_header(data, **kwargs)  # type: ignore[arg-type]
    assert result is not None
    header, size = result
    assert size == len(data)
    return header


def refused(data: bytes, match: str, **kwargs: object) -> None:
    with pytest.raises(ProxyHeaderError, match=match):
        parse_proxy_header(data, **kwargs)  # type: ignore[arg-type]


def test_sans_io() -> None:
    # Bytes in, results out: the module imports nothing that does I/O.
    tree = ast.parse(Path(protocol_module.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {
        "__future__",
        "ipaddress",
        "re",
        "struct",
        "collections.abc",
        "dataclasses",
        "typing",
    }


# -- the spec's own examples -------------------------------------------------


def test_signature_is_the_specs() -> None:
    assert V2_SIGNATURE == SPEC_SIGNATURE
    assert V2_SIGNATURE[4] == 0  # "contains a null byte at the 5th position"


def test_v1_example_before_an_http_request() -> None:
    line = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    request = b"GET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n"
    assert parse_proxy_header(line + request) == (
        ProxyHeader(1, "PROXY", "TCP4", ("192.168.0.1", 56324), ("192.168.0.11", 443)),
        len(line),
    )


SIX = ":".join(["ffff"] * 8)


@pytest.mark.parametrize(
    ("line", "length", "family"),
    [
        (b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", 56, "TCP4"),
        (f"PROXY TCP6 {SIX} {SIX} 65535 65535\r\n".encode(), 104, "TCP6"),
        (b"PROXY UNKNOWN\r\n", 15, "UNKNOWN"),
        (f"PROXY UNKNOWN {SIX} {SIX} 65535 65535\r\n".encode(), 107, "UNKNOWN"),
    ],
)
def test_v1_maximum_line_lengths(line: bytes, length: int, family: str) -> None:
    # Section 2.1's table: TCP4 56, TCP6 104, UNKNOWN 15, worst case 107.
    assert len(line) == length
    header = parse(line)
    assert header.family == family
    assert header.trusted_addresses == (family != "UNKNOWN")


def test_v1_worst_case_is_the_limit() -> None:
    worst = f"PROXY UNKNOWN {SIX} {SIX} 65535 65535\r\n".encode()
    assert len(worst) == V1_MAX_SIZE == 107
    refused(worst[:-2] + b"0\r\n", "no CRLF in the first 107 bytes")
    # Refused as soon as the CRLF can no longer fit, not when it fails to come.
    refused(worst[:-2] + b"0", "no CRLF")
    assert parse_proxy_header(worst[:-2]) is None
    assert parse_proxy_header(worst[:-1]) is None


def test_v1_unknown_ignores_the_rest_of_the_line() -> None:
    assert parse(b"PROXY UNKNOWN\r\n") == ProxyHeader(1, "PROXY", "UNKNOWN", None, None)
    header = parse(b"PROXY UNKNOWN whatever \x00\xff follows 1 2 3\r\n")
    assert header == ProxyHeader(1, "PROXY", "UNKNOWN", None, None)
    assert not header.trusted_addresses


def test_v1_addresses_are_normalized() -> None:
    header = parse(b"PROXY TCP6 2001:DB8:0:0::1 ::FFFF:192.0.2.1 0 65535\r\n")
    assert header.source == ("2001:db8::1", 0)
    assert header.destination == ("::ffff:192.0.2.1", 65535)


def test_v2_tcp4_layout() -> None:
    data = v2(PROXY_V2, TCP4, ipv4_block("192.168.0.1", "192.168.0.11", 56324, 443))
    assert len(data) == 16 + 12  # "Address length is 2*4 + 2*2 = 12 bytes"
    header = parse(data)
    assert parse_proxy_header(data + b"GET / HTTP/1.1\r\n", versions="v2") == (header, len(data))
    assert header == ProxyHeader(2, "PROXY", "TCP4", ("192.168.0.1", 56324), ("192.168.0.11", 443))
    assert header.trusted_addresses


def test_v2_tcp6_layout() -> None:
    src = ipaddress.IPv6Address("2001:db8::1").packed
    dst = ipaddress.IPv6Address("::ffff:10.0.0.1").packed
    data = v2(PROXY_V2, TCP6, src + dst + b"\x00\x50\xff\xff")
    assert len(data) == 16 + 36  # "2*16 + 2*2 = 36 bytes"
    header = parse(data)
    assert header.family == "TCP6"
    assert header.source == ("2001:db8::1", 80)
    assert header.destination == ("::ffff:10.0.0.1", 65535)


def test_v2_unix_layout() -> None:
    src = b"/run/client.sock".ljust(108, b"\x00")
    dst = b"/run/server.sock\x00garbage after the NUL".ljust(108, b"\x00")
    data = v2(PROXY_V2, UNIX_STREAM, src + dst)
    assert len(data) == 16 + 216  # "2*108 = 216 bytes"
    header = parse(data)
    assert header == ProxyHeader(2, "PROXY", "UNIX", "/run/client.sock", "/run/server.sock")
    assert header.trusted_addresses


def test_v2_unix_path_may_fill_its_field() -> None:
    path = "/" + "p" * 107
    header = parse(v2(PROXY_V2, UNIX_STREAM, path.encode() * 2))
    assert header.source == header.destination == path


def test_v2_local_ignores_its_block() -> None:
    # Section 2.2: LOCAL "must discard the protocol block including the
    # family", and "must not assume zero is presented for LOCAL".
    assert parse(v2(LOCAL_V2, UNSPEC, b"")) == ProxyHeader(2, "LOCAL", "UNKNOWN", None, None)
    for fam in (TCP4, TCP6, UNIX_STREAM, UDP4, UNIX_DGRAM):
        for body in (b"", b"\xff" * 5, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2) + b"junk"):
            data = v2(LOCAL_V2, fam, body)
            result = parse_proxy_header(data + b"next")
            assert result == (ProxyHeader(2, "LOCAL", "UNKNOWN", None, None), len(data))
            assert not result[0].trusted_addresses


def test_v2_unspec_proxy() -> None:
    header = parse(v2(PROXY_V2, UNSPEC, tlv(0x05, b"id")))
    assert header == ProxyHeader(2, "PROXY", "UNKNOWN", None, None, ((5, b"id"),), unique_id=b"id")
    assert not header.trusted_addresses


def test_v2_tlvs() -> None:
    ssl = (
        bytes([0x01 | 0x02, 0, 0, 0, 0])  # client: PP2_CLIENT_SSL | CERT_CONN; verify 0
        + tlv(0x21, b"TLSv1.3")
        + tlv(0x22, "bücher.example".encode())
        + tlv(0x23, b"ECDHE-RSA-AES128-GCM-SHA256")
        + tlv(0x24, b"RSA-SHA256")
        + tlv(0x25, b"RSA2048")
        + tlv(0x2F, b"an undefined sub-TLV, skipped")
    )
    records = [
        (0x01, b"h2"),
        (0x04, b""),  # NOOP, empty
        (0x02, "bücher.example".encode()),
        (0x04, b"\x00\x00\x00"),  # NOOP again: padding may repeat
        (0x05, b"u" * 128),
        (0x20, ssl),
        (0x30, b"netns"),
        (0xE0, b"custom"),
        (0xE0, b"custom, again"),
    ]
    block = ipv4_block("1.2.3.4", "5.6.7.8", 1, 2)
    header = parse(v2(PROXY_V2, TCP4, block + b"".join(tlv(k, v) for k, v in records)))
    assert header.tlvs == tuple(records)
    assert header.alpn == b"h2"
    assert header.authority == "bücher.example"
    assert header.unique_id == b"u" * 128
    assert header.ssl == ProxySSL(
        client_ssl=True,
        client_cert_connection=True,
        client_cert_session=False,
        verified=True,
        version="TLSv1.3",
        common_name="bücher.example",
        cipher="ECDHE-RSA-AES128-GCM-SHA256",
        signature_algorithm="RSA-SHA256",
        key_algorithm="RSA2048",
    )


def test_v2_ssl_minimal_and_unverified() -> None:
    block = ipv4_block("1.2.3.4", "5.6.7.8", 1, 2)
    header = parse(v2(PROXY_V2, TCP4, block + tlv(0x20, bytes([0x04, 0, 0, 0, 1]))))
    assert header.ssl == ProxySSL(False, False, True, False)


def test_crc32c_known_answers() -> None:
    # The CRC-32C check value, and RFC 3720 appendix B.4's test vectors.
    assert _crc32c(b"123456789") == 0xE3069283
    assert _crc32c(bytes(32)) == 0x8A9136AA
    assert _crc32c(b"\xff" * 32) == 0x62A8AB43
    assert _crc32c(bytes(range(32))) == 0x46DD794E
    assert _crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


def test_v2_crc32c_verified() -> None:
    plain = v2(PROXY_V2, TCP4, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2) + tlv(0x01, b"h2"))
    data = with_crc(plain)
    header = parse(data)
    assert header.tlvs[-1] == (0x03, data[-4:])
    # The checksum covers every byte of the header, the length field included
    # (a longer length makes the header incomplete instead: None), up to the
    # CRC32C TLV itself (a different type byte makes it another TLV).
    for index in range(len(data) - 7):
        corrupt = bytearray(data)
        corrupt[index] ^= 0x40
        try:
            assert parse_proxy_header(bytes(corrupt)) is None
        except ProxyHeaderError:
            pass
    refused(data[:-1] + bytes([data[-1] ^ 1]), "CRC32C does not match")
    # Anywhere among the TLVs, not only last.
    moved = with_crc(v2(PROXY_V2, UNSPEC, b""))
    moved = moved[:14] + (len(moved) - 16 + 5).to_bytes(2, "big") + moved[16:] + tlv(0x01, b"h2")
    refused(moved, "CRC32C does not match")
    zeroed = moved[:16] + tlv(0x03, bytes(4)) + tlv(0x01, b"h2")
    fixed = moved[:19] + _crc32c(zeroed).to_bytes(4, "big") + moved[23:]
    assert parse(fixed).alpn == b"h2"


def test_encoder_crc32c_is_verified() -> None:
    data = encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), tlvs=[(0x01, b"h2")], crc32c=True)
    assert data[-7:-4] == tlv(0x03, b"")[:1] + b"\x00\x04"
    assert parse(data).alpn == b"h2"
    refused(data[:16] + bytes([data[16] ^ 1]) + data[17:], "CRC32C does not match")


# -- refusals -----------------------------------------------------------------

V1_REFUSALS = [
    (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "field 2"),
    (b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", "field 2"),
    (b"PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "field 2"),
    (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "field 3"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n", "field 6"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "too many fields"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "too few fields"),
    (b"PROXY TCP4\r\n", "too few fields"),
    (b"PROXY\r\n", "not a PROXY protocol header"),
    (b"PROXY \r\n", "field 2"),
    (b"PROXY UNKNOWNX\r\n", "field 2"),
    (b"PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"),
    (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "field 3"),
    (b"PROXY TCP4 1.2.3.004 5.6.7.8 1 2\r\n", "field 3"),
    (b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "field 3"),
    (b"PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "field 3"),
    (b"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", "field 3"),
    (b"PROXY TCP4 1.2.3.4/8 5.6.7.8 1 2\r\n", "field 3"),
    (b"PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n", "field 3"),
    (b"PROXY TCP4 1..2.3 5.6.7.8 1 2\r\n", "field 3"),
    ("PROXY TCP4 １.2.3.4 5.6.7.8 1 2\r\n".encode(), "field 3"),
    (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "field 3"),  # TCP4 with IPv6
    (b"PROXY TCP4 1.2.3.4 ::ffff:5.6.7.8 1 2\r\n", "field 4"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "field 3"),  # TCP6 with IPv4
    (b"PROXY TCP6 ::1 5.6.7.8 1 2\r\n", "field 4"),
    (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", "field 3"),
    (b"PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", "field 3"),
    (b"PROXY TCP6 1:::2 ::1 1 2\r\n", "field 3"),
    (b"PROXY TCP6 12345::1 ::1 1 2\r\n", "field 3"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "field 5"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n", "field 5"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n", "field 5"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "field 5"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "field 5"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n", "field 6"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 0x2\r\n", "field 6"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 1_0\r\n", "field 6"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "bare LF"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r\n", "bare LF"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n", "bare CR"),
    (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "bare CR"),
    (b"PROXY UNKNOWN a\nb\r\n", "bare LF"),
    (b"PROXY UNKNOWN a\rb\r\n", "bare CR"),
    (b"PROXY UNKNOWN " + b"x" * 93, "no CRLF in the first 107"),
    (b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"),
    (b"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"),
]


@pytest.mark.parametrize(("data", "match"), V1_REFUSALS)
def test_v1_refusals(data: bytes, match: str) -> None:
    refused(data, match)
    # Refused as soon as the bytes show it, however they are split later on.
    for size in range(len(data)):
        try:
            assert parse_proxy_header(data[:size]) is None
        except ProxyHeaderError:
            break


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"PROXY X", "refused"),
        (b"PROXY TCP4 0", None),  # "0" may be a whole first octet ...
        (b"PROXY TCP4 01", "refused"),  # ... but no octet starts with a zero
        (b"PROXY TCP4 1.2.3.4.", "refused"),
        (b"PROXY TCP4 300", "refused"),
        (b"PROXY TCP4 1.2.3.4 ", None),
        (b"PROXY TCP4 1.2.3.4 ::", "refused"),
        (b"PROXY TCP6 ::ffff:1.2.", None),
        (b"PROXY TCP6 g", "refused"),
        (b"PROXY TCP6 ::1 ::2 ", None),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 0", None),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 00", "refused"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 70000", "refused"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 ", "refused"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", None),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r", "refused"),  # a CR ends the last field
        (b"PROXY UNKNOWN", None),
        (b"PROXY UNKNOWN\r", None),
        (b"PROXY UNKNOWNX", "refused"),
        (b"G", "refused"),
        (b"\x16\x03\x01", "refused"),  # a TLS ClientHello
    ],
)
def test_refused_without_waiting_for_the_end(data: bytes, verdict: str | None) -> None:
    if verdict is None:
        assert parse_proxy_header(data) is None
    else:
        with pytest.raises(ProxyHeaderError):
            parse_proxy_header(data)


def v2_tcp4(tail: bytes = b"", ver_cmd: int = PROXY_V2, fam: int = TCP4) -> bytes:
    return v2(ver_cmd, fam, ipv4_block("1.2.3.4", "5.6.7.8", 1, 2) + tail)


def ssl(body: bytes) -> bytes:
    return v2_tcp4(tlv(0x20, body))


V2_REFUSALS = [
    (b"\r\n\r\n\x00\r\nQUIX\n", "not a PROXY protocol header"),
    (b"\r\n\r\n\x01", "not a PROXY protocol header"),
    (v2_tcp4(ver_cmd=0x11), "version 1"),
    (v2_tcp4(ver_cmd=0x31), "version 3"),
    (v2_tcp4(ver_cmd=0x01), "version 0"),
    (v2_tcp4(ver_cmd=0x22), "command 2"),
    (v2_tcp4(ver_cmd=0x2F), "command 15"),
    (v2_tcp4(fam=UDP4), "datagram"),
    (v2(PROXY_V2, UDP6, bytes(36)), "datagram"),
    (v2(PROXY_V2, UNIX_DGRAM, bytes(216)), "datagram"),
    (v2_tcp4(fam=0x13), "family/protocol byte 0x13"),
    (v2_tcp4(fam=0x41), "family/protocol byte 0x41"),
    (v2_tcp4(fam=0x10), "family/protocol byte 0x10"),  # INET without a protocol
    (v2_tcp4(fam=0x01), "family/protocol byte 0x01"),  # a protocol without a family
    (v2(PROXY_V2, TCP4, bytes(11)), "too short for its TCP4"),
    (v2(PROXY_V2, TCP6, bytes(35)), "too short for its TCP6"),
    (v2(PROXY_V2, UNIX_STREAM, bytes(215)), "too short for its UNIX"),
    (v2_tcp4(b"\x01"), "truncated TLV"),
    (v2_tcp4(b"\x01\x00"), "truncated TLV"),
    (v2_tcp4(tlv(0x01, b"h2")[:-1]), "runs past"),
    (v2_tcp4(tlv(0x01, b"h2") + b"\x04\x00\x01"), "runs past"),
    (v2_tcp4(tlv(0x03, b"\x00\x00\x00")), "3-byte CRC32C"),
    (v2_tcp4(tlv(0x03, bytes(4))), "CRC32C does not match"),
    (v2_tcp4(tlv(0x02, b"\xff\xfe")), "authority TLV is not valid utf-8"),
    (v2_tcp4(tlv(0x05, b"u" * 129)), "129-byte unique ID"),
    (v2_tcp4(tlv(0x01, b"h2") + tlv(0x01, b"h2")), "0x01 appears twice"),
    (v2_tcp4(tlv(0x02, b"a") + tlv(0x02, b"b")), "0x02 appears twice"),
    (v2_tcp4(tlv(0x05, b"a") + tlv(0x05, b"a")), "0x05 appears twice"),
    (ssl(b"\x01\x00\x00\x00"), "4-byte SSL TLV"),
    (ssl(bytes(5) + b"\x21\x00"), "truncated SSL sub-TLV"),
    (ssl(bytes(5) + tlv(0x21, b"TLSv1.3")[:-1]), "runs past"),
    (ssl(bytes(5) + tlv(0x21, b"TLSv1.3") + tlv(0x21, b"TLSv1.2")), "appears twice"),
    (ssl(bytes(5) + tlv(0x21, "TLSv1·3".encode())), "not valid ascii"),
    (ssl(bytes(5) + tlv(0x23, b"\x80")), "not valid ascii"),
    (ssl(bytes(5) + tlv(0x22, b"\xc3")), "not valid utf-8"),
    (v2_tcp4(tlv(0x20, bytes(5)) + tlv(0x20, bytes(5))), "0x20 appears twice"),
]


@pytest.mark.parametrize(("data", "match"), V2_REFUSALS)
def test_v2_refusals(data: bytes, match: str) -> None:
    refused(data, match)


def test_v2_refused_as_soon_as_the_bytes_show_it() -> None:
    assert parse_proxy_header(V2_SIGNATURE) is None
    refused(V2_SIGNATURE + b"\x11", "version 1")
    refused(V2_SIGNATURE + b"\x23", "command 3")
    refused(V2_SIGNATURE + b"\x21\x12", "datagram")
    refused(V2_SIGNATURE + b"\x21\x44", "family")
    # The length is judged before the rest arrives.
    refused(V2_SIGNATURE + b"\x21\x11\x00\x0b", "too short")
    refused(V2_SIGNATURE + b"\x21\x11\x13\x88", "5016-byte v2 PROXY header")


def test_v2_length_field_decides_the_size() -> None:
    # Section 2.2: "the length of the protocol header in bytes is always
    # exactly 16 + this value", whatever the family would need.
    block = ipv4_block("1.2.3.4", "5.6.7.8", 1, 2)
    assert parse_proxy_header(v2(PROXY_V2, TCP4, block, length=15)) is None
    assert parse_proxy_header(v2(PROXY_V2, TCP4, block + b"\x04\x00", length=15)) is None
    data = v2(PROXY_V2, TCP4, block + tlv(0x04, b""), length=15)
    assert parse_proxy_header(data + b"after") == (parse(data), 16 + 15)
    local = v2(LOCAL_V2, UNSPEC, b"", length=0)
    assert parse_proxy_header(local + b"\x00" * 20) == (parse(local), 16)


def test_max_size() -> None:
    data = v2_tcp4(tlv(0xE0, bytes(100)))
    assert parse(data, max_size=len(data)).tlvs == ((0xE0, bytes(100)),)
    refused(data[:16], f"{len(data)}-byte", max_size=len(data) - 1)
    big = v2(PROXY_V2, UNSPEC, tlv(0xE0, bytes(65532)))
    assert len(big) == 16 + 65535
    assert parse(big, max_size=len(big)).tlvs[0][0] == 0xE0
    refused(big[:16], "65551-byte")
    # A version 1 line is bounded by the smaller of max_size and 107.
    line = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n"
    assert parse(line, max_size=4096) == parse(line, max_size=56)
    refused(line, "no CRLF in the first 55 bytes", max_size=55)


def test_v2_local_with_datagram_family_is_accepted() -> None:
    # The family of a LOCAL header is ignored (section 2.2), so the datagram
    # refusal, which guards addresses the server would believe, spares it.
    header = parse(v2(LOCAL_V2, UDP4, bytes(12)))
    assert header.command == "LOCAL"


@pytest.mark.parametrize(
    ("data", "versions", "match"),
    [
        (b"PROXY UNKNOWN\r\n", "v2", "v1 PROXY header, but only v2"),
        (b"P", "v2", "v1 PROXY header, but only v2"),
        (v2(LOCAL_V2, UNSPEC, b""), "v1", "v2 PROXY header, but only v1"),
        (b"\r", "v1", "v2 PROXY header, but only v1"),
        (b"GET / HTTP/1.1\r\n", "auto", "not a PROXY protocol header"),
        (b"\x16\x03\x01\x02\x00", "v1", "not a PROXY protocol header"),
        (b"\r\n\r\n\x00\r\nQ\x00", "auto", "not a PROXY protocol header"),
        (b"PROXY\x00", "auto", "not a PROXY protocol header"),
    ],
)
def test_versions(data: bytes, versions: str, match: str) -> None:
    refused(data, match, versions=versions)


def test_versions_accept_their_own() -> None:
    line, binary = b"PROXY UNKNOWN\r\n", v2(LOCAL_V2, UNSPEC, b"")
    assert parse(line, versions="v1").version == parse(line, versions="auto").version == 1
    assert parse(binary, versions="v2").version == parse(binary, versions="auto").version == 2
    for versions in ("v1", "v2", "auto"):
        assert parse_proxy_header(b"", versions=versions) is None
    with pytest.raises(ValueError, match="versions must be"):
        parse_proxy_header(line, versions="v3")


# -- encoders -----------------------------------------------------------------


def test_encoders() -> None:
    assert encode_v1(None, None) == b"PROXY UNKNOWN\r\n"
    assert encode_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == (
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
    )
    assert encode_v1(("2001:DB8::0:1", 1), ("::1", 2)) == b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n"
    assert encode_v2(command="LOCAL") == v2(LOCAL_V2, UNSPEC, b"")
    assert encode_v2() == v2(PROXY_V2, UNSPEC, b"")
    assert encode_v2(("192.168.0.1", 56324), ("192.168.0.11", 443), tlvs=[(1, b"h2")]) == v2(
        PROXY_V2, TCP4, ipv4_block("192.168.0.1", "192.168.0.11", 56324, 443) + tlv(1, b"h2")
    )
    unix = encode_v2("/a", "/b", unix=True)
    assert unix == v2(PROXY_V2, UNIX_STREAM, b"/a".ljust(108, b"\0") + b"/b".ljust(108, b"\0"))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: encode_v1(("1.2.3.4", 1), None), "both"),
        (lambda: encode_v1(("1.2.3.4", 1), ("::1", 2)), "different IP versions"),
        (lambda: encode_v1(("1.2.3.4", 65536), ("5.6.7.8", 2)), "port"),
        (lambda: encode_v1(("1.2.3", 1), ("5.6.7.8", 2)), "does not appear"),
        (lambda: encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), command="LOCAL"), "LOCAL"),
        (lambda: encode_v2(command="HEALTH"), "command"),
        (lambda: encode_v2("/a", "/b"), "unix=True"),
        (lambda: encode_v2(("1.2.3.4", 1), ("5.6.7.8", 2), unix=True), "two paths"),
        (lambda: encode_v2("/" * 109, "/b", unix=True), "108 bytes"),
        (lambda: encode_v2("/a\0b", "/b", unix=True), "NUL"),
        (lambda: encode_v2(tlvs=[(0xE0, bytes(65533))]), "65535"),
        (lambda: encode_v2(tlvs=[(0xE0, bytes(65536))]), "65535"),
        (lambda: encode_v2(tlvs=[(0x100, b"")]), "TLV types"),
    ],
)
def test_encoder_refusals(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


# -- round trips, splits, and the incremental contract -------------------------

ports = st.integers(0, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.one_of(
    st.ip_addresses(v=6).map(str),
    st.ip_addresses(v=4).map(lambda ip: f"::ffff:{ip}"),  # v4-mapped
)
endpoints = st.one_of(
    st.tuples(st.tuples(ipv4, ports), st.tuples(ipv4, ports)),
    st.tuples(st.tuples(ipv6, ports), st.tuples(ipv6, ports)),
)
# Types the parser passes through without interpreting (NOOP among them).
plain_tlvs = st.lists(
    st.tuples(
        st.sampled_from([0x04, 0x30, 0x06, 0x21, 0xE0, 0xEF, 0xF0, 0xFF]),
        st.binary(max_size=40),
    ),
    max_size=5,
)
paths = st.text(string.ascii_letters + string.digits + "/._-", min_size=1, max_size=108)


def v1_headers() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.just(b"PROXY UNKNOWN\r\n"),
        st.text(string.printable.strip("\r\n\x0b\x0c"), max_size=80).map(
            lambda tail: f"PROXY UNKNOWN {tail}\r\n".encode()
        ),
        endpoints.map(lambda pair: encode_v1(*pair)),
    )


def v2_headers() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.builds(
            lambda pair, tlvs, crc: encode_v2(*pair, tlvs=tlvs, crc32c=crc),
            endpoints,
            plain_tlvs,
            st.booleans(),
        ),
        st.builds(
            lambda src, dst, tlvs: encode_v2(src, dst, tlvs=tlvs, unix=True),
            paths,
            paths,
            plain_tlvs,
        ),
        st.builds(lambda tlvs: encode_v2(tlvs=tlvs), plain_tlvs),
        st.builds(lambda tlvs: encode_v2(command="LOCAL", tlvs=tlvs), plain_tlvs),
    )


headers = st.one_of(v1_headers(), v2_headers())


def canonical(address: tuple[str, int]) -> tuple[str, int]:
    """How the parser writes an IP: compressed, and a v4-mapped IPv6 address
    the way inet_ntop writes it (whatever this Python's str() does)."""
    ip = ipaddress.ip_address(address[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return f"::ffff:{ip.ipv4_mapped}", address[1]
    return ip.compressed, address[1]


@FUZZ
@given(endpoints)
def test_v1_round_trip(pair: tuple[tuple[str, int], tuple[str, int]]) -> None:
    header = parse(encode_v1(*pair), versions="v1")
    assert (header.version, header.command) == (1, "PROXY")
    assert header.family == f"TCP{ipaddress.ip_address(pair[0][0]).version}"
    assert (header.source, header.destination) == (canonical(pair[0]), canonical(pair[1]))


@FUZZ
@given(endpoints, plain_tlvs, st.booleans())
def test_v2_round_trip(
    pair: tuple[tuple[str, int], tuple[str, int]], tlvs: list[tuple[int, bytes]], crc: bool
) -> None:
    header = parse(encode_v2(*pair, tlvs=tlvs, crc32c=crc), versions="v2")
    assert (header.version, header.command) == (2, "PROXY")
    assert (header.source, header.destination) == (canonical(pair[0]), canonical(pair[1]))
    assert header.tlvs[: len(tlvs)] == tuple(tlvs)
    assert len(header.tlvs) == len(tlvs) + crc


@FUZZ
@given(paths, paths)
def test_v2_unix_round_trip(source: str, destination: str) -> None:
    header = parse(encode_v2(source, destination, unix=True))
    assert (header.family, header.source, header.destination) == ("UNIX", source, destination)


@FUZZ
@given(headers, st.binary(max_size=30), st.data())
def test_split_anywhere(data: bytes, after: bytes, draw: st.DataObject) -> None:
    # The reader's contract: None exactly while every byte seen is the
    # header's; then the header and its size, whatever follows it.
    expected = parse(data)
    stream = data + after
    cuts = sorted(draw.draw(st.sets(st.integers(0, len(stream)), max_size=8)))
    for cut in [*cuts, len(stream)]:
        result = parse_proxy_header(stream[:cut])
        if cut < len(data):
            assert result is None
        else:
            assert result == (expected, len(data))


@pytest.mark.parametrize(
    "data",
    [
        b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
        f"PROXY TCP6 {SIX} ::ffff:1.2.3.4 0 65535\r\n".encode(),
        b"PROXY UNKNOWN ignored\r\n",
        v2_tcp4(tlv(0x20, b"\x07\x00\x00\x00\x00" + tlv(0x22, b"cn")) + tlv(0x04, b"")),
        with_crc(v2(PROXY_V2, TCP6, bytes(36))),
        v2(PROXY_V2, UNIX_STREAM, bytes(216)),
        v2(LOCAL_V2, UDP4, b"anything"),
    ],
)
def test_every_prefix_and_every_next_byte(data: bytes) -> None:
    for size in range(len(data)):
        prefix = data[:size]
        assert parse_proxy_header(prefix) is None, prefix
        for byte in range(256):
            try:
                result = parse_proxy_header(prefix + bytes([byte]))
            except ProxyHeaderError:
                continue
            # The prefix was all header, so a header can only end at the
            # new byte (not always the original's: it may be a length byte).
            assert result is None or result[1] == size + 1


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    check_any(data)


@FUZZ
@given(st.sampled_from([b"PROXY ", V2_SIGNATURE + b"\x21", V2_SIGNATURE]), st.binary(max_size=300))
def test_random_bytes_after_a_signature(start: bytes, data: bytes) -> None:
    check_any(start + data)


@FUZZ
@given(headers, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1))
def test_mutated_headers(data: bytes, mutations: list[tuple[int, int]]) -> None:
    mutated = bytearray(data)
    for position, byte in mutations:
        mutated[position % len(mutated)] = byte
    for size in (len(mutated), len(mutated) // 2, 16, 12):
        check_any(bytes(mutated[:size]))


def check_any(data: bytes) -> None:
    """Any input: None, ProxyHeaderError or a header, and a header's verdict
    never depends on the bytes after it."""
    for versions in ("v1", "v2", "auto"):
        try:
            result = parse_proxy_header(data, versions=versions)
        except ProxyHeaderError:
            continue
        if result is not None:
            header, size = result
            assert 0 < size <= len(data)
            assert parse_proxy_header(data[:size], versions=versions) == result
            assert header.version in (1, 2)


# -- the oracle: the proxy-protocol package from PyPI ------------------------

ORACLE_FAMILIES = {
    ProxyResultType.IPv4: "TCP4",
    ProxyResultType.IPv6: "TCP6",
    ProxyResultType.UNIX: "UNIX",
    ProxyResultType.UNKNOWN: "UNKNOWN",
    ProxyResultType.LOCAL: "UNKNOWN",
}


def as_objects(value: object) -> object:
    """Compare IPs as ipaddress objects: the oracle's str() of a v4-mapped
    address depends on the Python version."""
    if isinstance(value, tuple):
        return (ipaddress.ip_address(value[0]), value[1])
    return value


def oracle_view(result: ProxyResult) -> tuple[str, object, object]:
    return ORACLE_FAMILIES[result.type], as_objects(result.source), as_objects(result.dest)


def our_view(header: ProxyHeader) -> tuple[str, object, object]:
    return header.family, as_objects(header.source), as_objects(header.destination)


@FUZZ
@given(v1_headers())
def test_oracle_parses_v1_alike(data: bytes) -> None:
    header = parse(data)
    assert oracle_view(ProxyProtocolV1().unpack(data)) == our_view(header)


@FUZZ
@given(v2_headers())
def test_oracle_parses_v2_alike(data: bytes) -> None:
    # The oracle verifies a CRC32C only when the optional ``crc32c`` package
    # is installed (it is not here); the parser here checks its own.
    header = parse(data)
    result = ProxyProtocolV2().unpack(data)
    assert oracle_view(result) == our_view(header)
    assert isinstance(result, ProxyResultLocal) == (header.command == "LOCAL")


@FUZZ
@given(endpoints, st.booleans())
def test_oracle_builds_what_we_parse(
    pair: tuple[tuple[str, int], tuple[str, int]], version_2: bool
) -> None:
    (src, sport), (dst, dport) = pair
    source, destination = (ipaddress.ip_address(src), sport), (ipaddress.ip_address(dst), dport)
    kind = ProxyResultIPv4 if source[0].version == 4 else ProxyResultIPv6
    # The oracle writes family byte 0x10/0x20 (a family with protocol UNSPEC)
    # unless it is told the protocol; those are not among the spec's valid
    # combinations and are refused here, so it is told.
    result = kind(source, destination, protocol=socket.SOCK_STREAM)  # type: ignore[arg-type]
    data = (ProxyProtocolV2() if version_2 else ProxyProtocolV1()).pack(result)
    header = parse(data)
    assert (header.source, header.destination) == (canonical(pair[0]), canonical(pair[1]))


def test_oracle_builds_the_other_kinds() -> None:
    unix = ProxyResultUnix("/run/a.sock", "/run/b.sock", protocol=socket.SOCK_STREAM)
    header = parse(ProxyProtocolV2().pack(unix))
    assert (header.family, header.source, header.destination) == (
        "UNIX",
        "/run/a.sock",
        "/run/b.sock",
    )
    assert parse(ProxyProtocolV2().pack(ProxyResultLocal())).command == "LOCAL"
    # v1 UNKNOWN comes out as "PROXY UNKNOWN    \r\n": the tail is ignored.
    assert parse(ProxyProtocolV1().pack(ProxyResultUnknown())).family == "UNKNOWN"


@pytest.mark.parametrize(
    ("data", "oracle"),
    [
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 +2\r\n", ProxyProtocolV1()),
        (b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", ProxyProtocolV1()),
        (v2_tcp4(fam=UDP4), ProxyProtocolV2()),
        (v2_tcp4(fam=0x10), ProxyProtocolV2()),
        (v2_tcp4(fam=0x13), ProxyProtocolV2()),
        (v2_tcp4(tlv(0x01, b"h2") + tlv(0x01, b"h3")), ProxyProtocolV2()),
        (v2_tcp4(tlv(0x05, bytes(200))), ProxyProtocolV2()),
        (v2_tcp4(tlv(0x01, b"h2")[:-1]), ProxyProtocolV2()),
    ],
)
def test_stricter_than_the_oracle(data: bytes, oracle: ProxyProtocolV1 | ProxyProtocolV2) -> None:
    # Where the two disagree, it is on input the spec forbids (leading zeros
    # and signs in ports, zone IDs, datagram or half-specified families) or
    # leaves ambiguous (a repeated TLV, an oversized unique ID, a truncated
    # TLV): the oracle accepts it, this parser refuses it.
    assert oracle.unpack(data) is not None
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(data)
