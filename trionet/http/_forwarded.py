"""Who the client was, told by the proxies in front: ``Forwarded`` (RFC 7239)
and ``X-Forwarded-For`` / ``-Proto`` / ``-Host``, believed only from trusted
peers.

Theory of operation
-------------------
Each proxy on the way appends what it saw: the address that connected to it
(RFC 7239 section 5.2 ``for=``, or one more ``X-Forwarded-For`` entry), the
scheme (section 5.4 ``proto=``) and the ``Host`` (section 5.3 ``host=``).
The list grows to the right (section 4), so the right-most hop was written by
the nearest proxy, and everything left of a hop written by someone untrusted
may be forged. Hence the rules (section 8.1; uvicorn's and gunicorn's too):

* Nothing is believed unless the connection's peer is trusted: from anyone
  else every forwarding field is ignored and :func:`resolve` says ``None``.
* One family of fields is read, the one the server is told its proxies
  write (``header``): ``X-Forwarded-*`` (the default: what nginx, HAProxy's
  ``forwardfor``, the cloud balancers write) or ``Forwarded``. Never both,
  and never the other as a fallback: a proxy maintains only its own family,
  so the other one reaches the server as the client wrote it, forged hops
  and all. Repeated field lines are joined in order with ``", "``, as any
  list field (RFC 9110 section 5.3).
* The hops are walked from right to left: the first one whose address is not
  trusted is the client; when all are trusted, the left-most one. A hop that
  is not an IP address (``unknown``, an obfuscated ``_hidden`` identifier,
  garbage; a ``Forwarded`` element without ``for=`` counts as ``unknown``) is
  never trusted, except under ``"*"``, which trusts every hop. Chosen, it
  becomes the client's host as written: ``("unknown", 0)``, ``("_hidden",
  0)`` (a numeric port after such a name is kept), or the whole garbage
  text with port 0.
* At most :data:`MAX_HOPS` hops are walked: beyond, the left-most considered
  hop (the 64th from the right) is the client. Parsing stays linear in the
  size of the fields.
* ``Forwarded`` (section 4): elements split by ``,``, pairs by ``;``, names
  case-insensitive, values tokens or quoted-strings with ``\\`` escapes;
  whitespace is tolerated around ``,`` and ``;`` (not around ``=``), empty
  elements and pairs are skipped (a field left with no element counts as
  absent). ``for=`` nodes (section 6): ``1.2.3.4``, ``"1.2.3.4:80"``,
  ``"[2001:db8::1]"``, ``"[2001:db8::1]:80"``, ``unknown``, ``_obfuscated``,
  each with an optional port, numeric or obfuscated (``_x``, read as 0); a
  bare IPv6 address is accepted too. Any syntax error (a duplicate parameter
  in an element, an unterminated quote, an unquoted IPv6 address...)
  discards the whole field: nothing changes.
  The chosen element's ``proto=`` and ``host=`` give the scheme and host
  when present.
* ``X-Forwarded-For``: comma-separated, whitespace trimmed, empty entries
  skipped (RFC 9110 section 5.6.1 has recipients ignore empty list
  elements). Entries: ``1.2.3.4``, ``1.2.3.4:5678``, ``::1`` (a bare IPv6
  address has no port), ``[::1]``, ``[::1]:80``; a port that is not a
  number up to 65535 makes the entry garbage. ``X-Forwarded-Proto`` and
  ``-Host`` (empty entries skipped too): when they have as many entries as
  ``X-Forwarded-For``, the entry at the chosen hop's index is taken,
  otherwise the right-most one (written by the nearest proxy). Without
  ``X-Forwarded-For`` the client stays the peer (port 0 for a Unix peer)
  and only scheme and host are taken (right-most).
* Normalised: IP addresses through :mod:`ipaddress` (IPv6 compressed, no
  brackets; an IPv4-mapped one as IPv4); schemes lower-cased and only
  ``http`` / ``https`` believed (anything else keeps the request's own); a
  host stripped of whitespace, an empty one ignored.

Nothing here raises on any field value: a header is data anyone may write.
"""

from __future__ import annotations

import ipaddress
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from .._trust import IPAddress, SocketAddress, TrustedPeers, parse_ip

