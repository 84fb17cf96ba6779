"""What a request carries: its body (bytes, text, JSON, a form, or an async
iterable sent chunked) and the header fields the client adds to the caller's
(``Host``, credentials, framing). No I/O.
"""

from __future__ import annotations

import json as jsonlib
from collections.abc import AsyncIterable, Mapping
from typing import Any, Final
from urllib.parse import urlencode

from .._headers import Headers
from ._multipart import Files, MultipartBody
from ._urls import Proxy, Target

__all__ = ["UNSET", "Content", "RequestBody", "Unset", "encode_body", "request_fields"]

#: A request body: bytes, text (sent as UTF-8), or an async iterable of bytes
#: (sent chunked, RFC 9112 section 7.1).
Content = bytes | bytearray | memoryview | str | AsyncIterable[bytes]

#: A body ready to send: bytes, or an async iterable sent chunked.
RequestBody = bytes | AsyncIterable[bytes] | None


class Unset:
    """The type of :data:`UNSET`: an argument that was not given."""


UNSET: Final = Unset()


def encode_body(
    content: Content | None,
    json: Any,
    form: Mapping[str, str] | None,
    headers: Headers,
    files: Files | None = None,
) -> RequestBody:
    """The body for ``content``, ``json``, ``form`` or ``files`` (with
    ``form`` or without: one of the others at most), setting a
    ``Content-Type`` in ``headers`` when it has none.

    Raises:
        TypeError: More than one is given, or ``content`` is of the wrong
            type.
    """
    if files is not None:
        if content is not None or json is not UNSET:
            raise TypeError("files go with form fields, not with content or json")
        multipart = MultipartBody(form, files)
        if "content-type" not in headers:
            headers.set("content-type", multipart.content_type)
        length = multipart.length
        if length is not None and "content-length" not in headers:
            headers.set("content-length", str(length))
        return multipart.stream()
    given = [content is not None, json is not UNSET, form is not None]
    if sum(given) > 1:
        raise TypeError("give one of content, json and form (or data)")
    if json is not UNSET:
        if "content-type" not in headers:
            headers.set("content-type", "application/json")
        return jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
    if form is not None:
        if "content-type" not in headers:
            headers.set("content-type", "application/x-www-form-urlencoded")
        return urlencode(list(form.items())).encode()
    if content is None:
        return None
    if isinstance(content, str):
        if "content-type" not in headers:
            headers.set("content-type", "text/plain; charset=utf-8")
        return content.encode()
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    if isinstance(content, AsyncIterable):
        return content
    raise TypeError(
        f"content is bytes, str or an async iterable of bytes, not {type(content).__name__}"
    )


def request_fields(
    method: str, target: Target, proxy: Proxy | None, fields: Headers, body: RequestBody
) -> tuple[str, list[tuple[str, str]]]:
    """The request target and the header fields that go on the wire: the
    caller's, plus ``Host``, the URL's and the proxy's credentials, and the
    body's framing when the caller gave none.

    Returns:
        ``(request target, fields)``.
    """
    origin = target.origin
    pairs: list[tuple[str, str]] = []
    if "host" not in fields:
        pairs.append(("host", origin.host_header))
    pairs.extend(fields)
    if target.authorization is not None and "authorization" not in fields:
        pairs.append(("authorization", target.authorization))
    request_target = target.target
    if proxy is not None and not proxy.socks and origin.scheme == "http":
        request_target = target.url  # absolute form (RFC 9112 section 3.2.2)
        if proxy.authorization is not None:
            # Spelled as in RFC 9110 (and by curl): field names are case
            # insensitive, but some proxies (pproxy, for one) look for this one
            # as written.
            pairs.append(("Proxy-Authorization", proxy.authorization))
    if isinstance(body, bytes):
        if "content-length" not in fields:
            pairs.append(("content-length", str(len(body))))
    elif body is not None:
        if "content-length" not in fields and "transfer-encoding" not in fields:
            pairs.append(("transfer-encoding", "chunked"))
    elif method in ("POST", "PUT", "PATCH") and "content-length" not in fields:
        pairs.append(("content-length", "0"))  # RFC 9110 section 8.6
    return request_target, pairs
