"""TLS as just another stream: wrapping, handshakes with a deadline, details.

Every stream protocol (TCP now, HTTP and WebSocket later) gets TLS the same
way: the accepted stream is wrapped in ``trio.SSLStream`` and the handshake
runs before the handler starts, under ``tls_handshake_timeout`` so a peer that
connects and stays silent cannot hold a connection slot. A failed handshake
raises :class:`~trionet._server.HandshakeFailed`, which the server core logs
at debug level and counts.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import trio

from .._errors import TLSError
from .._server import HandshakeFailed
from ._contexts import presented_certificate

__all__ = ["DEFAULT_TLS_HANDSHAKE_TIMEOUT", "TLSInfo", "server_handshake", "tls_info"]

# Ten seconds: long enough for a slow mobile client on a bad link (a full
# handshake is 1-2 round trips), short enough that a silent peer frees its slot
# quickly. nginx's ssl_handshake_timeout and Node's tls handshakeTimeout
# (120 s) bracket it; Node's is widely considered too generous.
DEFAULT_TLS_HANDSHAKE_TIMEOUT = 10.0

# ``_ssl.ENCODING_DER``: what ``_ssl.Certificate.public_bytes`` takes for DER.
_ENCODING_DER = 2


@dataclass(frozen=True, slots=True)
class TLSInfo:
    """What was negotiated on a TLS connection.

    Attributes:
        version: The protocol version, such as ``"TLSv1.3"``.
        cipher: The cipher suite name.
        alpn_protocol: The ALPN protocol both sides agreed on (``"h2"``,
            ``"http/1.1"``...), or ``None``.
        server_hostname: On the client side, the name sent (SNI) and verified.
            ``None`` on the server side: Python reports the name a client
            asked for only to the context's ``sni_callback``.
        peer_certificate: The peer's certificate as :meth:`ssl.SSLSocket.getpeercert`
            returns it (an empty dict when it was not validated), or ``None``
            when the peer sent none.
        peer_certificate_chain: The certificates the peer sent, DER-encoded,
            its own first, then the intermediates that sign it, as received
            (not checked by this field: ``peer_certificate`` is set when they
            were verified); empty when it sent none.
        local_certificate: The certificate this side presented, DER-encoded,
            when its context came from :func:`trionet.tls.server_context`
            (the one chosen by SNI) or :func:`trionet.tls.client_context`
            with a ``certfile``; ``None`` otherwise (Python's ``ssl`` cannot
            read it back from a context built elsewhere).
    """

    version: str | None
    cipher: str | None
    alpn_protocol: str | None
    server_hostname: str | None
    peer_certificate: dict[str, Any] | None
    peer_certificate_chain: tuple[bytes, ...] = ()
    local_certificate: bytes | None = None


def tls_info(stream: trio.SSLStream[Any]) -> TLSInfo:
    """Read the negotiated parameters of a handshaken ``SSLStream``."""
    cipher = stream.cipher()
    peer = stream.getpeercert()
    return TLSInfo(
        version=stream.version(),
        cipher=cipher[0] if cipher else None,
        alpn_protocol=stream.selected_alpn_protocol(),
        server_hostname=stream.server_hostname,
        peer_certificate=peer,
        peer_certificate_chain=_peer_chain(stream) if peer is not None else (),
        local_certificate=presented_certificate(stream.context),
    )


def _peer_chain(stream: trio.SSLStream[Any]) -> tuple[bytes, ...]:
    """The certificates the peer sent (DER), its own first.

    Python 3.13 has ``SSLObject.get_unverified_chain()``; 3.11 and 3.12 have
    the same method on the object's ``_ssl`` core only, returning
    certificate objects. Without either, the peer's own certificate alone.
    """
    ssl_object: Any = getattr(stream, "_ssl_object", None)
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:
        return tuple(public() or ())
    core = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if core is not None:
        return tuple(cert.public_bytes(_ENCODING_DER) for cert in core() or ())
    leaf = stream.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def describe_tls_failure(exc: BaseException) -> str:
    """One line for a failed handshake, from trio's exception chain."""
    cause = exc.__cause__ or exc.__context__ or exc
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate rejected: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS error: {cause.reason or cause}"
    return f"TLS handshake failed: {cause or type(cause).__name__}"


async def server_handshake(
    stream: trio.abc.Stream, ssl_context: ssl.SSLContext, handshake_timeout: float
) -> trio.SSLStream[trio.abc.Stream]:
    """Wrap an accepted stream in TLS and complete the handshake.

    Raises:
        HandshakeFailed: The handshake failed, or took longer than ``handshake_timeout``.
    """
    tls = trio.SSLStream(stream, ssl_context, server_side=True)
    with trio.move_on_after(handshake_timeout) as scope:
        try:
            await tls.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise HandshakeFailed(describe_tls_failure(exc)) from None
    if scope.cancelled_caught:
        raise HandshakeFailed(f"TLS handshake timed out after {handshake_timeout:g} s")
    return tls


async def client_handshake(
    stream: trio.abc.Stream, ssl_context: ssl.SSLContext, server_hostname: str | None
) -> trio.SSLStream[trio.abc.Stream]:
    """Wrap a connected stream in TLS as the client and complete the handshake.

    Raises:
        TLSError: The handshake failed (certificate rejected, protocol error,
            connection lost).
    """
    tls = trio.SSLStream(stream, ssl_context, server_hostname=server_hostname)
    try:
        await tls.do_handshake()
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise TLSError(describe_tls_failure(exc)) from None
    return tls
