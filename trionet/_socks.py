"""SOCKS4, SOCKS4a and SOCKS5 client handshakes, sans-IO.

Both the HTTP client and the WebSocket client open a tunnel through a SOCKS
proxy with these objects; they never touch a socket. The caller sends
:meth:`data_to_send`, feeds what the proxy answers to :meth:`receive_data`
(an empty ``bytes`` is end of file) and sends again, until :attr:`done`.
A refusal or a reply that breaks the protocol raises :class:`SocksError`
with a message a user can act on; the caller turns it into its own error.

Theory of operation
-------------------
SOCKS5 (RFC 1928) is three exchanges:

1. the greeting (section 3): version 5 and the authentication methods we
   offer, "no authentication" (0x00), and username/password (0x02, RFC 1929)
   when the proxy URL had userinfo; the proxy picks one, or 0xFF for none;
2. for 0x02, the sub-negotiation of RFC 1929 section 2: the proxy's status
   byte is 0x00 for success, anything else is a refusal;
3. the CONNECT request (section 4) with an IPv4 or IPv6 address, or a domain
   name (at most 255 bytes) when the proxy resolves it; the reply (section 6)
   carries a code, 0x00 for success, and the proxy's bound address, whose
   length depends on its type.

SOCKS4 (the "SOCKS 4" protocol note by Ying-Da Lee) is one exchange: version
4, command 1, the port, an IPv4 address and a NUL-terminated user id. SOCKS4a
lets the client send the name instead: the address is ``0.0.0.x`` with x not
zero, and the name follows the user id. The 8-byte reply has version 0 and
code 0x5A for success.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Final

__all__ = ["Socks4Handshake", "Socks5Handshake", "SocksError"]

_SOCKS5_REPLIES: Final = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}

_SOCKS4_REPLIES: Final = {
    0x5B: "request rejected or failed",
    0x5C: "request rejected: the proxy could not reach identd on the client",
    0x5D: "request rejected: identd reported a different user id",
}

_MAX_NAME: Final = 255  # RFC 1928 section 5: the name's length is one byte


class SocksError(Exception):
    """The SOCKS proxy refused the tunnel or answered outside the protocol."""


def _encode_name(host: str) -> bytes:
    name = host.encode("idna")
    if not name:
        raise ValueError("the host name for the SOCKS proxy is empty")
    if len(name) > _MAX_NAME:
        raise ValueError(f"the host name is {len(name)} bytes; SOCKS allows at most {_MAX_NAME}")
    return name


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _check_port(port: int) -> None:
    if not 0 < port < 65536:
        raise ValueError(f"port must be 1-65535, not {port}")


class Socks5Handshake:
    """The client side of a SOCKS5 CONNECT.

    Args:
        host: The destination: an IP address literal, or a name that the
            proxy resolves.
        port: The destination port.
        username: With ``password``, RFC 1929 authentication is offered.
        password: The password for ``username``.

    Raises:
        ValueError: The name is longer than 255 bytes, the port is out of
            range, or only one of username and password was given, or one
            of them is longer than 255 bytes.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        _check_port(port)
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self._credentials: tuple[bytes, bytes] | None = None
        if username is not None and password is not None:
            user, secret = username.encode(), password.encode()
            if not 0 < len(user) <= 255 or len(secret) > 255:
                raise ValueError("SOCKS5 username and password are 1-255 bytes")
            self._credentials = (user, secret)
        address = _ip(host)
        if isinstance(address, ipaddress.IPv4Address):
            target = b"\x01" + address.packed
        elif isinstance(address, ipaddress.IPv6Address):
            target = b"\x04" + address.packed
        else:
            name = _encode_name(host)
            target = b"\x03" + bytes([len(name)]) + name
        self._request = b"\x05\x01\x00" + target + struct.pack("!H", port)
        methods = b"\x00\x02" if self._credentials else b"\x00"
        self._outgoing = b"\x05" + bytes([len(methods)]) + methods
        self._buffer = b""
        self._state = "greeting"

    @property
    def done(self) -> bool:
        """Whether the tunnel is open; the bytes that follow belong to it."""
        return self._state == "done"

    def data_to_send(self) -> bytes:
        """The bytes to send to the proxy now (possibly empty)."""
        out, self._outgoing = self._outgoing, b""
        return out

    def receive_data(self, data: bytes) -> bytes:
        """Feed the proxy's bytes; ``b""`` means it closed the connection.

        Returns:
            The bytes received after the handshake ended (the start of the
            tunnelled stream), usually empty.

        Raises:
            SocksError: The proxy refused, or broke the protocol, or closed
                the connection before answering.
        """
        if not data:
            raise SocksError("the SOCKS5 proxy closed the connection during the handshake")
        self._buffer += data
        while not self.done and self._step():
            pass
        if self.done:
            rest, self._buffer = self._buffer, b""
            return rest
        return b""

    def _take(self, size: int) -> bytes | None:
        if len(self._buffer) < size:
            return None
        head, self._buffer = self._buffer[:size], self._buffer[size:]
        return head

    def _step(self) -> bool:
        if self._state == "greeting":
            return self._on_greeting()
        if self._state == "auth":
            return self._on_auth()
        return self._on_reply()

    def _on_greeting(self) -> bool:
        reply = self._take(2)
        if reply is None:
            return False
        _version(reply[0], 5)
        method = reply[1]
        if method == 0x00:
            self._outgoing += self._request
            self._state = "reply"
        elif method == 0x02 and self._credentials is not None:
            user, secret = self._credentials
            self._outgoing += b"\x01" + bytes([len(user)]) + user + bytes([len(secret)]) + secret
            self._state = "auth"
        elif method == 0xFF:
            wanted = "username/password" if self._credentials else "no authentication"
            raise SocksError(
                f"the SOCKS5 proxy accepts none of the offered authentication "
                f"methods ({wanted}); does it need a username and password?"
            )
        else:
            raise SocksError(
                f"the SOCKS5 proxy chose authentication method {method:#04x}, which was not offered"
            )
        return True

    def _on_auth(self) -> bool:
        reply = self._take(2)
        if reply is None:
            return False
        if reply[0] != 0x01:
            raise SocksError(
                f"the SOCKS5 proxy answered authentication with version {reply[0]:#04x}, not 0x01"
            )
        if reply[1] != 0x00:
            raise SocksError("the SOCKS5 proxy rejected the username or password")
        self._outgoing += self._request
        self._state = "reply"
        return True

    def _on_reply(self) -> bool:
        if len(self._buffer) < 5:
            return False
        _version(self._buffer[0], 5)
        code, address_type = self._buffer[1], self._buffer[3]
        if code != 0x00:
            reason = _SOCKS5_REPLIES.get(code, "unknown reply code")
            raise SocksError(f"the SOCKS5 proxy refused: {reason} ({code:#04x})")
        if address_type == 0x01:
            size = 4 + 4 + 2
        elif address_type == 0x04:
            size = 4 + 16 + 2
        elif address_type == 0x03:
            size = 4 + 1 + self._buffer[4] + 2
        else:
            raise SocksError(f"the SOCKS5 proxy replied with address type {address_type:#04x}")
        if self._take(size) is None:
            return False
        self._state = "done"
        return True


