"""Twisted's SOCKS4 server (``twisted.protocols.socks``, which takes SOCKS4a
names too) on loopback, for the client's socks4a tests: it listens on a port
the system picks, printed as ``socks4 listening on PORT``, then prints one line
per connection it is asked for, before it connects: ``socks4 USER -> NAME:PORT``
when the client sent a name for the proxy to resolve (SOCKS4a), ``socks4 USER
-> ADDRESS:PORT`` when it sent an address. Runs until killed::

    python tests/programs/twisted_socks4_server.py
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import protocol, reactor
from twisted.protocols import socks


class _Resolving:
    """The reactor as the SOCKS protocol sees it, noting each name it is
    asked to resolve (only a SOCKS4a request asks)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def resolve(self, name: bytes) -> Any:
        self.names.append(name.decode("ascii"))
        return reactor.resolve(name)  # type: ignore[attr-defined]


class _Reporting(socks.SOCKSv4):
    def __init__(self) -> None:
        self._resolving = _Resolving()
        super().__init__(reactor=self._resolving)

    def authorize(self, code: int, server: str, port: int, user: bytes) -> bool:
        asked = self._resolving.names[-1] if self._resolving.names else server
        print(f"socks4 {user.decode()} -> {asked}:{port}", flush=True)
        return True


class _Factory(protocol.Factory):
    def buildProtocol(self, addr: Any) -> _Reporting:
        return _Reporting()


def main() -> None:
    listening = reactor.listenTCP(0, _Factory(), interface="127.0.0.1")  # type: ignore[attr-defined]
    print(f"socks4 listening on {listening.getHost().port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    main()
