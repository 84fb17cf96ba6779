"""Addresses as people and URLs write them."""

from __future__ import annotations

from ._server import SocketAddress

__all__ = ["format_address", "host_header", "url_host"]


def format_address(address: SocketAddress) -> str:
    """``127.0.0.1:80``, ``[::1]:80`` or a Unix path, for messages (and the
    authority of a URL)."""
    if isinstance(address, str):
        return address
    return f"{url_host(str(address[0]))}:{address[1]}"


def url_host(host: str) -> str:
    """A host as a URL writes it: an IPv6 address in brackets (RFC 3986
    section 3.2.2)."""
    return f"[{host}]" if ":" in host else host


def host_header(host: str, port: int, default_port: int) -> str:
    """The ``Host`` field (RFC 9110 section 7.2): the port only when it is
    not the scheme's default."""
    return url_host(host) if port == default_port else format_address((host, port))
