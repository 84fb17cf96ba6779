"""Whom a server believes: the peers allowed to speak for someone else.

Theory of operation
-------------------
A server behind a reverse proxy sees the proxy as its peer; the proxy tells
who the client was, in a PROXY protocol header or in ``Forwarded`` /
``X-Forwarded-For`` fields (RFC 7239 section 8.1: a server must only believe
such information from proxies it trusts, since any client can write the same
fields). :class:`TrustedPeers` is that list of proxies, built once from what
the user passed (gunicorn's ``forwarded_allow_ips`` and uvicorn's
``--forwarded-allow-ips`` style: ``"127.0.0.1, 10.0.0.0/8"``) and asked two
questions: is the connection's peer trusted (:meth:`TrustedPeers.trusts`),
and is an address written in a header trusted
(:meth:`TrustedPeers.trusts_host`, used to walk a chain of proxies).

Entries are ``"*"`` (everyone), IPv4/IPv6 addresses, networks in CIDR
notation (strict: host bits set is an error, as a typo like ``10.0.0.1/8``
usually means something else than ``10.0.0.0/8``) and ``"unix"`` (peers on
a Unix socket: only a local process can connect there). An IPv4-mapped IPv6
address (``::ffff:10.0.0.1``, what a dual-stack socket reports for an IPv4
peer) matches the IPv4 entries as well as the IPv6 ones. Nothing here does
I/O: the module is shared by the trio drivers and the sans-IO parsers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

__all__ = ["IPAddress", "SocketAddress", "TrustedPeers", "parse_ip"]

#: An address as the socket module reports it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6, a path for Unix sockets
#: (``""`` for an unnamed one). The same alias as ``trionet._server``'s,
#: repeated so that this module imports nothing that reaches trio.
SocketAddress = tuple[Any, ...] | str

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_EXPECTED = "'*', 'unix', an IP address or a network in CIDR notation"


def parse_ip(text: str) -> IPAddress | None:
    """``text`` as an IP address, or ``None`` when it is not one.

    Args:
        text: An address, IPv6 possibly with a scope (``fe80::1%eth0``).

    Returns:
        The address, or ``None`` (never an exception: the text may come from
        a header anyone wrote).
    """
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class TrustedPeers:
    """A set of trusted peer addresses, built once and immutable.

    Args:
        allow: ``None`` or empty to trust nobody (the default everywhere); a
            string of comma-separated items; or an iterable of items. An item
            is ``"*"`` (everyone), an IPv4 or IPv6 address, a network in CIDR
            notation (``"10.0.0.0/8"``, ``"fd00::/8"``) or ``"unix"`` (peers
            on a Unix socket). Whitespace around items and empty items are
            ignored.

    Raises:
        ValueError: An item is none of these, or a network has host bits set
            (``"10.0.0.1/8"``); the message names the item.
        TypeError: ``allow`` is not a string or an iterable of strings.
    """

    __slots__ = ("_all", "_entries", "_unix", "_v4", "_v6")

    _all: bool
    _unix: bool
    _v4: tuple[ipaddress.IPv4Network, ...]
    _v6: tuple[ipaddress.IPv6Network, ...]
    _entries: tuple[str, ...]

    def __init__(self, allow: str | Iterable[str] | None) -> None:
        if allow is None:
            items: list[object] = []
        elif isinstance(allow, str):
            items = list(allow.split(","))
        elif isinstance(allow, bytes | bytearray) or not isinstance(allow, Iterable):
            raise TypeError(
                f"trusted peers must be a string, an iterable of strings or None, not {allow!r}"
            )
        else:
            items = list(allow)
        everyone = unix = False
        v4: list[ipaddress.IPv4Network] = []
        v6: list[ipaddress.IPv6Network] = []
        entries: list[str] = []
        for item in items:
            if not isinstance(item, str):
                raise TypeError(f"a trusted peer must be a string ({_EXPECTED}), not {item!r}")
            text = item.strip()
            if not text:
                continue
            if text == "*":
                everyone = True
                entries.append("*")
            elif text.lower() == "unix":
                unix = True
                entries.append("unix")
            else:
                network = _network(text)
                if isinstance(network, ipaddress.IPv4Network):
                    v4.append(network)
                else:
                    v6.append(network)
                single = network.prefixlen == network.max_prefixlen
                entries.append(str(network.network_address) if single else str(network))
        # Immutable from here on: object.__setattr__ because __setattr__ refuses.
        for name, value in (
            ("_all", everyone),
            ("_unix", unix),
            ("_v4", tuple(v4)),
            ("_v6", tuple(v6)),
            ("_entries", tuple(dict.fromkeys(entries))),
        ):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"TrustedPeers is immutable (cannot set {name!r})")

    @property
    def trust_all(self) -> bool:
        """Whether every peer is trusted (the ``"*"`` entry)."""
        return self._all

    def __bool__(self) -> bool:
        return self._all or self._unix or bool(self._v4) or bool(self._v6)

    def __repr__(self) -> str:
        if not self._entries:
            return "TrustedPeers(None)"
        return f"TrustedPeers({', '.join(self._entries)!r})"

    def trusts(self, peer: SocketAddress) -> bool:
        """Whether the connection's peer is trusted.

        Args:
            peer: The peer's address as the socket reports it: a tuple whose
                first item is the IP address, or a string (a Unix socket's
                path, ``""`` when unnamed).

        Returns:
            ``True`` for every peer under ``"*"``, for a Unix peer under
            ``"unix"``, for an IP peer inside one of the networks; ``False``
            for anything else, including addresses of an unknown shape.
        """
        if self._all:
            return True
        if isinstance(peer, str):
            return self._unix
        if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
            ip = parse_ip(peer[0])
            return ip is not None and self.trusts_ip(ip)
        return False

    def trusts_host(self, host: str) -> bool:
        """Whether an address written in a header is trusted.

        Args:
            host: An IP address without port; an IPv6 one may keep the
                brackets ``Forwarded`` writes it with (``"[::1]"``).

        Returns:
            ``True`` under ``"*"`` whatever ``host`` is; otherwise whether it
            is an IP address inside one of the networks (``"unknown"``, an
            obfuscated ``_name`` or any other text is not trusted).
        """
        if self._all:
            return True
        text = host.strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        ip = parse_ip(text)
        return ip is not None and self.trusts_ip(ip)

    def trusts_ip(self, ip: IPAddress) -> bool:
        """Whether ``ip`` is trusted (``"*"`` or inside one of the networks).

        Args:
            ip: A parsed address. An IPv4-mapped IPv6 one is also checked, as
                IPv4, against the IPv4 networks.

        Returns:
            Whether it is trusted.
        """
        if self._all:
            return True
        if isinstance(ip, ipaddress.IPv4Address):
            return any(ip in network for network in self._v4)
        if any(ip in network for network in self._v6):
            return True
        mapped = ip.ipv4_mapped
        return mapped is not None and any(mapped in network for network in self._v4)


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        # ipaddress says "has host bits set" or "does not appear to be...":
        # keep its reason after ours, which names what was expected.
        raise ValueError(f"a trusted peer must be {_EXPECTED}, not {text!r} ({exc})") from None
