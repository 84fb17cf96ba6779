"""``trionet get URL``: an HTTP client on the command line, built on
:class:`trionet.http.Client`.

``--trace`` prints, on standard error, what happens after you type a URL, as
it happens and measured by the client itself: the name lookup, the TCP
connect, the TLS handshake, the request as sent, each redirect, the response
head, the time to the first byte, and the total.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import IO, Any

import trio

from .. import http
from ._io import USAGE_ERROR, Failure, run_command, say, tls_context

__all__ = ["add_command"]

# The exit status of --fail for a status of 400 or more: curl's.
_FAILED_STATUS = 22

# A progress bar is shown for downloads to a file that pass this size.
_PROGRESS_FROM = 1024 * 1024

_EPILOG = """\
examples:
  trionet get http://127.0.0.1:12010/
  trionet get --trace https://127.0.0.1:12443/ --cafile ~/.cache/trionet/dev-cert/cert.pem
  trionet get -X PUT -H 'Content-Type: application/json' -d '{"a": 1}' http://127.0.0.1:12010/x
  trionet get -o page.html http://127.0.0.1:12010/

exit status: 0 when a response arrived (any status, unless --fail), 1 when the
request failed (the reason is printed on one line), 2 for a usage error (a
malformed URL, header or timeout), 22 with --fail and a status of 400 or more,
130 on Ctrl-C.
"""


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``trionet get``."""
    parser = commands.add_parser(
        "get",
        help="send an HTTP(S) request and print the response body (like curl)",
        description=(
            "Send an HTTP or HTTPS request with trionet.http.Client and print the response"
            " body on standard output. Redirects are followed; the body is decoded (gzip,"
            " deflate)."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("url", metavar="URL", help="an http:// or https:// URL")
    parser.add_argument(
        "-X",
        "--method",
        metavar="METHOD",
        help="the request method (default GET, or POST with -d)",
    )
    parser.add_argument(
        "-H",
        "--header",
        metavar="'NAME: VALUE'",
        action="append",
        default=[],
        help="a header field to send; repeat for more",
    )
    parser.add_argument(
        "-d",
        "--data",
        metavar="DATA",
        help="the request body; @FILE sends a file's contents, @- standard input",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the body to FILE instead of standard output (with a progress bar on a"
        " terminal for long downloads)",
    )
    parser.add_argument(
        "-i",
        "--include",
        action="store_true",
        help="print the status line and header fields before the body",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server's (nor an https:// proxy's) TLS certificate (testing only)",
    )
    parser.add_argument(
        "--cafile",
        metavar="FILE",
        help="trust the CA certificates in this PEM file instead of the system's (for the"
        " server and an https:// proxy)",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print each step on standard error, measured: name lookup, TCP connect, TLS"
        " handshake, request sent, redirects, status and headers, time to first byte, total",
    )
    parser.add_argument(
        "--no-follow",
        action="store_true",
        help="do not follow redirects; print the 3xx response itself",
    )
    parser.add_argument(
        "--max-redirects",
        metavar="N",
        type=int,
        default=http.DEFAULT_MAX_REDIRECTS,
        help=f"redirects to follow at most (default {http.DEFAULT_MAX_REDIRECTS})",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        help="connect, read and write timeout (default: connect 10 s, read and write 30 s)",
    )
    parser.add_argument(
        "--proxy",
        metavar="URL",
        help="send the request through this proxy: http://, https:// (TLS to the proxy,"
        " verified as the server is), socks5h://, socks5://, socks4a:// or socks4://"
        " (default: $HTTP_PROXY, $HTTPS_PROXY, $ALL_PROXY, minus $NO_PROXY)",
    )
    parser.add_argument(
        "-f",
        "--fail",
        action="store_true",
        help="exit with status 22, printing no body, when the status is 400 or more",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``trionet get``; return the exit status."""
    return run_command("get", partial(_get, args))


def _body(data: str | None) -> bytes | None:
    if data is None:
        return None
    if data == "@-":
        return sys.stdin.buffer.read()
    if data.startswith("@"):
        return Path(data[1:]).expanduser().read_bytes()
    return data.encode()


def _headers(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, colon, field = value.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"a header is 'NAME: VALUE', not {value!r}")
        pairs.append((name.strip(), field.strip()))
    return pairs


async def _get(args: argparse.Namespace) -> int:
    try:
        headers = _headers(args.header)
        body = _body(args.data)
        context = tls_context(args, alpn=["http/1.1"]) if args.cafile or args.insecure else None
        tracer = _Tracer() if args.trace else None
        client = http.Client(
            ssl_context=context,
            timeout=http.Timeouts.of(args.timeout)
            if args.timeout is not None
            else http.DEFAULT_TIMEOUTS,
            follow_redirects=not args.no_follow,
            max_redirects=args.max_redirects,
            proxy=args.proxy,
            trace=tracer,
        )
        method = args.method or ("POST" if body is not None else "GET")
    except (ValueError, TypeError) as exc:  # a bad header, timeout or proxy URL
        raise Failure(str(exc), USAGE_ERROR) from None
    except OSError as exc:  # a file that cannot be read (or a CA file loaded)
        raise Failure(
            f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)
        ) from None
    try:
        async with (
            client,
            client.stream(method, args.url, headers=headers, content=body) as response,
        ):
            if args.fail and response.status >= 400:
                say("get", f"the server answered {response.status} {response.reason}")
                return _FAILED_STATUS
            if args.include:
                _print_head(response)
            received = await _write_body(response, args.output)
            if tracer is not None:
                tracer.body(received)
    except http.HTTPError as exc:
        raise Failure(str(exc)) from None
    except (ValueError, TypeError) as exc:  # a URL that is not http(s)
        raise Failure(str(exc), USAGE_ERROR) from None
    except OSError as exc:  # the output file
        raise Failure(f"{exc.strerror or exc}: {exc.filename or args.output}") from None
    if tracer is not None:
        tracer.finish()
    return 0


def _print_head(response: http.ClientResponse) -> None:
    out = sys.stdout.buffer
    out.write(f"HTTP/{response.http_version} {response.status} {response.reason}\r\n".encode())
    for name, value in response.headers:
        out.write(f"{name}: {value}\r\n".encode("latin-1"))
    out.write(b"\r\n")
    out.flush()


async def _write_body(response: http.ClientResponse, output: str | None) -> int:
    received = 0
    if output is None:
        out = sys.stdout.buffer
        async for chunk in response:
            out.write(chunk)
            out.flush()
            received += len(chunk)
        return received
    progress = _Progress(response) if sys.stderr.isatty() else None
    # One task, nothing else to serve meanwhile: a blocking local write is
    # what the loop would wait for anyway.
    with open(output, "wb") as file:  # noqa: ASYNC230
        async for chunk in response:
            file.write(chunk)
            received += len(chunk)
            if progress is not None:
                progress.update(received)
    if progress is not None:
        progress.done(received)
    return received


class _Progress:
    """A one-line progress bar on the terminal (standard error)."""

    def __init__(self, response: http.ClientResponse) -> None:
        length = response.headers.get("content-length")
        encoded = "content-encoding" in response.headers
        self._total = int(length) if length and length.isdigit() and not encoded else None
        self._shown = False
        self._last = -1

    def update(self, received: int) -> None:
        if received < _PROGRESS_FROM and not self._shown:
            return
        self._shown = True
        if self._total:
            percent = min(100, received * 100 // self._total)
            if percent == self._last:
                return
            self._last = percent
            bar = "#" * (percent // 4)
            line = f"\r[{bar:<25}] {percent:3d}% {_size(received)} of {_size(self._total)}"
        else:
            line = f"\r{_size(received)}"
        _write_terminal(line)

    def done(self, received: int) -> None:
        if self._shown:
            _write_terminal(f"\r{_size(received)} received{' ' * 30}\n")


def _write_terminal(text: str, stream: IO[str] | None = None) -> None:
    stream = stream or sys.stderr
    stream.write(text)
    stream.flush()


def _size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


class _Tracer:
    """Prints the client's trace steps on standard error as they happen."""

    def __init__(self) -> None:
        self._started = trio.current_time()
        self._received = 0

    def _say(self, text: str) -> None:
        elapsed = trio.current_time() - self._started
        print(f"[{elapsed * 1000:8.1f} ms] {text}", file=sys.stderr, flush=True)

    def __call__(self, step: str, details: Mapping[str, Any]) -> None:
        if step == "dns":
            addresses = ", ".join(details["addresses"])
            self._say(
                f"* name lookup: {details['host']} -> {addresses} ({_ms(details['seconds'])})"
            )
        elif step == "connect":
            self._say(
                f"* TCP connected to {details['address']} port {details['port']}"
                f" (three-way handshake, {_ms(details['seconds'])})"
            )
        elif step == "proxy":
            self._say(
                f"* tunnel to {details['tunnel']} through {details['proxy']}"
                f" ({_ms(details['seconds'])})"
            )
        elif step == "tls":
            alpn = f", ALPN {details['alpn']}" if details["alpn"] else ""
            checked = (
                f"certificate verified for {details['server_hostname']}"
                if details["verified"]
                else "certificate NOT verified (--insecure)"
            )
            with_proxy = f" with the proxy {details['proxy']}" if details.get("proxy") else ""
            self._say(
                f"* TLS handshake{with_proxy}: {details['version']} {details['cipher']}{alpn},"
                f" {checked} ({_ms(details['seconds'])})"
            )
        elif step == "request":
            reuse = " (reusing a kept-alive connection)" if details["reused"] else ""
            self._say(f"* request for {details['url']}{reuse}")
            self._say(f"> {details['method']} {details['target']} HTTP/1.1")
            for name, value in details["headers"]:
                self._say(f">   {name}: {value}")
        elif step == "sent":
            self._say(f"* request sent ({_ms(details['seconds'])})")
        elif step == "response":
            self._say(
                f"< HTTP/{details['http_version']} {details['status']} {details['reason']}"
                f" (time to first byte {_ms(details['first_byte'])},"
                f" head complete {_ms(details['seconds'])})"
            )
            for name, value in details["headers"]:
                self._say(f"<   {name}: {value}")
        elif step == "redirect":
            self._say(
                f"* redirect {details['status']}: following {details['method']} {details['to']}"
            )

    def body(self, received: int) -> None:
        self._received = received

    def finish(self) -> None:
        total = trio.current_time() - self._started
        self._say(f"* done: {self._received} bytes of body, total {_ms(total)}")
