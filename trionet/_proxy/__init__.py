"""The PROXY protocol (HAProxy's, versions 1 and 2): a sans-IO parser and
encoder in :mod:`._protocol`."""

from ._protocol import V1_MAX_SIZE as V1_MAX_SIZE
from ._protocol import V2_SIGNATURE as V2_SIGNATURE
from ._protocol import ProxyHeader as ProxyHeader
from ._protocol import ProxyHeaderError as ProxyHeaderError
from ._protocol import ProxySSL as ProxySSL
from ._protocol import encode_v1 as encode_v1
from ._protocol import encode_v2 as encode_v2
from ._protocol import parse_proxy_header as parse_proxy_header

__all__ = [
    "V1_MAX_SIZE",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderError",
    "ProxySSL",
    "encode_v1",
    "encode_v2",
    "parse_proxy_header",
]
