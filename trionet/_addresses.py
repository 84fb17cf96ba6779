"""Addresses as people and URLs write them."""

from __future__ import annotations

import functools

import idna

from ._server import SocketAddress

__all__ = ["ascii_host", "format_address", "host_header", "url_host"]


@functools.lru_cache(maxsize=256)
def ascii_host(host: str) -> str:
    """The ASCII form of a host name, as DNS, TLS (SNI) and the ``Host``
    field carry it: an internationalised name as IDNA 2008 A-labels after
    UTS 46 mapping, non-transitional (``faß.de`` is ``xn--fa-hia.de``, as
    browsers and curl send it; Python's own ``"idna"`` codec is IDNA 2003,
    which turns it into ``fass.de``, another domain). An ASCII name or an
    address is returned as it is.

    Raises:
        ValueError: The name is not a valid internationalised host name.
    """
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"not a valid international host name: {host!r} ({exc})") from None


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