__all__ = ["FORWARDED_HEADERS", "MAX_HOPS", "ForwardedView", "resolve"]

#: The families of forwarding fields a server may be told to read.
FORWARDED_HEADERS = ("x-forwarded", "forwarded")

# Real chains have a handful of proxies (CDN, load balancer, ingress). 64
# leaves room for any of them while bounding the work a request with a
# huge forged chain makes, and the trust checks are the costly part.
MAX_HOPS = 64

_SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class ForwardedView:
    """What the proxies say about the request.

    Attributes:
        client: The client's ``(host, port)``; port 0 when not given.
        scheme: ``"http"`` or ``"https"`` (or the request's own).
        host: The ``Host`` the client asked for, or ``None`` when neither
            the fields nor the request give one.
    """

    client: tuple[str, int]
    scheme: str
    host: str | None


# RFC 9110 section 5.6.2 (token) and 5.6.4 (quoted-string); the field is
# decoded as Latin-1, so obs-text is \x80-\xff. Possessive quantifiers keep
# a failed match from backtracking: each pair is matched in linear time.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]++"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]++|\\[\t \x21-\x7e\x80-\xff])*+"'
_PAIR = re.compile(rf"[ \t]*+({_TOKEN})=({_TOKEN}|{_QUOTED})[ \t]*+")
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
# RFC 7239 section 6: obfnode and obfport.
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")

_Hop = tuple[str, int, IPAddress | None]


class _Malformed(Exception):
    """The ``Forwarded`` field breaks RFC 7239 section 4's syntax."""


def _parse_forwarded(value: str) -> deque[dict[str, str]]:
    """The last :data:`MAX_HOPS` elements of a ``Forwarded`` field, each as
    its lower-cased parameter names and unquoted values.

    Raises:
        _Malformed: The field is not well-formed.
    """
    elements: deque[dict[str, str]] = deque(maxlen=MAX_HOPS)
    element: dict[str, str] = {}
    pos, end = 0, len(value)
    while True:
        match = _PAIR.match(value, pos)
        if match is not None:
            name, raw = match[1].lower(), match[2]
            if name in element:
                raise _Malformed(f"{name} twice in one element")
            if raw.startswith('"'):
                raw = _ESCAPE.sub(lambda m: m[1], raw[1:-1])
            element[name] = raw
            pos = match.end()
        else:
            while pos < end and value[pos] in " \t":
                pos += 1
        if pos == end:
            break
        if value[pos] == ",":
            if element:  # an empty list element is skipped (RFC 9110 5.6.1)
                elements.append(element)
            element = {}
        elif value[pos] != ";":
            raise _Malformed(f"unexpected {value[pos]!r} at {pos}")
        pos += 1
    if element:
        elements.append(element)
    return elements


def _hop(text: str) -> _Hop:
    """A node (RFC 7239 section 6, or an ``X-Forwarded-For`` entry) as
    ``(host, port, ip)``: ``ip`` is ``None`` when it is no IP address, and
    the host is then the name as written (the whole text when it is not an
    ``unknown`` or ``_obfuscated`` name with a valid port)."""
    text = text.strip()
    if text.startswith("["):
        name, bracket, rest = text[1:].partition("]")
        ip = parse_ip(name) if bracket and ":" in name else None
        if ip is None:
            return text, 0, None
    else:
        # One colon separates a port; more make a bare IPv6 address.
        name, colon, rest = text.partition(":")
        if colon and ":" in rest:
            name, rest = text, ""
        else:
            rest = colon + rest
        ip = parse_ip(name)
    port = 0
    if rest:
        digits = rest[1:]
        if rest[0] == ":" and _PORT.fullmatch(digits) and int(digits) <= 65535:
            port = int(digits)
        elif not (rest[0] == ":" and _OBFUSCATED.fullmatch(digits)):
            return text, 0, None
    if ip is None:
        named = name.lower() == "unknown" or _OBFUSCATED.fullmatch(name) is not None
        return (name, port, None) if named else (text, 0, None)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), port, ip


