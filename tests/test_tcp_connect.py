"""The one connect path's address ordering (RFC 8305 section 4), without an
event loop. Its behaviour over loopback (refused, a timeout against a silent
peer, IPv6 and IPv4) is tested in ``test_tcp.py`` and ``test_http_client*.py``."""

from __future__ import annotations

import socket

from trionet._connect import AddrInfo, interleave

V4, V6 = socket.AF_INET, socket.AF_INET6


def info(family: socket.AddressFamily, address: str) -> AddrInfo:
    return (family, socket.SOCK_STREAM, 6, "", (address, 80))


def addresses(infos: list[AddrInfo]) -> list[str]:
    return [each[4][0] for each in infos]


def test_families_alternate_the_first_family_first() -> None:
    infos = [
        info(V6, "2001:db8::1"),
        info(V6, "2001:db8::2"),
        info(V6, "2001:db8::3"),
        info(V4, "192.0.2.1"),
        info(V4, "192.0.2.2"),
    ]
    assert addresses(interleave(infos)) == [
        "2001:db8::1",
        "192.0.2.1",
        "2001:db8::2",
        "192.0.2.2",
        "2001:db8::3",
    ]


def test_the_resolver_preference_decides_which_family_goes_first() -> None:
    infos = [info(V4, "192.0.2.1"), info(V6, "2001:db8::1"), info(V4, "192.0.2.2")]
    assert addresses(interleave(infos)) == ["192.0.2.1", "2001:db8::1", "192.0.2.2"]


def test_one_family_keeps_its_order() -> None:
    infos = [info(V4, "192.0.2.3"), info(V4, "192.0.2.1"), info(V4, "192.0.2.2")]
    assert interleave(infos) == infos


def test_nothing_to_order() -> None:
    assert interleave([]) == []
