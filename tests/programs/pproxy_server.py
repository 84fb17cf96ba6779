"""pproxy (a proxy server from PyPI) on loopback, for the client's proxy
tests: it listens with the proxy URI given (``socks5://127.0.0.1:0``,
``socks4://...``, ``socks5://127.0.0.1:0#user:password``, ``http://...``, or
``http+ssl://...`` for an HTTP proxy over TLS, which needs a PEM file of a
key and its certificate chain as the second argument) on a port the system
picks, printed as ``pproxy listening on PORT``, then prints one line per
connection it relays (``socks5 CLIENT -> DESTINATION``: what the client
asked for, a name or an address). Runs until killed::

    python tests/programs/pproxy_server.py socks5://127.0.0.1:0
    python tests/programs/pproxy_server.py http+ssl://127.0.0.1:0 proxy.pem
"""

from __future__ import annotations

import asyncio
import sys

import pproxy
import pproxy.server


async def main(uri: str, certificate: str | None) -> None:
    server = pproxy.Server(uri)
    if certificate is not None:
        # pproxy keeps the TLS contexts its URIs made in a module list; its
        # command line loads --ssl into them the same way.
        for context in pproxy.server.sslcontexts:
            context.load_cert_chain(certificate)
    handler = await server.start_server({"rserver": [], "verbose": print})
    port = handler.sockets[0].getsockname()[1]
    print(f"pproxy listening on {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
