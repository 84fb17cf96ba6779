"""What the virtual networks share: standing in as trio's socket factory and
hostname resolver for a block, and passing on what they do not simulate to
what was installed before them (another virtual network, or the system), so
that :class:`~trionet.testing.VirtualTCPNetwork` and
:class:`~trionet.testing.VirtualUDPNetwork` nest in either order."""

from __future__ import annotations

import math
import socket as stdlib_socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import trio

from .. import _checks as checks

__all__ = ["Plumbing", "delay", "family_of", "port_number"]

# Flags trio may add to a socket type; the kind is what is left.
_TYPE_FLAGS = getattr(stdlib_socket, "SOCK_NONBLOCK", 0) | getattr(stdlib_socket, "SOCK_CLOEXEC", 0)
_INET = (stdlib_socket.AF_INET, stdlib_socket.AF_INET6)


class Plumbing(trio.abc.SocketFactory, trio.abc.HostnameResolver):
    """A factory and resolver that simulates some sockets and lookups and
    passes the others on."""

    def __init__(self) -> None:
        self._previous_factory: trio.abc.SocketFactory | None = None
        self._previous_resolver: trio.abc.HostnameResolver | None = None

    @contextmanager
    def _installed(self) -> Iterator[None]:
        """Be the current run's factory and resolver for the block."""
        outer = self._previous_factory, self._previous_resolver
        factory = trio.socket.set_custom_socket_factory(self)
        resolver = trio.socket.set_custom_hostname_resolver(self)
        if factory is not self:  # (installed again inside itself: keep the outer ones)
            self._previous_factory, self._previous_resolver = factory, resolver
        try:
            yield
        finally:
            trio.socket.set_custom_hostname_resolver(resolver)
            trio.socket.set_custom_socket_factory(factory)
            self._previous_factory, self._previous_resolver = outer

    @staticmethod
    def _simulates(family: int, type: int, kind: int) -> bool:
        """Whether ``family``/``type`` is an IPv4 or IPv6 socket of ``kind``."""
        return family in _INET and int(type) & ~_TYPE_FLAGS == kind

    def _passed_on(self, family: int, type: int, proto: int) -> trio.socket.SocketType:
        """A socket this network does not simulate: the previous factory's,
        or a real one."""
        if self._previous_factory is not None:
            return self._previous_factory.socket(family, type, proto)
        return trio.socket.from_stdlib_socket(stdlib_socket.socket(family, type, proto))

    async def _look_up_elsewhere(
        self,
        host: bytes | None,
        port: bytes | str | int | None,
        family: int,
        type: int,
        proto: int,
        flags: int,
    ) -> Any:
        """A lookup this network does not answer: the previous resolver's,
        or the system's."""
        if self._previous_resolver is not None:
            return await self._previous_resolver.getaddrinfo(host, port, family, type, proto, flags)
        return await trio.to_thread.run_sync(
            stdlib_socket.getaddrinfo,
            host,
            port,
            family,
            type,
            proto,
            flags,
            abandon_on_cancel=True,
        )

    async def getnameinfo(
        self, sockaddr: tuple[str, int] | tuple[str, int, int, int], flags: int
    ) -> tuple[str, str]:
        """Look a name up, as ``trio.socket.getnameinfo`` does while the
        network is installed: the previous resolver's answer, or the
        system's.

        Args:
            sockaddr: The address.
            flags: ``NI_*`` flags.

        Returns:
            The ``(host, port)`` names.
        """
        if self._previous_resolver is not None:
            return await self._previous_resolver.getnameinfo(sockaddr, flags)
        return await trio.to_thread.run_sync(
            stdlib_socket.getnameinfo, sockaddr, flags, abandon_on_cancel=True
        )


def family_of(address: str) -> int:
    """``AF_INET6`` for an IPv6 literal, ``AF_INET`` otherwise."""
    return stdlib_socket.AF_INET6 if ":" in address else stdlib_socket.AF_INET


def delay(name: str, value: float) -> float:
    """A network delay: finite seconds, 0 or more.

    Raises:
        ValueError: Negative, infinite or NaN.
        TypeError: Not a number.
    """
    seconds = checks.non_negative_seconds(name, value)
    assert seconds is not None
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be finite >= 0 seconds, not {value!r}")
    return seconds


def port_number(port: bytes | str | int | None) -> int:
    """The port of a lookup, as ``getaddrinfo`` takes it.

    Raises:
        socket.gaierror: It is not a number (no service names here).
    """
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    try:
        return int(port)
    except ValueError:
        raise stdlib_socket.gaierror(
            stdlib_socket.EAI_SERVICE, "Servname not supported for ai_socktype"
        ) from None
