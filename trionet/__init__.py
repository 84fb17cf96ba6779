"""trionet: Node.js-style networking for trio, with structured concurrency.

TCP, Unix sockets and TLS (Node's ``net`` and ``tls``), UDP sockets and
sessions (Node's ``dgram``), and HTTP/HTTPS servers (:mod:`trionet.http`) are
here, with TLS contexts in :mod:`trionet.tls`; WebSocket follows the same
contract: every server runs in a nursery,
every connection is supervised, and every connection is read with
``async for event in conn``.
"""

from . import http as http
from . import metrics as metrics
from . import tls as tls
from . import websocket as websocket
from ._errors import BindError as BindError
from ._errors import ConnectError as ConnectError
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import ConnectionReset as ConnectionReset
from ._errors import ConnectTimeout as ConnectTimeout
from ._errors import TLSError as TLSError
from ._events import Data as Data
from ._events import EndOfStream as EndOfStream
from ._events import StreamEvent as StreamEvent
from ._events import Timeout as Timeout
from ._proxy import ProxyHeader as ProxyHeader
from ._proxy import ProxySSL as ProxySSL
from ._proxy._accept import DEFAULT_MAX_PROXY_HEADER_SIZE as DEFAULT_MAX_PROXY_HEADER_SIZE
from ._proxy._accept import DEFAULT_PROXY_HEADER_TIMEOUT as DEFAULT_PROXY_HEADER_TIMEOUT
from ._run import run as run
from ._server import DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS
from ._server import DEFAULT_SHUTDOWN_GRACE as DEFAULT_SHUTDOWN_GRACE
from ._server import Server as Server
from ._server import ServerStatistics as ServerStatistics
from ._server import SocketAddress as SocketAddress
from ._stream import DEFAULT_CLOSE_TIMEOUT as DEFAULT_CLOSE_TIMEOUT
from ._stream import ConnectionStatistics as ConnectionStatistics
from ._stream import TCPConnection as TCPConnection
from ._tcp import connect_tcp as connect_tcp
from ._tcp import connect_unix as connect_unix
from ._tcp import serve_tcp as serve_tcp
from ._tcp import serve_unix as serve_unix
from ._udp import DEFAULT_MAX_DATAGRAM_SIZE as DEFAULT_MAX_DATAGRAM_SIZE
from ._udp import DEFAULT_UDP_IDLE_TIMEOUT as DEFAULT_UDP_IDLE_TIMEOUT
from ._udp import DEFAULT_UDP_MAX_QUEUED_BYTES as DEFAULT_UDP_MAX_QUEUED_BYTES
from ._udp import DEFAULT_UDP_QUEUE_SIZE as DEFAULT_UDP_QUEUE_SIZE
from ._udp import Datagram as Datagram
from ._udp import PeerStatistics as PeerStatistics
from ._udp import PortUnreachable as PortUnreachable
from ._udp import UDPPeer as UDPPeer
from ._udp import UDPServer as UDPServer
from ._udp import UDPSocket as UDPSocket
from ._udp import UDPStatistics as UDPStatistics
from ._udp import connect_udp as connect_udp
from ._udp import open_udp_socket as open_udp_socket
from ._udp import serve_udp as serve_udp
from ._version import __version__ as __version__
from ._workers import Worker as Worker
from ._workers import WorkerError as WorkerError
from ._workers import WorkerPool as WorkerPool
from ._workers import WorkerPoolStatistics as WorkerPoolStatistics
from ._workers import WorkerStatistics as WorkerStatistics
from ._workers import current_worker as current_worker
from ._workers import run_workers as run_workers
from ._workers import serve_workers as serve_workers
from .tls._stream import DEFAULT_TLS_HANDSHAKE_TIMEOUT as DEFAULT_TLS_HANDSHAKE_TIMEOUT
from .tls._stream import TLSInfo as TLSInfo

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_DATAGRAM_SIZE",
    "DEFAULT_MAX_PROXY_HEADER_SIZE",
    "DEFAULT_PROXY_HEADER_TIMEOUT",
    "DEFAULT_SHUTDOWN_GRACE",
    "DEFAULT_TLS_HANDSHAKE_TIMEOUT",
    "DEFAULT_UDP_IDLE_TIMEOUT",
    "DEFAULT_UDP_MAX_QUEUED_BYTES",
    "DEFAULT_UDP_QUEUE_SIZE",
    "BindError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "ConnectionReset",
    "ConnectionStatistics",
    "Data",
    "Datagram",
    "EndOfStream",
    "PeerStatistics",
    "PortUnreachable",
    "ProxyHeader",
    "ProxySSL",
    "Server",
    "ServerStatistics",
    "SocketAddress",
    "StreamEvent",
    "TCPConnection",
    "TLSError",
    "TLSInfo",
    "Timeout",
    "UDPPeer",
    "UDPServer",
    "UDPSocket",
    "UDPStatistics",
    "Worker",
    "WorkerError",
    "WorkerPool",
    "WorkerPoolStatistics",
    "WorkerStatistics",
    "__version__",
    "connect_tcp",
    "connect_udp",
    "connect_unix",
    "current_worker",
    "open_udp_socket",
    "run",
    "run_workers",
    "serve_tcp",
    "serve_udp",
    "serve_unix",
    "serve_workers",
]
