"""Authentication for the client, sans I/O: ``auth=`` as httpx spells it.

Theory of operation
-------------------
An :class:`Auth` is a *flow*: a generator that is given the request about to
go (an :class:`AuthRequest`: method, URL, header fields it may change),
yields it to be sent, and is given back the response; it may yield the
request again (changed) to send it once more, as Digest does after the
server's ``401`` challenge, or return to keep the response. The flow does
no I/O, so it is tested without a network.

The client runs the flow for the request's own origin only: a redirect to
another origin drops ``Authorization`` and runs no flow, so credentials are
never sent anywhere but where they were given for. A flow that asks to send
a request again whose body was streamed (an async iterable, which cannot be
replayed) gets no second try: the response it has is returned.

:class:`BasicAuth` (RFC 7617) and :class:`BearerAuth` (RFC 6750) add their
field at once. :class:`DigestAuth` (RFC 7616) answers a ``Digest``
challenge with ``qop=auth`` and the ``MD5``, ``SHA-256`` and ``SHA-512-256``
algorithms and their ``-sess`` variants, then keeps using the server's nonce
(counting ``nc``) for the requests after, until the server calls it stale.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._headers import Headers
from ._response import ClientResponse

__all__ = [
    "Auth",
    "AuthInput",
    "AuthRequest",
    "BasicAuth",
    "BearerAuth",
    "DigestAuth",
    "as_auth",
    "authenticated",
]


@dataclass(slots=True)
class AuthRequest:
    """The request an :class:`Auth` flow sees, and may change before it goes.

    Attributes:
        method: The method, such as ``"GET"``.
        url: The absolute URL.
        headers: The header fields to send (change them in place).
    """

    method: str
    url: str
    headers: Headers

    @property
    def target(self) -> str:
        """The request target: the URL's path and query (what Digest signs)."""
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


AuthFlow = Generator[AuthRequest, ClientResponse, None]


class Auth:
    """An authentication scheme: subclass it and override :meth:`auth_flow`
    (httpx's protocol), or use :class:`BasicAuth`, :class:`DigestAuth` or
    :class:`BearerAuth`."""

    def auth_flow(self, request: AuthRequest) -> AuthFlow:
        """Authenticate ``request``: ``response = yield request`` sends it and
        gives its response; yield again to send it again; return to keep the
        last response. This default sends it unchanged.

        Args:
            request: The request about to be sent.

        Yields:
            The request to send.
        """
        yield request


class BasicAuth(Auth):
    """``Authorization: Basic`` (RFC 7617), sent with every request.

    Args:
        username: The user name (UTF-8).
        password: The password (UTF-8).
    """

    def __init__(self, username: str, password: str) -> None:
        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._value = f"Basic {token}"

    def auth_flow(self, request: AuthRequest) -> AuthFlow:
        request.headers.set("authorization", self._value)
        yield request


class BearerAuth(Auth):
    """``Authorization: Bearer`` (RFC 6750), sent with every request.

    Args:
        token: The token.

    Raises:
        ValueError: The token holds a character a header field cannot.
    """

    def __init__(self, token: str) -> None:
        if not token or any(char in token for char in "\r\n\0"):
            raise ValueError("a bearer token is a non-empty str without CR, LF or NUL")
        self._value = f"Bearer {token}"

    def auth_flow(self, request: AuthRequest) -> AuthFlow:
        request.headers.set("authorization", self._value)
        yield request


# RFC 7616 section 3.3's hash functions, by their algorithm names.
_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data, usedforsecurity=False).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
}

# One auth-param of a challenge: name=token or name="quoted string".
_PARAM = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')


def _challenge(value: str) -> dict[str, str] | None:
    """The parameters of a ``Digest`` challenge in a ``WWW-Authenticate``
    value (among other schemes'), or ``None``."""
    found = re.search(r"(?:^|,)\s*Digest\s+", value, re.IGNORECASE)
    if found is None:
        return None
    params: dict[str, str] = {}
    rest = value[found.end() :]
    position = 0
    # Parameters follow each other; anything else (another scheme's name)
    # ends the challenge.
    while (match := _PARAM.match(rest, position)) is not None and match.end() > position:
        name, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(name, raw)
        position = match.end()
    return params if "nonce" in params and "realm" in params else None


