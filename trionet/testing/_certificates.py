"""TLS certificates for tests (kept apart from the plugin so that importing
``trionet.testing`` does not need pytest)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

__all__ = ["TLSCertificates"]


@dataclass(frozen=True)
class TLSCertificates:
    """TLS contexts from a throwaway certificate authority (trustme).

    Attributes:
        server_context: Serves a certificate for ``localhost``, ``127.0.0.1``
            and ``::1``.
        client_context: Trusts that authority (and verifies hostnames).
        ca: The ``trustme.CA``, to issue more certificates (client ones...).
        hostname: ``"localhost"``, the name to connect to for verification.
    """

    server_context: ssl.SSLContext
    client_context: ssl.SSLContext
    ca: Any
    hostname: str = "localhost"
