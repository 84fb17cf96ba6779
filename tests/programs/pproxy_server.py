"""pproxy (a proxy server from PyPI) on loopback, for the client's SOCKS
tests: it listens with the proxy URI given (``socks5://127.0.0.1:0``,
``socks4://...``, ``socks5://127.0.0.1:0#user:password``...) on a port the
system picks, printed as ``pproxy listening on PORT``, then prints one line
per connection it relays (``socks5 CLIENT -> DESTINATION``: what the client
asked for, a name or an address). Runs until killed::

    python tests/programs/pproxy_server.py socks5://127.0.0.1:0
"""

from __future__ import annotations

import asyncio
import sys

import pproxy


async def main(uri: str) -> None:
    server = pproxy.Server(uri)
    handler = await server.start_server({"rserver": [], "verbose": print})
    port = handler.sockets[0].getsockname()[1]
    print(f"pproxy listening on {port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(main(sys.argv[1]))