class DigestAuth(Auth):
    """HTTP Digest authentication (RFC 7616): the first request goes without
    credentials; a ``401`` with a ``Digest`` challenge is answered (``qop=auth``;
    ``MD5``, ``SHA-256``, ``SHA-512-256``, and their ``-sess`` forms), and the
    requests after reuse the server's nonce until it says it is stale.

    Args:
        username: The user name.
        password: The password.
    """

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._challenge: dict[str, str] | None = None
        self._count = 0
        self._cnonce: Callable[[], str] = lambda: os.urandom(8).hex()

    def auth_flow(self, request: AuthRequest) -> AuthFlow:
        if self._challenge is not None:
            request.headers.set("authorization", self._answer(request))
        response = yield request
        if response.status != 401:
            return
        challenge = None
        for value in response.headers.get_all("www-authenticate"):
            challenge = _challenge(value)
            if challenge is not None:
                break
        if challenge is None or not self._supported(challenge):
            return  # not a challenge we can answer: the 401 it is
        stale = challenge.get("stale", "").lower() == "true"
        if (
            self._challenge is not None
            and not stale
            and challenge["nonce"] == self._challenge["nonce"]
        ):
            return  # our answer to this very nonce was refused: wrong credentials
        self._challenge = challenge
        self._count = 0
        request.headers.set("authorization", self._answer(request))
        yield request

    @staticmethod
    def _supported(challenge: dict[str, str]) -> bool:
        algorithm = challenge.get("algorithm", "MD5").upper().removesuffix("-SESS")
        qops = [qop.strip() for qop in challenge.get("qop", "auth").split(",")]
        return algorithm in _HASHES and "auth" in qops

    def _answer(self, request: AuthRequest) -> str:
        challenge = self._challenge
        assert challenge is not None
        algorithm = challenge.get("algorithm", "MD5")
        digest = _HASHES[algorithm.upper().removesuffix("-SESS")]
        realm, nonce = challenge["realm"], challenge["nonce"]
        self._count += 1
        count = f"{self._count:08x}"
        cnonce = self._cnonce()
        secret = digest(f"{self._username}:{realm}:{self._password}".encode())
        if algorithm.upper().endswith("-SESS"):
            secret = digest(f"{secret}:{nonce}:{cnonce}".encode())
        uri = request.target
        method_uri = digest(f"{request.method}:{uri}".encode())
        with_qop = "qop" in challenge
        if with_qop:
            answer = digest(f"{secret}:{nonce}:{count}:{cnonce}:auth:{method_uri}".encode())
        else:  # RFC 2069's form, for servers that offer no qop
            answer = digest(f"{secret}:{nonce}:{method_uri}".encode())
        fields = [
            f'username="{_quote(self._username)}"',
            f'realm="{_quote(realm)}"',
            f'nonce="{_quote(nonce)}"',
            f'uri="{_quote(uri)}"',
            f'response="{answer}"',
            f"algorithm={algorithm}",
        ]
        if with_qop:
            fields += ["qop=auth", f"nc={count}", f'cnonce="{cnonce}"']
        if "opaque" in challenge:
            fields.append(f'opaque="{_quote(challenge["opaque"])}"')
        return "Digest " + ", ".join(fields)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


#: What ``auth=`` accepts: an :class:`Auth`, or ``(username, password)``
#: for :class:`BasicAuth`.
AuthInput = Auth | tuple[str, str]


def as_auth(value: AuthInput | None) -> Auth | None:
    """``auth=`` as an :class:`Auth`.

    Raises:
        TypeError: It is neither an :class:`Auth` nor a pair of str.
    """
    if value is None or isinstance(value, Auth):
        return value
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(part, str) for part in value)
    ):
        return BasicAuth(*value)
    raise TypeError(f"auth= takes an Auth or a (username, password) pair, not {value!r}")


async def authenticated(
    flow: AuthFlow,
    send: Callable[[AuthRequest], Awaitable[ClientResponse]],
    *,
    replayable: bool,
    drain_limit: int,
) -> ClientResponse:
    """Run an auth flow: send what it yields, give it the responses, and
    return the last one. A response the flow answers with another request
    is read away (up to ``drain_limit`` bytes, else its connection closes);
    with a body that cannot be sent again, the first response is final."""
    try:
        outgoing = next(flow)
        while True:
            response = await send(outgoing)
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return response
            if not replayable:
                return response
            await response._discard(drain_limit)
    finally:
        flow.close()
