"""An HTTP server that answers with who it believes the client is: the
client's address, the scheme and the host, as seen behind a proxy.

    uv run python examples/whoami.py --port 8080 [--host 127.0.0.1]
        [--proxy-protocol [v1|v2|auto]] [--proxy-allow-from LIST]
        [--forwarded-allow-ips LIST] [--cert server.crt --key server.key]

Every request gets a plain-text answer such as::

    client: 203.0.113.7:51234
    scheme: https
    host: example.com
    peer: 127.0.0.1:40312
    proxy: -

``client`` is who the server believes sent the request; ``peer`` is the
address the request came from (with a PROXY protocol header, the client that
header names); ``proxy`` is the socket's own peer when a PROXY header
replaced it. ``--proxy-protocol`` reads the header a load balancer such as
HAProxy (``send-proxy-v2``) or nginx's ``stream`` module (``proxy_protocol
on``) sends first, believed from ``--proxy-allow-from`` (default: this
machine); ``--forwarded-allow-ips`` names the proxies whose ``Forwarded`` or
``X-Forwarded-For`` headers are believed (default: none). See the
deployment guide (``docs/deployment.rst``).
"""

import argparse
import ssl
from functools import partial

import trio

import trionet
import trionet.http
import trionet.tls


def _text(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else "-"


async def whoami(request: trionet.http.Request) -> trionet.http.Response:
    conn_proxy = request.proxy_header
    lines = [
        f"client: {_text(request.client)}",
        f"scheme: {request.scheme}",
        f"host: {request.host or '-'}",
        f"peer: {_text(request.remote_address)}",
        f"proxy: {'-' if conn_proxy is None else conn_proxy.family}",
    ]
    body = ("\n".join(lines) + "\n").encode()
    return trionet.http.Response(200, {"content-type": "text/plain; charset=utf-8"}, body)


async def main(
    host: str,
    port: int,
    context: ssl.SSLContext | None,
    proxy_protocol: str,
    proxy_allow_from: str,
    forwarded_allow_ips: str | None,
) -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                trionet.http.serve,
                whoami,
                port,
                host,
                ssl_context=context,
                proxy_protocol=proxy_protocol,
                proxy_allow_from=proxy_allow_from,
                forwarded_allow_ips=forwarded_allow_ips,
            )
        )
        scheme = "https" if context else "http"
        print(f"whoami at {scheme}://{host}:{server.port}/", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--proxy-protocol",
        nargs="?",
        const="auto",
        default="off",
        choices=["off", "v1", "v2", "auto"],
        help="read a PROXY protocol header first (alone: either version)",
    )
    parser.add_argument(
        "--proxy-allow-from",
        default="127.0.0.1,::1",
        help="the proxies whose PROXY header is believed (addresses, networks, comma-separated)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="the proxies whose Forwarded / X-Forwarded-* headers are believed (default: none)",
    )
    parser.add_argument("--cert", help="serve HTTPS with this PEM certificate chain")
    parser.add_argument("--key", help="and this PEM private key")
    args = parser.parse_args()
    context = None
    if args.cert or args.key:
        if not (args.cert and args.key):
            parser.error("--cert and --key go together")
        try:
            context = trionet.tls.server_context(args.cert, args.key)
        except (OSError, ssl.SSLError, ValueError) as exc:
            parser.error(str(exc))
    try:
        trionet.run(
            main,
            args.host,
            args.port,
            context,
            args.proxy_protocol,
            args.proxy_allow_from,
            args.forwarded_allow_ips,
        )
    except ValueError as exc:  # a malformed address list: a usage error, not a traceback
        parser.error(str(exc))


if __name__ == "__main__":
    cli()