def _choose(hops: Sequence[str], trusted: TrustedPeers) -> tuple[int, _Hop]:
    """The index of the client among ``hops`` and its parsed node: the
    right-most untrusted hop, else the left-most of the last
    :data:`MAX_HOPS`."""
    stop = max(len(hops) - MAX_HOPS, 0)
    if trusted.trust_all:  # every hop is believed: no need to read the others
        return stop, _hop(hops[stop])
    for index in range(len(hops) - 1, stop - 1, -1):
        hop = _hop(hops[index])
        ip = hop[2]
        if ip is None or not trusted.trusts_ip(ip) or index == stop:
            return index, hop
    raise AssertionError("unreachable: hops is never empty")


def _entries(value: str | None) -> list[str]:
    if value is None:
        return []
    return [entry for entry in (part.strip() for part in value.split(",")) if entry]


def _scheme(value: str | None, default: str) -> str:
    scheme = (value or "").strip().lower()
    return scheme if scheme in _SCHEMES else default


def _peer_client(peer: SocketAddress) -> tuple[str, int]:
    if isinstance(peer, str):
        return peer, 0  # a Unix socket's path, "" when unnamed
    port = peer[1] if len(peer) > 1 and type(peer[1]) is int else 0
    return (str(peer[0]) if peer else ""), port


def _from_forwarded(
    value: str, trusted: TrustedPeers, scheme: str, host: str | None
) -> ForwardedView | None:
    try:
        elements = _parse_forwarded(value)
    except _Malformed:
        return None
    if not elements:
        return None
    index, (client, port, _) = _choose([e.get("for", "unknown") for e in elements], trusted)
    chosen = elements[index]
    given = chosen.get("host", "").strip()
    return ForwardedView((client, port), _scheme(chosen.get("proto"), scheme), given or host)


def _from_x_forwarded(
    fields: dict[str, str],
    peer: SocketAddress,
    trusted: TrustedPeers,
    scheme: str,
    host: str | None,
) -> ForwardedView | None:
    hops = _entries(fields.get("x-forwarded-for"))
    protos = _entries(fields.get("x-forwarded-proto"))
    hosts = _entries(fields.get("x-forwarded-host"))
    if hops:
        index, (client, port, _) = _choose(hops, trusted)
        where: tuple[str, int] = (client, port)
    else:
        index, where = -1, _peer_client(peer)

    def pick(entries: list[str]) -> str | None:
        if not entries:
            return None
        return entries[index] if hops and len(entries) == len(hops) else entries[-1]

    proto, given = pick(protos), pick(hosts)
    believed_scheme = _scheme(proto, "")
    if not hops and not believed_scheme and not given:
        return None
    return ForwardedView(where, believed_scheme or scheme, given or host)


_NAMES = {
    "x-forwarded": {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"},
    "forwarded": {b"forwarded"},
}


def resolve(
    peer: SocketAddress,
    headers: Sequence[tuple[bytes, bytes]],
    trusted: TrustedPeers,
    *,
    scheme: str,
    host: str | None,
    header: str = "x-forwarded",
) -> ForwardedView | None:
    """The client, scheme and host the proxies in front tell, if believed.

    Args:
        peer: The connection's peer address (the nearest proxy, if any).
        headers: The request's raw fields: names in any case, values bytes,
            possibly repeated.
        trusted: The peers (and hops) whose word is believed.
        scheme: The request's own scheme (the connection's).
        host: The request's own ``Host``, or ``None``.
        header: The family of fields the proxies write: ``"x-forwarded"``
            or ``"forwarded"`` (the other is ignored).

    Returns:
        What the fields say, with ``scheme`` and ``host`` kept where they say
        nothing; ``None`` when nothing changes: the peer is not trusted, or
        no forwarding field is usable. The rules are the module's.
    """
    if not trusted.trusts(peer):
        return None
    names = _NAMES[header]
    lines: dict[str, list[str]] = {}
    for name, value in headers:
        key = name.lower()
        if key in names:
            lines.setdefault(key.decode("ascii"), []).append(value.decode("latin-1"))
    # Joined once at the end: appending line by line would copy quadratically.
    fields = {name: ", ".join(values) for name, values in lines.items()}
    if header == "forwarded":
        if "forwarded" not in fields:
            return None
        return _from_forwarded(fields["forwarded"], trusted, scheme, host)
    return _from_x_forwarded(fields, peer, trusted, scheme, host)
