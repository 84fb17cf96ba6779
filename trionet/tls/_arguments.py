"""Checking the arguments of :func:`~trionet.tls.server_context` and
:func:`~trionet.tls.client_context`: each returns the value to use, or
raises ``ValueError`` saying what is wrong."""

from __future__ import annotations

import collections.abc
import ipaddress
import os
import ssl

from .._addresses import ascii_host

__all__ = ["check_alpn", "check_minimum_version", "check_pair", "check_server_name"]

# TLS 1.0 and 1.1 are deprecated (RFC 8996) and refused by every current
# browser; RFC 9325 asks for 1.2 or newer. Only 1.2 and 1.3 may be the floor.
_ALLOWED_MINIMUM_VERSIONS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)


def check_minimum_version(version: ssl.TLSVersion) -> ssl.TLSVersion:
    if version not in _ALLOWED_MINIMUM_VERSIONS:
        raise ValueError(
            f"minimum_version must be TLSVersion.TLSv1_2 or TLSv1_3, not {version!r}: "
            "TLS 1.0 and 1.1 are deprecated (RFC 8996)"
        )
    return version


def check_alpn(alpn: collections.abc.Sequence[str] | None) -> tuple[str, ...]:
    if alpn is None:
        return ()
    if isinstance(alpn, str | bytes):
        raise ValueError(f"alpn is a sequence of protocol names, such as ({alpn!r},)")
    for protocol in alpn:
        # RFC 7301 section 3.1: each name is 1 to 255 bytes.
        if not isinstance(protocol, str) or not 1 <= len(protocol.encode()) <= 255:
            raise ValueError(f"an ALPN protocol name is a str of 1 to 255 bytes, not {protocol!r}")
    return tuple(alpn)


def check_server_name(name: str) -> str:
    """The normalized form of an ``sni`` key, or a ``ValueError`` saying why not."""
    if not isinstance(name, str):
        raise ValueError(f"an sni name is a str, not {name!r}")
    normal = name.lower().removesuffix(".")
    if not normal.isascii():
        # An internationalised name: clients send its A-labels.
        wildcard, dot, rest = normal.partition(".")
        if wildcard == "*" and dot:
            normal = "*." + _sni_ascii(name, rest)
        else:
            normal = _sni_ascii(name, normal)
    labels = normal.split(".")
    if not all(labels):
        raise ValueError(f"sni name {name!r} has an empty label")
    if any("*" in label for label in labels[1:]) or ("*" in labels[0] and labels[0] != "*"):
        raise ValueError(
            f"in sni name {name!r}, a wildcard must be the whole leftmost label, "
            "as in '*.example.com'"
        )
    if labels == ["*"]:
        raise ValueError("sni name '*' matches nothing: the default certificate is certfile")
    try:
        ipaddress.ip_address(normal)
    except ValueError:
        return normal
    raise ValueError(
        f"sni name {name!r} is an IP address, which clients never send as a server "
        "name (RFC 6066 section 3): such connections get the default certificate"
    )


def _sni_ascii(name: str, host: str) -> str:
    try:
        return ascii_host(host).lower()
    except ValueError as exc:
        raise ValueError(f"sni name {name!r}: {exc}") from None


def check_pair(
    name: str, files: object
) -> tuple[str | os.PathLike[str], str | os.PathLike[str] | None]:
    if not (isinstance(files, tuple) and len(files) == 2):
        raise ValueError(f"sni[{name!r}] must be a (certfile, keyfile) pair, not {files!r}")
    return files
