"""The SOCKS handshakes (trionet._socks), driven without sockets."""

from __future__ import annotations

import pytest

from trionet._socks import Socks4Handshake, Socks5Handshake, SocksError

_OK5 = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x1f\x90"


def test_socks5_no_auth_ip_target() -> None:
    shake = Socks5Handshake("127.0.0.1", 8080)
    assert shake.data_to_send() == b"\x05\x01\x00"
    assert shake.receive_data(b"\x05\x00") == b""
    assert shake.data_to_send() == b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1f\x90"
    assert not shake.done
    assert shake.receive_data(_OK5 + b"HTTP") == b"HTTP"
    assert shake.done


def test_socks5_name_and_ipv6_targets() -> None:
    shake = Socks5Handshake("example.test", 443)
    shake.data_to_send()
    shake.receive_data(b"\x05\x00")
    assert shake.data_to_send() == b"\x05\x01\x00\x03\x0cexample.test\x01\xbb"
    six = Socks5Handshake("[::1]", 80)
    six.data_to_send()
    six.receive_data(b"\x05\x00")
    assert six.data_to_send() == b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x50"


def test_socks5_reply_split_byte_by_byte_with_name_address() -> None:
    shake = Socks5Handshake("10.0.0.1", 80)
    shake.data_to_send()
    for byte in b"\x05\x00":
        shake.receive_data(bytes([byte]))
    shake.data_to_send()
    reply = b"\x05\x00\x00\x03\x05proxy\x00\x50"
    for byte in reply[:-1]:
        assert shake.receive_data(bytes([byte])) == b""
        assert not shake.done
    shake.receive_data(reply[-1:])
    assert shake.done


def test_socks5_username_password() -> None:
    shake = Socks5Handshake("127.0.0.1", 80, username="user", password="pw")
    assert shake.data_to_send() == b"\x05\x02\x00\x02"
    shake.receive_data(b"\x05\x02")
    assert shake.data_to_send() == b"\x01\x04user\x02pw"
    shake.receive_data(b"\x01\x00")
    assert shake.data_to_send().startswith(b"\x05\x01\x00\x01")
    shake.receive_data(_OK5)
    assert shake.done


def test_socks5_bad_password() -> None:
    shake = Socks5Handshake("127.0.0.1", 80, username="user", password="no")
    shake.receive_data(b"\x05\x02")
    with pytest.raises(SocksError, match="rejected the username or password"):
        shake.receive_data(b"\x01\x01")


def test_socks5_bad_auth_version() -> None:
    shake = Socks5Handshake("127.0.0.1", 80, username="user", password="pw")
    shake.receive_data(b"\x05\x02")
    with pytest.raises(SocksError, match="authentication with version 0x05"):
        shake.receive_data(b"\x05\x00")


@pytest.mark.parametrize("credentials", [False, True])
def test_socks5_no_acceptable_method(credentials: bool) -> None:
    kwargs = {"username": "u", "password": "p"} if credentials else {}
    shake = Socks5Handshake("127.0.0.1", 80, **kwargs)
    with pytest.raises(SocksError, match="accepts none of the offered"):
        shake.receive_data(b"\x05\xff")


def test_socks5_method_not_offered() -> None:
    shake = Socks5Handshake("127.0.0.1", 80)
    with pytest.raises(SocksError, match="0x02, which was not offered"):
        shake.receive_data(b"\x05\x02")


@pytest.mark.parametrize("reply", [b"\x04\x00", b"HTTP/1.1 400"])
def test_socks5_wrong_version(reply: bytes) -> None:
    shake = Socks5Handshake("127.0.0.1", 80)
    with pytest.raises(SocksError, match="not speaking SOCKS5"):
        shake.receive_data(reply)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (0x01, "general SOCKS server failure"),
        (0x02, "connection not allowed by ruleset"),
        (0x03, "network unreachable"),
        (0x04, "host unreachable"),
        (0x05, "connection refused"),
        (0x06, "TTL expired"),
        (0x07, "command not supported"),
        (0x08, "address type not supported"),
        (0x42, "unknown reply code"),
    ],
)
def test_socks5_reply_codes(code: int, reason: str) -> None:
    shake = Socks5Handshake("127.0.0.1", 80)
    shake.receive_data(b"\x05\x00")
    with pytest.raises(SocksError, match=f"refused: {reason} \\({code:#04x}\\)"):
        shake.receive_data(bytes([5, code, 0, 1]) + bytes(6))


def test_socks5_bad_address_type() -> None:
    shake = Socks5Handshake("127.0.0.1", 80)
    shake.receive_data(b"\x05\x00")
    with pytest.raises(SocksError, match="address type 0x07"):
        shake.receive_data(b"\x05\x00\x00\x07\x00")


@pytest.mark.parametrize("received", [b"", b"\x05", b"\x05\x00\x05\x00\x00"])
def test_socks5_truncated_then_eof(received: bytes) -> None:
    shake = Socks5Handshake("127.0.0.1", 80)
    if received:
        shake.receive_data(received)
    with pytest.raises(SocksError, match="closed the connection"):
        shake.receive_data(b"")


def test_long_names_and_bad_arguments_fail_before_sending() -> None:
    long_name = ".".join(["a" * 63] * 4) + ".b"
    with pytest.raises(ValueError, match="257 bytes; SOCKS allows at most 255"):
        Socks5Handshake(long_name, 80)
    with pytest.raises(ValueError, match="at most 255"):
        Socks4Handshake(long_name, 80)
    with pytest.raises(ValueError, match="both username and password"):
        Socks5Handshake("h", 80, username="u")
    with pytest.raises(ValueError, match="port"):
        Socks5Handshake("h", 0)
    with pytest.raises(ValueError, match="IPv6"):
        Socks4Handshake("::1", 80)


def test_socks4_ip_and_4a_name() -> None:
    shake = Socks4Handshake("127.0.0.1", 80, user_id="me")
    assert shake.data_to_send() == b"\x04\x01\x00\x50\x7f\x00\x00\x01me\x00"
    assert shake.receive_data(b"\x00\x5a" + bytes(6) + b"rest") == b"rest"
    assert shake.done
    named = Socks4Handshake("localhost", 80)
    assert named.data_to_send() == b"\x04\x01\x00\x50\x00\x00\x00\x01\x00localhost\x00"


@pytest.mark.parametrize(
    ("code", "reason"),
    [(0x5B, "rejected or failed"), (0x5C, "identd on the client"), (0x5D, "user id")],
)
def test_socks4_reply_codes(code: int, reason: str) -> None:
    shake = Socks4Handshake("127.0.0.1", 80)
    with pytest.raises(SocksError, match=reason):
        shake.receive_data(bytes([0, code]) + bytes(6))


def test_socks4_wrong_version_and_eof() -> None:
    with pytest.raises(SocksError, match="not speaking SOCKS4"):
        Socks4Handshake("127.0.0.1", 80).receive_data(b"\x05\x5a" + bytes(6))
    shake = Socks4Handshake("127.0.0.1", 80)
    shake.receive_data(b"\x00\x5a")
    with pytest.raises(SocksError, match="closed the connection"):
        shake.receive_data(b"")
