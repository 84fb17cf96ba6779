"""The client's cookie jar (RFC 6265, with RFC 6265bis's safer rules), sans
I/O.

Theory of operation
-------------------
:meth:`Cookies.extract` reads a response's ``Set-Cookie`` fields as RFC
6265 section 5.2 parses them and stores each by section 5.3's model: a
cookie without ``Domain`` is *host-only* (sent back to that host alone); a
``Domain`` must cover the host that set it and may not be a public suffix
(see below) or, for an IP address, anything but the address itself; the
default ``Path`` is the request path's directory; ``Max-Age`` wins over
``Expires``, and a date in the past deletes the cookie. As RFC 6265bis asks,
a ``Secure`` cookie is taken only from an ``https`` response, and a cookie
whose name starts with ``__Secure-`` or ``__Host-`` only as those prefixes
require.

:meth:`Cookies.header` gives the ``Cookie`` field for a URL: every live
cookie whose domain and path match (``Secure`` ones only over ``https``),
longer paths first, then older first.

A ``Domain`` that is a public suffix (``com``, ``co.uk``, ``github.io``) is
refused, or kept for that host alone when it is the host itself (RFC 6265
section 5.3, step 5). With the ``psl`` extra (the ``publicsuffixlist``
package), the whole Public Suffix List decides, as in browsers. Without it,
the check is a caution, not the list: a ``Domain`` with no dot (``com``,
``localhost``) is refused, as are a few multi-label suffixes people meet
most; a site on a suffix not known here could then set a cookie for its
siblings.

Limits: a cookie's name and value together may take 4096 bytes (RFC 6265
section 6.1's minimum, what browsers keep), 50 cookies per domain and
``max_cookies`` in all; beyond, the oldest go first.
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from .._headers import Headers

__all__ = ["DEFAULT_MAX_COOKIES", "Cookie", "CookieConflict", "Cookies", "CookiesInput"]

#: Cookies a jar keeps in all (RFC 6265 section 6.1 asks for at least 3000).
DEFAULT_MAX_COOKIES = 3000

_MAX_COOKIE_SIZE = 4096
_MAX_PER_DOMAIN = 50

# Public suffixes of more than one label that people meet most; one label
# (a top-level domain) is always refused.
_KNOWN_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.jp", "ne.jp",
        "or.jp", "co.nz", "com.br", "com.cn", "co.in", "co.za", "com.mx", "com.tr",
        "github.io", "herokuapp.com", "appspot.com", "blogspot.com", "netlify.app",
    }
)  # fmt: skip


class CookieConflict(LookupError):
    """More than one cookie has the name asked for (from different domains
    or paths): give ``domain=`` or ``path=``."""


@dataclass(frozen=True, slots=True)
class Cookie:
    """One cookie in a jar.

    Attributes:
        name: Its name.
        value: Its value.
        domain: The host (``host_only``) or domain it is sent to.
        path: The path prefix it is sent for.
        host_only: Sent to ``domain`` exactly, not to its subdomains.
        secure: Sent over ``https`` only.
        http_only: ``HttpOnly`` was set (kept; it matters to browsers'
            scripts, not to a client).
        expires: When it expires (seconds since the epoch), or ``None``
            for a session cookie (kept as long as the jar).
    """

    name: str
    value: str
    domain: str
    path: str = "/"
    host_only: bool = True
    secure: bool = False
    http_only: bool = False
    expires: float | None = None
    created: float = field(default=0.0, compare=False, repr=False)


def _domain_matches(host: str, domain: str) -> bool:
    """RFC 6265 section 5.1.3."""
    if host == domain:
        return True
    return host.endswith("." + domain) and not _is_ip(host)


def _path_matches(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 section 5.1.4."""
    if request_path == cookie_path:
        return True
    if request_path.startswith(cookie_path):
        return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"
    return False


def _default_path(path: str) -> str:
    """RFC 6265 section 5.1.4: the request path's directory."""
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[: path.rindex("/")]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


