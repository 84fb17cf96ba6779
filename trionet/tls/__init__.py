"""TLS for every trionet protocol: contexts for servers and clients, and the
TLS layer of a stream.

* :func:`server_context` / :func:`client_context` / :class:`ServerContext`
  build the :class:`ssl.SSLContext` objects the servers and clients take as
  ``ssl_context=`` (certificates by name, mutual TLS, reload): see
  :mod:`trionet.tls._contexts`.
* :mod:`trionet.tls._stream` wraps a stream in TLS with a deadline, and
  describes the session (:class:`~trionet.TLSInfo`) and its failures.
* :mod:`trionet.tls._devcert` makes the self-signed development certificate
  ``trionet demo`` serves HTTPS with.
"""

from ._contexts import ServerContext as ServerContext
from ._contexts import client_context as client_context
from ._contexts import server_context as server_context

__all__ = ["ServerContext", "client_context", "server_context"]
