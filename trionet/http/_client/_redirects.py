"""Redirects (RFC 9110 section 15.4), the part without I/O: where the next
hop goes, with which method, body and header fields.

301, 302, 303, 307 and 308 with a ``Location`` are followed. 303 turns any
method but ``HEAD`` into ``GET`` without a body; so do 301 and 302 for
``POST``, as every browser does; 307 and 308 keep the method and the body. A
redirect to another origin drops ``Authorization`` and ``Cookie``.
"""

from __future__ import annotations

import dataclasses
from urllib.parse import urljoin

from .._headers import Headers
from ._body import RequestBody
from ._errors import RedirectError
from ._response import ClientResponse
from ._urls import Target, parse_url

__all__ = ["BODY_FIELDS", "CREDENTIAL_FIELDS", "next_hop"]

# Header fields that belong to the body, dropped with it on a redirect to GET.
BODY_FIELDS = ("content-length", "content-type", "content-encoding", "transfer-encoding")

# Credentials that must not follow a redirect to another origin.
CREDENTIAL_FIELDS = ("authorization", "cookie", "proxy-authorization")


def next_hop(
    response: ClientResponse,
    method: str,
    target: Target,
    fields: Headers,
    body: RequestBody,
) -> tuple[str, Target, RequestBody]:
    """The next hop of a redirect: its method, target and body; adjusts
    ``fields`` in place."""
    location = response.headers["location"]
    # RFC 9110 section 10.2.2: a relative Location is resolved against
    # the request's URL.
    try:
        next_url = urljoin(response.url, location.strip())
        next_target = parse_url(next_url)
    except ValueError:
        raise RedirectError(
            f"{response.url} redirects to {location!r}, not an http(s) URL"
        ) from None
    status = response.status
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method = "GET"
        body = None
        for name in (*BODY_FIELDS, "expect"):
            fields.remove(name)
    elif body is not None and not isinstance(body, bytes):
        raise RedirectError(
            f"{response.url} redirects ({status}) a request whose streamed body"
            " cannot be sent again"
        )
    if next_target.origin != target.origin:
        for name in CREDENTIAL_FIELDS:
            fields.remove(name)
        fields.remove("host")
    elif next_target.authorization is None:
        # Credentials of the URL stay with its origin, as a header would.
        next_target = dataclasses.replace(next_target, authorization=target.authorization)
    return method, next_target, body