@functools.cache
def _suffix_list() -> Callable[[str], str | None] | None:
    """The Public Suffix List's lookup (the longest public suffix of a
    name), when the ``publicsuffixlist`` package is installed; loaded once,
    at the first ``Domain`` checked."""
    try:
        module = importlib.import_module("publicsuffixlist")
    except ImportError:
        return None
    lookup: Callable[[str], str | None] = module.PublicSuffixList().publicsuffix
    return lookup


def _is_public_suffix(domain: str) -> bool:
    lookup = _suffix_list()
    if lookup is None:
        return "." not in domain or domain in _KNOWN_SUFFIXES
    return lookup(domain) == domain


def _expiry(attributes: dict[str, str], now: float) -> float | None:
    """Max-Age (which wins) or Expires, as an instant; ``None`` for a
    session cookie."""
    if "max-age" in attributes:
        text = attributes["max-age"]
        if text.lstrip("-").isdigit():
            seconds = int(text)
            return now + seconds if seconds > 0 else 0.0
    if "expires" in attributes:
        try:
            return parsedate_to_datetime(attributes["expires"]).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None  # an unparseable date is ignored (section 5.2.1)
    return None


class Cookies(MutableMapping[str, str]):
    """A cookie jar: what a client keeps between requests, and a mapping of
    names to values (``jar["session"]``, ``jar.get("session")``,
    ``jar.set(...)``, ``del jar["session"]``, ``jar.clear()``).

    Args:
        cookies: Cookies to start with, by name (for any host, path ``/``).
        max_cookies: The most cookies kept (default 3000); beyond, the
            oldest go first.

    Raises:
        ValueError: ``max_cookies`` is less than 1.
    """

    def __init__(
        self, cookies: Mapping[str, str] | None = None, *, max_cookies: int = DEFAULT_MAX_COOKIES
    ) -> None:
        if isinstance(max_cookies, bool) or not isinstance(max_cookies, int) or max_cookies < 1:
            raise ValueError(f"max_cookies must be an int >= 1, not {max_cookies!r}")
        self._max = max_cookies
        self._jar: dict[tuple[str, str, str], Cookie] = {}
        for name, value in (cookies or {}).items():
            self.set(name, value)

    # -- what the client does -------------------------------------------------------

    def extract(self, url: str, headers: Headers) -> None:
        """Store the ``Set-Cookie`` fields of the response to ``url``."""
        values = headers.get_all("set-cookie")
        if not values:
            return
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        secure = parts.scheme == "https"
        now = time.time()
        for value in values:
            cookie = self._parse(value, host, parts.path or "/", secure, now)
            if cookie is not None:
                self._store(cookie, now)

    def header(self, url: str) -> str | None:
        """The ``Cookie`` field for a request to ``url``, or ``None``."""
        if not self._jar:
            return None
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        path = parts.path or "/"
        secure = parts.scheme == "https"
        now = time.time()
        chosen = []
        for key, cookie in list(self._jar.items()):
            if cookie.expires is not None and cookie.expires <= now:
                del self._jar[key]
                continue
            if cookie.secure and not secure:
                continue
            if not cookie.domain:
                pass  # set by hand without a domain: for every host
            elif cookie.host_only:
                if host != cookie.domain:
                    continue
            elif not _domain_matches(host, cookie.domain):
                continue
            if not _path_matches(path, cookie.path):
                continue
            chosen.append(cookie)
        if not chosen:
            return None
        chosen.sort(key=lambda cookie: (-len(cookie.path), cookie.created))
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in chosen)

    def _parse(self, text: str, host: str, path: str, secure: bool, now: float) -> Cookie | None:
        """RFC 6265 section 5.2, then 5.3's checks; ``None`` to ignore it."""
        pair, *rest = text.split(";")
        if "=" not in pair:
            return None
        name, _, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not name or len(name) + len(value) > _MAX_COOKIE_SIZE:
            return None
        if any(char in name + value for char in "\0\r\n\x7f"):
            return None
        attributes: dict[str, str] = {}
        for item in rest:
            key, _, attribute = item.partition("=")
            attributes[key.strip().lower()] = attribute.strip()
        domain = attributes.get("domain", "").lower().removeprefix(".")
        host_only = not domain
        if host_only:
            domain = host
        elif _is_ip(host):
            if domain != host:
                return None
            host_only = True
        elif not _domain_matches(host, domain) or (_is_public_suffix(domain) and domain != host):
            return None
        elif _is_public_suffix(domain):
            host_only = True  # the host is itself a suffix: for it alone
        cookie_path = attributes.get("path", "")
        if not cookie_path.startswith("/"):
            cookie_path = _default_path(path)
        is_secure = "secure" in attributes
        if is_secure and not secure:
            return None  # RFC 6265bis: only a secure origin sets a Secure cookie
        if name.startswith("__Secure-") and not is_secure:
            return None
        if name.startswith("__Host-") and not (
            is_secure and host_only and cookie_path == "/" and "domain" not in attributes
        ):
            return None
        return Cookie(
            name,
            value,
            domain,
            cookie_path,
            host_only=host_only,
            secure=is_secure,
            http_only="httponly" in attributes,
            expires=_expiry(attributes, now),
            created=now,
        )

    def _store(self, cookie: Cookie, now: float) -> None:
        key = (cookie.domain, cookie.path, cookie.name)
        old = self._jar.pop(key, None)
        if cookie.expires is not None and cookie.expires <= now:
            return  # an expiry in the past deletes it (section 5.3 step 11)
        if old is not None:
            cookie = replace(cookie, created=old.created)  # its place in the order stays
        self._jar[key] = cookie
        same_domain = [k for k in self._jar if k[0] == cookie.domain]
        for extra in same_domain[: max(0, len(same_domain) - _MAX_PER_DOMAIN)]:
            del self._jar[extra]
        while len(self._jar) > self._max:
            del self._jar[next(iter(self._jar))]

    # -- the mapping ----------------------------------------------------------------

    @property
    def jar(self) -> list[Cookie]:
        """Every cookie, as :class:`Cookie` records (for inspection)."""
        return list(self._jar.values())

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        """Set a cookie by hand (``domain=""``: sent to every host).

        Args:
            name: Its name.
            value: Its value.
            domain: The host it is for (and only that host), or ``""``.
            path: The path it is for.
        """
        key = (domain.lower(), path, name)
        old = self._jar.pop(key, None)
        created = old.created if old is not None else time.time()
        self._jar[key] = Cookie(name, value, domain.lower(), path, created=created)

    def get(  # type: ignore[override]
        self,
        name: str,
        default: str | None = None,
        domain: str | None = None,
        path: str | None = None,
    ) -> str | None:
        """The value of the cookie ``name`` (of ``domain`` and ``path`` when
        given), else ``default``.

        Raises:
            CookieConflict: Several cookies match.
        """
        found = self._find(name, domain, path)
        if len(found) > 1:
            raise CookieConflict(f"{len(found)} cookies are named {name!r}: give domain= or path=")
        return found[0].value if found else default

    def delete(self, name: str, domain: str | None = None, path: str | None = None) -> None:
        """Remove the cookies named ``name`` (of ``domain`` and ``path``
        when given); nothing if there is none."""
        for cookie in self._find(name, domain, path):
            del self._jar[(cookie.domain, cookie.path, cookie.name)]

    def clear(self, domain: str | None = None) -> None:
        """Remove every cookie, or those of ``domain``."""
        if domain is None:
            self._jar.clear()
            return
        for key in [key for key in self._jar if key[0] == domain.lower()]:
            del self._jar[key]

    def _find(self, name: str, domain: str | None, path: str | None) -> list[Cookie]:
        return [
            cookie
            for cookie in self._jar.values()
            if cookie.name == name
            and (domain is None or cookie.domain == domain.lower())
            and (path is None or cookie.path == path)
        ]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        if not self._find(name, None, None):
            raise KeyError(name)
        self.delete(name)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(cookie.name for cookie in self._jar.values()))

    def __len__(self) -> int:
        return len(dict.fromkeys(cookie.name for cookie in self._jar.values()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{c.name}={c.value!r} for {c.domain or '*'}{c.path}" for c in self.jar)
        return f"<Cookies [{shown}]>"


#: What ``cookies=`` accepts: a :class:`Cookies` jar, or names to values.
CookiesInput = Cookies | Mapping[str, str]
