"""UDP: sockets (Node's ``dgram``) and supervised UDP sessions (``serve_udp``).

This package owns everything UDP:

* :mod:`._socket`: :class:`UDPSocket`, an async iterator of
  :class:`Datagram` with its fast path over the stdlib socket, its counters
  (:class:`UDPStatistics`) and :exc:`PortUnreachable`;
* :mod:`._open`: resolving, creating (through trio's socket factory when a
  custom one is installed) and binding sockets: :func:`open_udp_socket`,
  :func:`connect_udp` and the option checks;
* :mod:`._server`: :func:`serve_udp`, one :class:`UDPPeer` session per remote
  address on the shared server core.

``trionet`` re-exports the public names; :mod:`trionet.testing` and the CLI
import the rest from here.
"""

from ._open import bind_udp as bind_udp
from ._open import check_max_datagram_size as check_max_datagram_size
from ._open import connect_udp as connect_udp
from ._open import open_udp_socket as open_udp_socket
from ._server import DEFAULT_UDP_IDLE_TIMEOUT as DEFAULT_UDP_IDLE_TIMEOUT
from ._server import DEFAULT_UDP_MAX_QUEUED_BYTES as DEFAULT_UDP_MAX_QUEUED_BYTES
from ._server import DEFAULT_UDP_QUEUE_SIZE as DEFAULT_UDP_QUEUE_SIZE
from ._server import PeerStatistics as PeerStatistics
from ._server import UDPPeer as UDPPeer
from ._server import UDPServer as UDPServer
from ._server import check_udp_server_options as check_udp_server_options
from ._server import serve_udp as serve_udp
from ._server import serve_udp_socket as serve_udp_socket
from ._socket import DEFAULT_MAX_DATAGRAM_SIZE as DEFAULT_MAX_DATAGRAM_SIZE
from ._socket import Datagram as Datagram
from ._socket import PortUnreachable as PortUnreachable
from ._socket import UDPSocket as UDPSocket
from ._socket import UDPStatistics as UDPStatistics
