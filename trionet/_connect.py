"""The one connect path: every outgoing stream trionet opens starts here.

:func:`trionet.connect_tcp`, :func:`trionet.connect_unix`, the HTTP client
(and through ``connect_tcp`` the WebSocket client and the CLI) all call
:func:`connect`. It owns name resolution, happy eyeballs, the optional local
address, the TLS wrap, the whole-connect timeout, and the translation of
operating-system and TLS failures to trionet's exceptions, so each of these
is written once.

Theory of operation
-------------------
``connect`` runs under one deadline (``connect_timeout``), in steps:

1. **TCP** (:func:`open_tcp`): the name is looked up, and its addresses are
   ordered as RFC 8305 section 4 asks: the families alternate, the first
   family first (:func:`interleave`). Then they are raced (section 5): an
   attempt starts, and the next one starts when it failed or has not
   answered within the "Connection Attempt Delay" (250 ms by default); the
   first to connect wins and the others are cancelled. When every attempt
   failed, the error of the first is raised. A Unix socket path is one
   attempt (:func:`open_unix`).
2. **The caller's step between** (``tunnel``): the HTTP client opens a proxy
   ``CONNECT`` tunnel (or a SOCKS one) here, so that TLS then runs end to end
   with the origin. The step returns the stream to go on with: the same one,
   or, for an ``https://`` proxy, the TLS stream to the proxy that carries the
   tunnel (and then TLS inside TLS).
3. **TLS** (:func:`trionet.tls._stream.client_handshake`) when there is an
   ``ssl_context``.

A failure anywhere comes out as :class:`~trionet.ConnectError` (the
``OSError`` of the socket, translated by :func:`connect_error`),
:class:`~trionet.ConnectTimeout` (the deadline passed) or
:class:`~trionet.TLSError` (the handshake failed); the half-open stream is
closed first. Errors of the ``tunnel`` step are its own and pass through.

Each step is reported to an optional ``trace(step, details)`` callback with
its measured time: ``"dns"``, ``"connect"`` and ``"tls"`` (what
``trionet get --trace`` prints).

:func:`open_tcp` is the single point where a TCP stream comes into being,
with sockets from trio's socket factory: under a
:class:`trionet.testing.VirtualTCPNetwork` they are virtual, and every
client above runs unchanged, in memory.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import socket as stdlib_socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ._addresses import ascii_host
from ._errors import ConnectError, ConnectTimeout
from .tls._stream import client_handshake

__all__ = [
    "DEFAULT_HAPPY_EYEBALLS_DELAY",
    "AddrInfo",
    "Trace",
    "Tunnel",
    "connect",
    "connect_error",
    "interleave",
    "open_tcp",
    "open_unix",
    "trace_tls",
]

#: The trace callback: ``trace(step, details)``.
Trace = Callable[[str, Mapping[str, Any]], None]

#: A step run between the TCP connect and the TLS handshake; it returns the
#: stream the connection goes on with (the one it was given, or a wrapper).
Tunnel = Callable[[trio.abc.Stream], Awaitable[trio.abc.Stream]]

# RFC 8305 section 5: the "Connection Attempt Delay", 250 ms recommended.
DEFAULT_HAPPY_EYEBALLS_DELAY = 0.25

#: One ``getaddrinfo`` result: family, type, proto, canonical name, address.
AddrInfo = tuple[Any, Any, Any, Any, Any]


def interleave(infos: list[AddrInfo]) -> list[AddrInfo]:
    """RFC 8305 section 4: alternate address families, the first family
    first (the resolver's own preference), each family in its own order.

    Args:
        infos: ``getaddrinfo`` results.

    Returns:
        The same results, reordered.
    """
    if not infos:
        return []
    first_family = infos[0][0]
    first = [info for info in infos if info[0] == first_family]
    other = [info for info in infos if info[0] != first_family]
    result: list[AddrInfo] = []
    for index in range(max(len(first), len(other))):
        result.extend(group[index] for group in (first, other) if index < len(group))
    return result


async def open_tcp(
    host: str,
    port: int,
    *,
    happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
    local_address: str | None = None,
    trace: Trace | None = None,
) -> trio.abc.Stream:
    """Look ``host`` up and connect to the first of its addresses that
    answers (RFC 8305). The one place a TCP stream is opened.

    Args:
        host: A name or address.
        port: The port.
        happy_eyeballs_delay: Seconds before the next address is tried while
            the previous attempt is still pending; ``None`` waits for each
            attempt to fail first.
        local_address: Bind to this local address before connecting.
        trace: Told ``"dns"`` and ``"connect"`` with their times.

    Returns:
        A connected stream (a :class:`trio.SocketStream`).

    Raises:
        OSError: The name did not resolve, or every attempt failed (the
            first attempt's error); translated by :func:`connect`.
    """
    started = trio.current_time()
    infos = await trio.socket.getaddrinfo(host, port, type=stdlib_socket.SOCK_STREAM)
    if not infos:  # pragma: no cover - getaddrinfo raises instead
        raise OSError(0, f"no address for {host}")
    addresses = interleave(infos)
    if trace is not None:
        trace(
            "dns",
            {
                "host": host,
                "seconds": trio.current_time() - started,
                "addresses": [address[4][0] for address in addresses],
            },
        )
    started = trio.current_time()
    delay = math.inf if happy_eyeballs_delay is None else happy_eyeballs_delay
    stream = await _race(addresses, delay, local_address)
    if trace is not None:
        peer = stream.socket.getpeername()
        trace(
            "connect",
            {"address": peer[0], "port": peer[1], "seconds": trio.current_time() - started},
        )
    return stream


async def _attempt(info: AddrInfo, local_address: str | None) -> trio.socket.SocketType:
    """One connection attempt; the socket is closed unless it connected."""
    family, kind, proto, _, address = info
    sock = trio.socket.socket(family, kind, proto)
    try:
        if local_address is not None:
            # Bind the address only: the port is left to connect(), which
            # knows the peer and can share local ports between peers (Linux).
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(stdlib_socket.IPPROTO_IP, stdlib_socket.IP_BIND_ADDRESS_NO_PORT, 1)
            try:
                await sock.bind((local_address, 0))
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"the local address {local_address!r} does not fit {address[0]!r}",
                ) from None
        await sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


async def _race(
    addresses: list[AddrInfo], delay: float, local_address: str | None
) -> trio.SocketStream:
    """Connect to one of ``addresses``, starting the next attempt when the
    previous failed or after ``delay``; the first to connect wins and the
    others are cancelled."""
    winner: list[trio.socket.SocketType] = []
    errors: list[OSError] = []

    async def attempt(info: AddrInfo, failed: trio.Event, nursery: trio.Nursery) -> None:
        try:
            sock = await _attempt(info, local_address)
        except OSError as exc:
            errors.append(exc)
            failed.set()
            return
        if winner:
            sock.close()
            return
        winner.append(sock)
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for info in addresses:
            failed = trio.Event()
            nursery.start_soon(attempt, info, failed, nursery)
            with trio.move_on_after(delay):
                await failed.wait()
    if winner:
        return trio.SocketStream(winner[0])
    if len(errors) == 1:
        raise errors[0]
    first = errors[0]
    raise OSError(first.errno, first.strerror or str(first))


async def open_unix(path: str) -> trio.abc.Stream:
    """Connect to the Unix socket at ``path``.

    Raises:
        OSError: Nobody listens there; translated by :func:`connect`.
    """
    return await trio.open_unix_socket(path)


async def connect(
    address: tuple[str, int] | str,
    *,
    what: str,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    connect_timeout: float | None = None,
    happy_eyeballs_delay: float | None = DEFAULT_HAPPY_EYEBALLS_DELAY,
    local_address: str | None = None,
    tunnel: Tunnel | None = None,
    trace: Trace | None = None,
) -> trio.abc.Stream:
    """Open a stream: TCP (or a Unix socket), the ``tunnel`` step, then TLS,
    all within ``connect_timeout`` (see the module docstring).

    Args:
        address: ``(host, port)`` for TCP, or a Unix socket's path.
        what: What is being connected to, as error messages name it.
        ssl_context: Run the TLS handshake with this client context.
        server_hostname: The name to send (SNI) and verify.
        connect_timeout: Seconds for all of it; ``None`` waits as long as the
            system does.
        happy_eyeballs_delay: As for :func:`open_tcp`.
        local_address: As for :func:`open_tcp`.
        tunnel: ``stream = await tunnel(stream)`` runs after the TCP
            connect and before TLS; its exceptions pass through. When it
            fails, the stream it was given is closed (and with it any
            wrapper it made).
        trace: Told ``"dns"``, ``"connect"`` and ``"tls"`` with their times.

    Returns:
        The connected stream (a :class:`trio.SSLStream` with TLS).

    Raises:
        trionet.ConnectError: The connection was refused, the host is
            unreachable, or the name did not resolve.
        trionet.ConnectTimeout: ``connect_timeout`` ran out.
        trionet.TLSError: The TLS handshake failed.
        ValueError: ``ssl_context`` checks host names and there is no
            ``server_hostname``, or it is no valid host name.
    """
    if ssl_context is not None and ssl_context.check_hostname and not server_hostname:
        # ssl.SSLObject (unlike SSLSocket) would quietly skip the check.
        raise ValueError("server_hostname is required when the ssl_context checks hostnames")
    if server_hostname:
        # Python's ssl would encode a non-ASCII name with IDNA 2003.
        server_hostname = ascii_host(server_hostname)
    stream: trio.abc.Stream | None = None
    with trio.move_on_after(math.inf if connect_timeout is None else connect_timeout) as scope:
        try:
            if isinstance(address, str):
                stream = await open_unix(address)
            else:
                stream = await open_tcp(
                    address[0],
                    address[1],
                    happy_eyeballs_delay=happy_eyeballs_delay,
                    local_address=local_address,
                    trace=trace,
                )
            if tunnel is not None:
                stream = await tunnel(stream)
            if ssl_context is not None:
                started = trio.current_time()
                stream = await client_handshake(stream, ssl_context, server_hostname)
                if trace is not None:
                    trace_tls(trace, stream, ssl_context, trio.current_time() - started)
        except OSError as exc:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise connect_error(exc, what) from None
        except BaseException:  # TLSError, the tunnel's error, or the timeout
            if stream is not None:
                await trio.aclose_forcefully(stream)
            raise
    if stream is None or scope.cancelled_caught:
        # The stream, if any, was closed as the cancellation went by.
        raise ConnectTimeout(
            errno.ETIMEDOUT, f"connecting to {what} timed out after {connect_timeout:g} s"
        )
    return stream


def trace_tls(
    trace: Trace,
    stream: trio.SSLStream[trio.abc.Stream],
    context: ssl.SSLContext,
    seconds: float,
    proxy: str | None = None,
) -> None:
    """Tell ``trace`` about a completed handshake: the ``"tls"`` step, with
    ``"proxy"`` (its URL) when it was the handshake with an ``https://``
    proxy, else ``None``."""
    cipher = stream.cipher()
    trace(
        "tls",
        {
            "seconds": seconds,
            "version": stream.version(),
            "cipher": cipher[0] if cipher else None,
            "alpn": stream.selected_alpn_protocol(),
            "server_hostname": stream.server_hostname,
            "verified": context.verify_mode != ssl.CERT_NONE,
            "proxy": proxy,
        },
    )


def connect_error(exc: OSError, what: str) -> ConnectError:
    """Translate the ``OSError`` of a failed connect (or name lookup) to
    :class:`ConnectError`, naming ``what`` was being connected to."""
    code = exc.errno
    if isinstance(exc, stdlib_socket.gaierror):
        return ConnectError(errno.EHOSTUNREACH, f"cannot connect to {what}: {exc.strerror}")
    # The system's text for the code: the message names the address itself.
    reason = os.strerror(code) if code else (exc.strerror or str(exc))
    return ConnectError(code or 0, f"cannot connect to {what}: {reason}")
