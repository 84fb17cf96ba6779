"""URLs as the client sees them: request targets, origins, proxies and their
credentials (RFC 3986, RFC 9110 section 4.2, RFC 7617). No I/O.

A request URL is parsed once into a :class:`Target` (the cleaned absolute
URL, its :class:`Origin`, the request target and the ``user:password@``
credentials as an ``Authorization`` value); the origin, with the proxy it is
reached through, is the pool's key.
"""

from __future__ import annotations

import base64
import functools
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, quote, unquote, urlencode, urlsplit, urlunsplit

from ..._addresses import ascii_host
from ..._listeners import format_address, host_header
from ._errors import UnsupportedProxy

__all__ = [
    "Origin",
    "PoolKey",
    "Proxy",
    "QueryParams",
    "Target",
    "add_params",
    "basic_credentials",
    "environment_proxy",
    "parse_url",
    "proxy_bypass",
]

#: Query parameters: a mapping or ``(name, value)`` pairs; a mapping's value
#: may be a list for a repeated parameter.
QueryParams = (
    Mapping[str, str | int | float | Iterable[str | int | float]]
    | Iterable[tuple[str, str | int | float]]
)

# NO_PROXY matching as urllib does it (typeshed does not list the function).
proxy_bypass: Callable[[str, dict[str, str]], bool] = vars(urllib.request)[
    "proxy_bypass_environment"
]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where requests go: scheme, host and port (RFC 6454's origin)."""

    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        """The ``Host`` field, which is also the URL's authority."""
        return host_header(self.host, self.port, 443 if self.scheme == "https" else 80)

    def __str__(self) -> str:
        return f"{self.scheme}://{format_address((self.host, self.port))}"


#: Proxy schemes and their default ports: an HTTP proxy (``https``: TLS to
#: the proxy), and SOCKS ones (``h`` and ``a``: the proxy resolves the name,
#: as curl spells it).
PROXY_SCHEMES = {
    "http": 80,
    "https": 443,
    "socks5": 1080,
    "socks5h": 1080,
    "socks4": 1080,
    "socks4a": 1080,
}


@dataclass(frozen=True, slots=True)
class Proxy:
    """A proxy: its kind, its address, and the credentials of its URL."""

    url: str
    host: str
    port: int
    authorization: str | None
    scheme: str = "http"
    username: str | None = None
    password: str | None = None

    @property
    def socks(self) -> bool:
        """Whether it is a SOCKS proxy (a tunnel for every origin)."""
        return self.scheme not in ("http", "https")

    @property
    def tls(self) -> bool:
        """Whether the connection to the proxy itself runs TLS (``https``)."""
        return self.scheme == "https"

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """A proxy from its URL, ``scheme://[user:password@]host[:port]``,
        the scheme one of :data:`PROXY_SCHEMES`.

        Raises:
            UnsupportedProxy: Another scheme.
            ValueError: The URL has no host, a bad port, or a host name
                that is no valid internationalised name.
        """
        parts = urlsplit(url if "://" in url else f"http://{url}")
        scheme = parts.scheme.lower()
        if scheme not in PROXY_SCHEMES:
            raise UnsupportedProxy(
                f"{parts.scheme}:// proxies are not supported by trionet's client, only"
                f" http://, https://, socks5://, socks5h://, socks4:// and socks4a:// ones:"
                f" {url!r}"
            )
        if not parts.hostname:
            raise ValueError(f"no host in the proxy URL {url!r}")
        try:
            port = parts.port or PROXY_SCHEMES[scheme]
        except ValueError:
            raise ValueError(f"a bad port in the proxy URL {url!r}") from None
        # IDNA 2008, as the lookup and SNI carry it, so messages name the same.
        host = ascii_host(parts.hostname)
        shown = f"{scheme}://{format_address((host, port))}"
        if scheme in ("http", "https"):
            return cls(shown, host, port, basic_credentials(parts), scheme)
        username = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        if username is not None and password is None:
            password = ""  # socks5://user@host: RFC 1929 with an empty password
        return cls(shown, host, port, None, scheme, username, password)


def environment_proxy(
    scheme: str, host: str, environment: Mapping[str, str] | None = None
) -> Proxy | None:
    """The proxy the environment names for ``scheme://host`` (``http`` or
    ``https``), as curl reads it: ``<scheme>_proxy``, else ``all_proxy``
    (either case), unless ``no_proxy`` lists the host.

    Args:
        scheme: ``"http"`` or ``"https"``.
        host: The origin's host.
        environment: What ``urllib.request.getproxies_environment()`` gave
            (read now when not given).

    Returns:
        The proxy, or ``None``.

    Raises:
        UnsupportedProxy: The variable names a scheme not supported; the
            message names the variable and the ways around it.
    """
    if environment is None:
        environment = urllib.request.getproxies_environment()
    variable = f"{scheme}_proxy" if scheme in environment else "all_proxy"
    url = environment.get(variable.removesuffix("_proxy"))
    if not url or proxy_bypass(host, dict(environment)):
        return None
    try:
        return Proxy.parse(url)
    except UnsupportedProxy as exc:
        raise UnsupportedProxy(
            f"the environment's {variable.upper()} (or {variable}) names a proxy"
            f" trionet's client cannot use: {exc}. Unset it, list {host} in"
            " NO_PROXY, or pass trust_env=False (proxy=None for a WebSocket)"
        ) from None


def basic_credentials(parts: SplitResult) -> str | None:
    """The ``Authorization`` value (RFC 7617 Basic) for the ``user:password@``
    of a URL, or ``None`` when it has none."""
    if parts.username is None:
        return None
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(credentials.encode()).decode("ascii")


#: A pool key: the origin, and the proxy it is reached through. Plain
#: ``http`` through a proxy is keyed by the proxy alone (origin ``None``):
#: such a connection carries requests for any host.
PoolKey = tuple[Origin | None, Proxy | None]


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed request URL."""

    url: str
    origin: Origin
    target: str
    authorization: str | None


def parse_url(url: str) -> Target:
    """Split an absolute ``http``/``https`` URL into what a request needs.

    Raises:
        ValueError: It is not one.
        TypeError: It is not a ``str``.
    """
    if not isinstance(url, str):
        raise TypeError(f"a URL is a str, not {url!r}")
    return _parse_str_url(url)


# A client usually asks the same few URLs again and again.
@functools.lru_cache(maxsize=256)
def _parse_str_url(url: str) -> Target:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"not an http:// or https:// URL: {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in the URL {url!r}")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"a bad port in the URL {url!r}") from None
    if ":" not in host:
        try:
            host = ascii_host(host)
        except ValueError as exc:
            raise ValueError(f"a bad host name in the URL {url!r}: {exc}") from None
    # Non-ASCII and spaces in the path or query are percent-encoded (RFC
    # 3986 section 2.1); what is already encoded stays as it is.
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=~?")
    target = f"{path}?{query}" if query else path
    authorization = basic_credentials(parts)
    origin = Origin(scheme, host, port)
    clean = urlunsplit((scheme, origin.host_header, path, query, ""))
    return Target(clean, origin, target, authorization)


def add_params(url: str, params: QueryParams) -> str:
    """``url`` with ``params`` added to its query."""
    pairs: list[tuple[str, str]] = []
    items = params.items() if isinstance(params, Mapping) else params
    for name, value in items:
        if isinstance(value, str | int | float):
            pairs.append((name, str(value)))
        else:
            pairs.extend((name, str(each)) for each in value)
    if not pairs:
        return url
    parts = urlsplit(url)
    query = urlencode(pairs)
    query = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit(parts._replace(query=query))
