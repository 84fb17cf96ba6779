"""``trionet tcp``, ``trionet udp`` and ``trionet ws``: netcat- and
websocat-like clients that copy standard input to a connection and what
arrives to standard output.

Theory of operation
-------------------
Each command runs two tasks in one nursery: one copies stdin to the network,
the other the network to stdout. Whichever ends the conversation (the peer's
end of stream, a reset, the end of input plus a close or a wait) records the
exit status, prints its one line to stderr if it has one, and cancels the
other (:class:`Ending`). Expected errors are handled inside the tasks, so no
``ExceptionGroup`` reaches the user; errors while connecting are turned into
one line by :func:`run_command`.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import trio

from .._errors import ConnectionClosed, TLSError
from .._events import Data, EndOfStream
from .._listeners import format_address
from .._stream import TCPConnection
from .._tcp import connect_tcp
from .._udp import UDPSocket, connect_udp
from ..http._headers import Headers, is_token
from ..websocket import (
    CLEAN_CLOSE_CODES,
    BinaryMessage,
    TextMessage,
    WebSocketClosed,
    WebSocketConnection,
    close_code_name,
    connect,
)
from ._io import (
    USAGE_ERROR,
    Ending,
    Failure,
    Lines,
    Stdin,
    StdoutClosed,
    describe,
    run_command,
    tls_context,
    write_stdout,
)

__all__ = ["add_commands"]

# Bytes of a binary WebSocket message shown in hex; the length is always shown.
BINARY_PREVIEW = 64


def _tls_failure(what: str, exc: TLSError) -> Failure:
    hint = ""
    if "certificate" in exc.reason:
        hint = " (--cafile FILE trusts another CA; --insecure skips the check)"
    return Failure(f"TLS handshake with {what} failed: {exc.reason}{hint}")


def _check_tls_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace, use_tls: bool
) -> None:
    """``--cafile`` and ``--insecure`` on a connection without TLS are a
    usage error (exit 2, as argparse's own)."""
    if not use_tls and (args.cafile is not None or args.insecure):
        given = "--cafile" if args.cafile is not None else "--insecure"
        parser.error(f"{given} applies to TLS connections only")


# -- trionet tcp --------------------------------------------------------------------


async def _tcp_send(conn: TCPConnection, stdin: Stdin, ending: Ending) -> None:
    try:
        while chunk := await stdin.read():
            await conn.send(chunk)
        if conn.tls is None:
            await conn.send_eof()
        # trio cannot half-close TLS: keep the connection open and let the
        # server end it (see the docs).
    except ConnectionClosed as exc:  # ConnectionReset or TLSError: the reason says which
        ending.finish(1, exc.reason)


async def _tcp_receive(conn: TCPConnection, ending: Ending) -> None:
    try:
        async for event in conn:
            match event:
                case Data(data):
                    await write_stdout(data)
                case EndOfStream():
                    break
    except ConnectionClosed as exc:  # ConnectionReset or TLSError: the reason says which
        ending.finish(1, exc.reason)
    except StdoutClosed:
        ending.finish(1)
    else:
        ending.finish(0)


async def _tcp(args: argparse.Namespace) -> int:
    what = format_address((args.host, args.port))
    context = tls_context(args) if args.tls else None
    try:
        conn = await connect_tcp(
            args.host, args.port, ssl_context=context, connect_timeout=args.connect_timeout
        )
    except TLSError as exc:
        raise _tls_failure(what, exc) from None
    stdin = Stdin()
    async with conn:
        try:
            async with trio.open_nursery() as nursery:
                ending = Ending("tcp", nursery.cancel_scope)
                nursery.start_soon(_tcp_send, conn, stdin, ending)
                nursery.start_soon(_tcp_receive, conn, ending)
        finally:
            await stdin.aclose()
    return ending.status or 0


def _run_tcp(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    _check_tls_options(parser, args, args.tls)
    return run_command("tcp", partial(_tcp, args))


# -- trionet udp --------------------------------------------------------------------


async def _udp_send(sock: UDPSocket, linger: float, ending: Ending) -> None:
    stdin = Stdin()
    lines = Lines(stdin)
    try:
        last_sent: float | None = None
        try:
            while (line := await lines.next()) is not None:
                await sock.send(line)
                last_sent = trio.current_time()
        finally:
            await stdin.aclose()
        if last_sent is not None:
            await trio.sleep_until(last_sent + linger)
    except ConnectionClosed as exc:  # PortUnreachable
        ending.finish(1, exc.reason)
    except (ValueError, OSError) as exc:  # too large for a datagram; refused by the kernel
        ending.finish(1, describe(exc))
    except Failure as exc:
        ending.finish(exc.status, exc.message)
    else:
        ending.finish(0)


async def _udp_receive(sock: UDPSocket, ending: Ending) -> None:
    try:
        async for datagram in sock:
            await write_stdout(datagram.data + b"\n")
    except ConnectionClosed as exc:  # PortUnreachable
        ending.finish(1, exc.reason)
    except OSError as exc:
        ending.finish(1, describe(exc))
    except StdoutClosed:
        ending.finish(1)


async def _udp(args: argparse.Namespace) -> int:
    sock = await connect_udp(args.host, args.port)
    async with sock, trio.open_nursery() as nursery:
        ending = Ending("udp", nursery.cancel_scope)
        nursery.start_soon(_udp_receive, sock, ending)
        nursery.start_soon(_udp_send, sock, args.timeout, ending)
    return ending.status or 0


def _run_udp(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    return run_command("udp", partial(_udp, args))


# -- trionet ws ---------------------------------------------------------------------


def _show(message: TextMessage | BinaryMessage) -> str:
    """A received message as one line of output (without the newline)."""
    if isinstance(message, TextMessage):
        return message.data
    data = message.data
    preview = data[:BINARY_PREVIEW].hex()
    more = "..." if len(data) > BINARY_PREVIEW else ""
    return f"<binary {len(data)} bytes: {preview}{more}>"


def _close_text(code: int | None, reason: str | None) -> str:
    code = 1006 if code is None else code
    return f"{code} ({reason or close_code_name(code)})"


class _WebSocketSession:
    """The two directions of ``trionet ws``; ``closing`` is set once stdin
    ended and we started the close, so that the end of the receiving loop is
    ours, not the server's."""

    def __init__(self, ws: WebSocketConnection, binary: bool, ending: Ending) -> None:
        self.ws = ws
        self.binary = binary
        self.ending = ending
        self.closing = False

    async def send_lines(self) -> None:
        ws = self.ws
        encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
        stdin = Stdin()
        lines = Lines(stdin)
        try:
            while (line := await lines.next()) is not None:
                await ws.send(line if self.binary else line.decode(encoding, "replace"))
        except (WebSocketClosed, trio.ClosedResourceError):
            return  # the server ended it: receive_messages reports how
        except Failure as exc:
            self.ending.finish(exc.status, exc.message)
            return
        finally:
            await stdin.aclose()
        self.closing = True
        try:
            # 1000; what the server sends until it answers is still printed
            # (the echo of the last line), and receive_messages ends then.
            await ws.send_close()
        except (WebSocketClosed, trio.ClosedResourceError):
            pass  # the server had closed first: receive_messages reports it

    def _finish_our_close(self) -> None:
        ws = self.ws
        code = ws.close_code
        if code in CLEAN_CLOSE_CODES:
            self.ending.finish(0)
        elif code == 1006:
            self.ending.finish(1, f"the close did not complete: {ws.close_reason}")
        else:  # the server answered with a code of its own
            self.ending.finish(1, f"connection closed: {_close_text(code, ws.close_reason)}")

    async def receive_messages(self) -> None:
        ws = self.ws
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
        try:
            async for message in ws:
                line = _show(message) + "\n"
                await write_stdout(line.encode(encoding, "backslashreplace"))
        except WebSocketClosed as exc:
            if self.closing:
                self._finish_our_close()
            elif exc.code == 1006:
                self.ending.finish(1, f"connection lost: {exc.reason}")
            else:
                self.ending.finish(1, f"connection closed: {_close_text(exc.code, exc.reason)}")
            return
        except StdoutClosed:
            self.ending.finish(1)
            return
        if self.closing:
            self._finish_our_close()
        else:
            closed = _close_text(ws.close_code, ws.close_reason)
            self.ending.finish(0, f"closed by server: {closed}")


async def _ws(args: argparse.Namespace) -> int:
    # Without options, connect() verifies wss:// against the system's store.
    context = tls_context(args) if args.cafile is not None or args.insecure else None
    connected = False
    try:
        async with connect(
            args.url,
            subprotocols=args.subprotocol,
            headers=args.header,
            origin=args.origin,
            ssl_context=context,
        ) as ws:
            connected = True
            async with trio.open_nursery() as nursery:
                ending = Ending("ws", nursery.cancel_scope)
                session = _WebSocketSession(ws, args.binary, ending)
                nursery.start_soon(session.send_lines)
                nursery.start_soon(session.receive_messages)
    except ValueError as exc:
        if connected:
            raise
        raise Failure(str(exc), USAGE_ERROR) from None
    except TLSError as exc:
        if connected:
            raise
        raise _tls_failure(args.url, exc) from None
    return ending.status or 0


def _run_ws(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    _check_tls_options(parser, args, args.url.lower().startswith("wss://"))
    return run_command("ws", partial(_ws, args))


# -- the command line ---------------------------------------------------------------


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1..65535, not {port}")
    return port


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds < float("inf"):  # NaN fails this too
        raise argparse.ArgumentTypeError(f"seconds must be > 0, not {text}")
    return seconds


# An invalid field from the command line is a usage error: checked by the
# rules trionet sends fields by (RFC 9110 sections 5.5 and 5.6.2).


def _field_value(text: str) -> str:
    try:
        Headers([("origin", text)])._wire()
        text.encode("latin-1")
    except (ValueError, UnicodeEncodeError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a valid header value (Latin-1 text, no control characters)"
        ) from None
    return text


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not is_token(name):
        raise argparse.ArgumentTypeError(f"a header is 'Name: value', not {text!r}")
    return name, _field_value(value)


def _token(text: str) -> str:
    if not is_token(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a token (RFC 9110 section 5.6.2)")
    return text


def _add_tls_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--insecure",
        action="store_true",
        help=f"do not verify the server's certificate or name ({what} only; for testing)",
    )
    parser.add_argument(
        "--cafile",
        metavar="FILE",
        help=f"trust the CA certificates in this PEM file instead of the system's ({what} only)",
    )


def _add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    examples: str,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=f"examples:\n{examples}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``tcp``, ``udp`` and ``ws`` on the ``trionet`` command's
    subparsers; each sets ``run`` to a function of the parsed arguments that
    returns the exit status."""
    tcp = _add_parser(
        commands,
        "tcp",
        "connect to a TCP (or TLS) server; copy stdin to it and what it sends to stdout",
        "Connect to HOST:PORT over TCP, or TLS with --tls. Standard input goes to the\n"
        "server as it arrives (not line by line); everything the server sends goes to\n"
        "standard output. At the end of input the connection is half-closed (TLS: kept\n"
        "open, since TLS cannot half-close) and what still arrives is printed. Exits 0\n"
        "when the server ends the connection, 1 on an error or a reset.",
        "  trionet tcp 127.0.0.1 8124     (trionet demo's welcome server)\n"
        "  printf 'GET / HTTP/1.0\\r\\n\\r\\n' | trionet tcp 127.0.0.1 12010\n"
        "  trionet tcp --tls --cafile ca.pem localhost 8443",
    )
    tcp.add_argument("host", metavar="HOST", help="the server's name or address")
    tcp.add_argument("port", metavar="PORT", type=_port, help="the server's port")
    tcp.add_argument("--tls", action="store_true", help="speak TLS (the certificate is verified)")
    _add_tls_arguments(tcp, "with --tls")
    tcp.add_argument(
        "--connect-timeout",
        metavar="S",
        type=_seconds,
        default=None,
        help="give up connecting (TLS handshake included) after S seconds (default: the system's)",
    )
    tcp.set_defaults(run=partial(_run_tcp, tcp))

    udp = _add_parser(
        commands,
        "udp",
        "send each stdin line as a UDP datagram; print each datagram received",
        "Send each line of standard input (without its newline) as one datagram to\n"
        "HOST:PORT, and print each datagram that comes back from there, followed by a\n"
        "newline. At the end of input, wait --timeout seconds after the last datagram\n"
        "sent for late replies, then exit 0. Exits 1 when the server's port is\n"
        "unreachable (ICMP) or a line is too long for a datagram.",
        "  echo ping | trionet udp 127.0.0.1 41234     (trionet demo's UDP server)\n"
        "  trionet udp --timeout 5 127.0.0.1 53 < queries.txt",
    )
    udp.add_argument("host", metavar="HOST", help="the server's name or address")
    udp.add_argument("port", metavar="PORT", type=_port, help="the server's port")
    udp.add_argument(
        "--timeout",
        metavar="S",
        type=_seconds,
        default=1.0,
        help="seconds to wait for replies after the last datagram once input ends (default 1)",
    )
    udp.set_defaults(run=partial(_run_udp, udp))

    ws = _add_parser(
        commands,
        "ws",
        "an interactive WebSocket client: stdin lines out, messages in, one per line",
        "Open a WebSocket to URL (ws:// or wss://). Each line of standard input (without\n"
        "its newline) is sent as one text message (binary with --binary); each message\n"
        "received is printed as one line: text as it is, binary as\n"
        f"'<binary N bytes: HEX>' (the first {BINARY_PREVIEW} bytes in hex, then '...').\n"
        "At the end of input the connection is closed with 1000 and the command exits 0\n"
        "once the server answered. When the server closes first, a line on stderr says\n"
        "its code and reason; the status is 0 for 1000, 1001 and 1005, else 1.",
        "  trionet ws ws://127.0.0.1:12010/updates     (trionet demo's live updates)\n"
        "  trionet ws --subprotocol chat.v1 -H 'Authorization: Bearer T' wss://host/feed",
    )
    ws.add_argument("url", metavar="URL", help="ws://host[:port]/path or wss://...")
    ws.add_argument(
        "--subprotocol",
        metavar="P",
        type=_token,
        action="append",
        default=[],
        help="offer this subprotocol (repeat to offer several, preferred first)",
    )
    ws.add_argument(
        "-H",
        "--header",
        metavar="'NAME: VALUE'",
        type=_header,
        action="append",
        default=[],
        help="an extra header field for the upgrade request (repeatable)",
    )
    ws.add_argument("--origin", metavar="O", type=_field_value, help="send this Origin header")
    _add_tls_arguments(ws, "wss://")
    ws.add_argument(
        "--binary",
        action="store_true",
        help="send each line as a binary message (its bytes, as read) instead of text",
    )
    ws.set_defaults(run=partial(_run_ws, ws))