class Socks4Handshake:
    """The client side of a SOCKS4 or SOCKS4a CONNECT.

    Args:
        host: The destination: an IPv4 address literal, or (SOCKS4a) a name
            that the proxy resolves.
        port: The destination port.
        user_id: The user id sent to the proxy (the proxy URL's username).

    Raises:
        ValueError: The host is an IPv6 address (SOCKS4 has none), the name
            is longer than 255 bytes, or the port is out of range.
    """

    def __init__(self, host: str, port: int, *, user_id: str = "") -> None:
        _check_port(port)
        user = user_id.encode()
        if b"\x00" in user:
            raise ValueError("the SOCKS4 user id cannot contain NUL")
        address = _ip(host)
        if isinstance(address, ipaddress.IPv6Address):
            raise ValueError(f"SOCKS4 cannot reach an IPv6 address ({host})")
        head = b"\x04\x01" + struct.pack("!H", port)
        if address is not None:
            self._outgoing = head + address.packed + user + b"\x00"
        else:
            name = _encode_name(host)
            self._outgoing = head + b"\x00\x00\x00\x01" + user + b"\x00" + name
            self._outgoing += b"\x00"
        self._buffer = b""
        self._done = False

    @property
    def done(self) -> bool:
        """Whether the tunnel is open; the bytes that follow belong to it."""
        return self._done

    def data_to_send(self) -> bytes:
        """The bytes to send to the proxy now (possibly empty)."""
        out, self._outgoing = self._outgoing, b""
        return out

    def receive_data(self, data: bytes) -> bytes:
        """Feed the proxy's bytes; ``b""`` means it closed the connection.

        Returns:
            The bytes received after the reply (the start of the tunnelled
            stream), usually empty.

        Raises:
            SocksError: The proxy refused, or broke the protocol, or closed
                the connection before answering.
        """
        if not data:
            raise SocksError("the SOCKS4 proxy closed the connection during the handshake")
        self._buffer += data
        if len(self._buffer) < 8:
            return b""
        reply, rest = self._buffer[:8], self._buffer[8:]
        _version(reply[0], 0, "SOCKS4")
        code = reply[1]
        if code != 0x5A:
            reason = _SOCKS4_REPLIES.get(code, "unknown reply code")
            raise SocksError(f"the SOCKS4 proxy refused: {reason} ({code:#04x})")
        self._done = True
        self._buffer = b""
        return rest


def _version(got: int, want: int, name: str = "SOCKS5") -> None:
    if got != want:
        raise SocksError(
            f"the proxy is not speaking {name}: its reply has version {got:#04x}, not {want:#04x}"
        )
