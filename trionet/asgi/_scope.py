"""The ASGI connection scopes of a request, sans I/O.

Built from what the HTTP server already parsed (:class:`~trionet.http.Request`)
as the ASGI HTTP and WebSocket specification (version 2.5) describes them:

* ``path`` is the target's path percent-decoded (as UTF-8) and ``raw_path``
  its bytes as received, both *with* ``root_path`` in front, as uvicorn and
  Starlette read them (``root_path`` is where a proxy mounted the app; the
  client asked for it as part of the path);
* ``headers`` are the request's fields as received, in order, duplicates
  kept, names lower-cased;
* ``client`` and ``scheme`` are those the server believes (a trusted proxy's
  ``X-Forwarded-*``/``Forwarded`` or PROXY protocol header included);
  ``client`` is ``None`` on a Unix socket, and ``server`` is then ``(path,
  None)``;
* ``state`` is a shallow copy of the lifespan state, per request;
* ``extensions`` names what the server supports beyond the base
  specification: response trailers, ``pathsend``, early hints, the WebSocket
  denial response, and ``tls`` over TLS.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any
from urllib.parse import unquote_to_bytes

from .._server import SocketAddress
from ..http._server._request import Request
from ..tls._stream import TLSInfo

__all__ = ["ASGI_VERSION", "SPEC_VERSION", "Scope", "http_scope", "websocket_scope"]

#: The ASGI version and the HTTP/WebSocket spec version served.
ASGI_VERSION = {"version": "3.0", "spec_version": "2.5"}

Scope = dict[str, Any]

SPEC_VERSION = ASGI_VERSION["spec_version"]

# The extensions every HTTP scope announces (the values are empty dicts, as
# the extension specifications say).
_HTTP_EXTENSIONS = ("http.response.trailers", "http.response.pathsend", "http.response.early_hint")
_WEBSOCKET_EXTENSIONS = ("websocket.http.response",)

# TLS versions as the TLS specifications number them (what the tls extension
# reports).
_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _address(address: SocketAddress) -> tuple[str, int] | None:
    if isinstance(address, tuple):
        return (str(address[0]), int(address[1]))
    return None  # a Unix socket's peer has no address


def _server(address: SocketAddress) -> tuple[str, int | None]:
    if isinstance(address, tuple):
        return (str(address[0]), int(address[1]))
    return (str(address), None)


def _split_target(target: str, root_path: str) -> tuple[str, bytes, bytes]:
    """``path``, ``raw_path`` and ``query_string`` of a request target, with
    ``root_path`` in front of both paths."""
    raw, _, query = target.partition("?")
    if raw.startswith(("http://", "https://")):
        # The absolute form (RFC 9112 section 3.2.2): only its path counts.
        after_scheme = raw.partition("//")[2]
        raw = "/" + after_scheme.partition("/")[2]
    raw_bytes = raw.encode("latin-1")
    path = unquote_to_bytes(raw).decode("utf-8", "replace") if "%" in raw else raw
    if root_path:
        return root_path + path, root_path.encode("utf-8") + raw_bytes, query.encode("latin-1")
    return path, raw_bytes, query.encode("latin-1")


@functools.cache
def _cipher_ids() -> dict[str, int]:
    """OpenSSL's cipher names to their IANA numbers (the low 16 bits of
    OpenSSL's id)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.set_ciphers("ALL")
    return {cipher["name"]: cipher["id"] & 0xFFFF for cipher in context.get_ciphers()}


def _rfc4514(subject: Any) -> str | None:
    """A certificate subject, as ``getpeercert()`` gives it, as an RFC 4514
    string (the last relative name first)."""
    short = {
        "commonName": "CN",
        "countryName": "C",
        "localityName": "L",
        "stateOrProvinceName": "ST",
        "organizationName": "O",
        "organizationalUnitName": "OU",
        "domainComponent": "DC",
        "userId": "UID",
    }
    try:
        parts = []
        for rdn in reversed(subject):
            parts.append(
                "+".join(f"{short.get(key, key)}={_escape_dn(value)}" for key, value in rdn)
            )
    except (TypeError, ValueError):
        return None
    return ",".join(parts) or None


def _escape_dn(value: str) -> str:
    escaped = "".join(f"\\{char}" if char in ',+"\\<>;' else char for char in value)
    if escaped.startswith(("#", " ")):
        escaped = "\\" + escaped
    if escaped.endswith(" ") and not escaped.endswith("\\ "):
        escaped = escaped[:-1] + "\\ "
    return escaped


def tls_extension(tls: TLSInfo) -> dict[str, Any]:
    """The ``tls`` extension of a scope (the ASGI TLS specification): the
    server's certificate and the client's chain as PEM (the server's is
    known when the context came from :func:`trionet.tls.server_context`,
    else ``None``), the client certificate's subject when it was verified,
    and the TLS version and cipher suite as numbers."""
    peer = tls.peer_certificate
    local = tls.local_certificate
    return {
        "server_cert": ssl.DER_cert_to_PEM_cert(local) if local is not None else None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der) for der in tls.peer_certificate_chain],
        "client_cert_name": _rfc4514(peer.get("subject", ())) if peer else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(tls.version or ""),
        "cipher_suite": _cipher_ids().get(tls.cipher or ""),
    }


def _extensions(request: Request, names: tuple[str, ...]) -> dict[str, Any]:
    extensions: dict[str, Any] = {name: {} for name in names}
    tls = request.tls
    if tls is not None:
        extensions["tls"] = tls_extension(tls)
    return extensions


def _headers(request: Request) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value) for name, value in request._raw_headers]


def _scope(
    kind: str, scheme: str, request: Request, root_path: str, state: dict[str, Any] | None
) -> Scope:
    path, raw_path, query = _split_target(request.target, root_path)
    scope: Scope = {
        "type": kind,
        "asgi": ASGI_VERSION,
        "http_version": request.http_version,
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": _headers(request),
        "client": _address(request.client),
        "server": _server(request._conn.local_address),  # type: ignore[attr-defined]
    }
    if state is not None:
        scope["state"] = state.copy()
    return scope


def http_scope(request: Request, root_path: str, state: dict[str, Any] | None) -> Scope:
    """The ``http`` scope of ``request``.

    Args:
        request: The request.
        root_path: Where the application is mounted (``--root-path``).
        state: The lifespan state, copied into the scope; ``None`` when the
            application has no lifespan (no ``state`` key then).
    """
    scope = _scope("http", request.scheme, request, root_path, state)
    scope["method"] = request.method
    scope["extensions"] = _extensions(request, _HTTP_EXTENSIONS)
    return scope


def websocket_scope(request: Request, root_path: str, state: dict[str, Any] | None) -> Scope:
    """The ``websocket`` scope of the upgrade ``request``: as the ``http``
    one, with ``ws``/``wss`` for the scheme and the offered
    ``subprotocols``."""
    scheme = "wss" if request.scheme == "https" else "ws"
    scope = _scope("websocket", scheme, request, root_path, state)
    scope["subprotocols"] = [
        item.strip()
        for value in request.headers.get_all("sec-websocket-protocol")
        for item in value.split(",")
        if item.strip()
    ]
    scope["extensions"] = _extensions(request, _WEBSOCKET_EXTENSIONS)
    return scope
