"""The server core every ``serve_*`` shares (:mod:`._core`) and the
:class:`~trionet.Server` it hands back (:mod:`._handle`)."""

from ._core import ServerCore as ServerCore
from ._core import accept_pending as accept_pending
from ._core import describe_callable as describe_callable
from ._handle import DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS
from ._handle import DEFAULT_SHUTDOWN_GRACE as DEFAULT_SHUTDOWN_GRACE
from ._handle import HandlerErrors as HandlerErrors
from ._handle import HandshakeFailed as HandshakeFailed
from ._handle import Server as Server
from ._handle import ServerRegistry as ServerRegistry
from ._handle import ServerStatistics as ServerStatistics
from ._handle import SocketAddress as SocketAddress
from ._handle import check_server_options as check_server_options
from ._handle import current_registry as current_registry

__all__ = [
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_SHUTDOWN_GRACE",
    "HandlerErrors",
    "HandshakeFailed",
    "Server",
    "ServerCore",
    "ServerRegistry",
    "ServerStatistics",
    "SocketAddress",
    "accept_pending",
    "check_server_options",
    "current_registry",
    "describe_callable",
]
