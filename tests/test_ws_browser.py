"""WebSocket with a real browser as the client: headless Chromium, driven by
``tests/node/ws_browser.js`` through playwright-core, loads a page that
trionet's HTTP server serves and opens a WebSocket back to it on the same
port (the upgrade in the same handler), over ``ws://`` and ``wss://``.

The page does the talking; the driver only loads it and prints the page's
report as one JSON line. What the browser received is compared here with
what was sent, and what trionet's side saw is recorded by the handler."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import trionet
import trionet.asgi
import trionet.http
import trionet.tls
import trionet.websocket
from tests._node import node_executable, node_package, run_node_lines
from tests._peers import missing

pytestmark = pytest.mark.node

# Debian's package (CI apt-get installs `chromium`); playwright-core drives it
# instead of downloading a browser of its own.
CHROMIUM = Path("/usr/bin/chromium")

ASGI_APPS = Path(__file__).resolve().parent / "asgi_apps"

# The driver's own deadline for a whole run (browser start included: a few
# seconds on a busy two-core machine), and ours, longer, so that the driver
# normally reports a stall itself, with the page's progress, before we stop it.
DRIVER_TIMEOUT_MS = 30_000
RUN_TIMEOUT = 45.0

# Seconds the server side may still take to finish after the browser is done
# (it finished before the browser saw the close; this only bounds a bug).
SERVER_TIMEOUT = 10.0

TEXT = "héllo, 世界 — WebSocket 🎉 from trionet"
BINARY = bytes(range(256)) + b"\x00\xff\x00"
BIG_BINARY = os.urandom(100 * 1024)
# 100 KiB of UTF-8 with one- to four-byte characters, compressible (Chromium
# offers permessage-deflate, and trionet agrees to it by default).
BIG_TEXT = ("0123456789abcdef é 世界 🎉 " * 4000).encode()[: 100 * 1024].decode("utf-8", "ignore")
CLOSE_REASON = "再见"


def require_browser() -> None:
    """Skip the test (fail it on CI) when Node, playwright-core or Chromium is
    missing. Call it outside trio, so that pytest reports why a test skipped."""
    node_executable()
    node_package("playwright-core")
    if not os.access(CHROMIUM, os.X_OK):
        missing("chromium", "apt-get install chromium")


@pytest.fixture(autouse=True)
def browser_available() -> None:
    require_browser()


# -- the page -------------------------------------------------------------------

# The page's script. Its configuration is a JSON block in the page: the
# WebSocket URL (absent: this page's own origin, path /echo) and the messages
# to send, each {"kind": "text", "data": str} or {"kind": "binary", "base64":
# str}. It sends each message and waits for its echo, closes with 1000, and
# resolves `window.result` with what happened; `window.progress` tells a
# stalled run's driver where it stopped.
PAGE_SCRIPT = r"""
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const progress = [];
window.progress = progress;

function fromBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function describe(data) {
  if (typeof data === "string") return { type: "string", data };
  if (data instanceof ArrayBuffer) return { type: "ArrayBuffer", base64: toBase64(data) };
  return { type: Object.prototype.toString.call(data) };
}

async function session() {
  const url = config.ws || location.origin.replace(/^http/, "ws") + "/echo";
  const report = { url, opened: false, error: false, echoes: [] };
  progress.push("connecting to " + url);
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const inbox = [];
  let wake = null;
  ws.addEventListener("message", (event) => {
    inbox.push(event.data);
    if (wake) wake();
  });
  ws.addEventListener("error", () => {
    report.error = true;
    progress.push("error event");
  });
  const closed = new Promise((resolve) => {
    ws.addEventListener("close", (event) => {
      progress.push("close event " + event.code);
      resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
      if (wake) wake();
    });
  });
  let isClosed = false;
  closed.then(() => { isClosed = true; });
  await Promise.race([new Promise((resolve) => ws.addEventListener("open", resolve)), closed]);
  if (ws.readyState === WebSocket.OPEN) {
    report.opened = true;
    report.protocol = ws.protocol;
    report.extensions = ws.extensions;
    progress.push("open");
    for (const message of config.messages) {
      ws.send(message.kind === "text" ? message.data : fromBase64(message.base64));
      progress.push("sent " + message.kind);
      while (inbox.length === 0 && !isClosed) {
        await new Promise((resolve) => { wake = resolve; });
        wake = null;
      }
      if (inbox.length === 0) break;  // closed before the echo came
      report.echoes.push(describe(inbox.shift()));
      progress.push("echoed " + message.kind);
    }
    if (!isClosed) ws.close(1000, config.closeReason);
  }
  report.close = await closed;
  report.unexpected = inbox.map(describe);
  return report;
}

window.result = session().catch((error) => ({ exception: String(error && error.stack || error) }));
"""


def page(config: dict[str, Any]) -> trionet.http.Response:
    """The page, with ``config`` for its script."""
    # "<" escaped, so that no "</script>" in the data can end the element.
    data = json.dumps(config).replace("<", "\\u003c")
    html = (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>trionet WebSocket</title>\n"
        f"<script id='config' type='application/json'>{data}</script>\n"
        f"<script>{PAGE_SCRIPT}</script>\n</head><body></body></html>\n"
    )
    return trionet.http.Response(200, {"content-type": "text/html; charset=utf-8"}, html)


def not_found() -> trionet.http.Response:
    return trionet.http.Response(404, {"content-type": "text/plain"}, "not found\n")


ECHO_MESSAGES: list[dict[str, str]] = [
    {"kind": "text", "data": TEXT},
    {"kind": "binary", "base64": base64.b64encode(BINARY).decode()},
    {"kind": "binary", "base64": base64.b64encode(BIG_BINARY).decode()},
    {"kind": "text", "data": BIG_TEXT},
]


# -- trionet's side -------------------------------------------------------------


@dataclass
class Session:
    """What trionet's side of one WebSocket saw."""

    origin: str | None
    received: list[trionet.websocket.Message] = field(default_factory=list)
    ended_cleanly: bool = False
    error: BaseException | None = None
    close_code: int | None = None
    close_reason: str | None = None
    done: trio.Event = field(default_factory=trio.Event)


def echo_app(sessions: list[Session]) -> Callable[[trionet.http.Request], Awaitable[Any]]:
    """``GET /`` the page; ``/echo`` upgraded, every message sent back as it
    came (text as text, binary as binary)."""

    async def app(request: trionet.http.Request) -> trionet.http.Response | None:
        if request.path == "/" and not request.is_websocket_upgrade:
            return page({"messages": ECHO_MESSAGES, "closeReason": CLOSE_REASON})
        if request.path != "/echo" or not request.is_websocket_upgrade:
            return not_found()
        ws = await request.accept_websocket()
        session = Session(request.headers.get("origin"))
        sessions.append(session)
        try:
            async for message in ws:
                session.received.append(message)
                await ws.send(message.data)
            session.ended_cleanly = True
        except trionet.websocket.WebSocketClosed as exc:
            session.error = exc
            raise
        finally:
            session.close_code = ws.close_code
            session.close_reason = ws.close_reason
            session.done.set()
        return None

    return app


async def start_server(
    nursery: trio.Nursery,
    app: Callable[[trionet.http.Request], Awaitable[Any]],
    ssl_context: ssl.SSLContext | None = None,
) -> trionet.Server:
    # handler_errors="raise": a bug in a handler fails the test (a peer's
    # misbehaviour, ConnectionClosed, does not).
    server: trionet.Server = await nursery.start(
        partial(
            trionet.http.serve,
            app,
            0,
            "127.0.0.1",
            ssl_context=ssl_context,
            handler_errors="raise",
        )
    )
    return server


async def browse(*urls: str, spki: list[str] | None = None) -> list[dict[str, Any]]:
    """Load ``urls`` in turn in one fresh headless Chromium; the driver's
    line for each (see ``tests/node/ws_browser.js``)."""
    config = {
        "chromium": str(CHROMIUM),
        "pages": list(urls),
        "spkiList": spki or [],
        "timeoutMs": DRIVER_TIMEOUT_MS,
    }
    with trio.fail_after(RUN_TIMEOUT):
        lines = await run_node_lines("ws_browser.js", json.dumps(config))
    assert [line.get("url") for line in lines] == list(urls), lines
    return lines


def report_of(line: dict[str, Any]) -> dict[str, Any]:
    assert "report" in line, f"the page did not load: {line}"
    report: dict[str, Any] = line["report"]
    assert "exception" not in report, f"the page's script failed: {report['exception']}"
    return report


def check_echo_session(line: dict[str, Any], sessions: list[Session], origin: str) -> None:
    report = report_of(line)
    assert report["opened"], line
    assert not report["error"], line
    # The browser's side: every echo came back exact and of its own type.
    echoes = report["echoes"]
    assert len(echoes) == len(ECHO_MESSAGES), line["console"]
    assert echoes[0] == {"type": "string", "data": TEXT}
    assert echoes[1] == {"type": "ArrayBuffer", "base64": base64.b64encode(BINARY).decode()}
    assert echoes[2]["type"] == "ArrayBuffer"
    big_binary = base64.b64decode(echoes[2]["base64"])
    assert len(big_binary) == len(BIG_BINARY)
    assert big_binary == BIG_BINARY
    assert echoes[3]["type"] == "string"
    assert len(echoes[3]["data"]) == len(BIG_TEXT)
    assert echoes[3]["data"] == BIG_TEXT
    assert report["unexpected"] == []
    # Chromium offers permessage-deflate; trionet agrees to it by default.
    assert report["extensions"].startswith("permessage-deflate"), report["extensions"]
    assert report["protocol"] == ""
    # The close the page started, answered by trionet: clean, with our code.
    assert report["close"] == {"code": 1000, "reason": CLOSE_REASON, "wasClean": True}

    # trionet's side: one session, from the page's origin, that received
    # exactly what was sent, and whose loop ended on the browser's close.
    assert len(sessions) == 1
    (session,) = sessions
    assert session.origin == origin
    assert session.received == [
        trionet.websocket.TextMessage(TEXT),
        trionet.websocket.BinaryMessage(BINARY),
        trionet.websocket.BinaryMessage(BIG_BINARY),
        trionet.websocket.TextMessage(BIG_TEXT),
    ]
    assert session.error is None
    assert session.ended_cleanly
    assert (session.close_code, session.close_reason) == (1000, CLOSE_REASON)


# -- ws:// ------------------------------------------------------------------------


async def test_browser_echo_over_ws(nursery: trio.Nursery) -> None:
    sessions: list[Session] = []
    server = await start_server(nursery, echo_app(sessions))
    origin = f"http://127.0.0.1:{server.port}"
    (line,) = await browse(origin + "/")
    with trio.fail_after(SERVER_TIMEOUT):
        for session in sessions:
            await session.done.wait()
    check_echo_session(line, sessions, origin)
    await server.shutdown()


# -- wss:// -----------------------------------------------------------------------

# A browser trusts a certificate when it chains to a root in its trust store:
# for Chromium on Linux the Chrome Root Store plus the user's NSS database
# (~/.pki/nssdb), neither of which a test may touch (they are the system's and
# the user's, shared by every browser run). Chromium's
# --ignore-certificate-errors-spki-list=<base64 SHA-256 of a
# SubjectPublicKeyInfo> is what a test can do instead: certificate errors
# (here, the unknown trustme issuer) are ignored only for a chain holding one
# of exactly those public keys, while every other certificate is verified as
# usual; the control test below shows a certificate of another key refused.
# That is narrower than playwright's ignoreHTTPSErrors, which accepts any
# certificate. It is not a full trust path: for the listed key, a host name
# mismatch is ignored too (checked by hand: a certificate for example.test
# only is accepted at https://127.0.0.1). Chromium honours the flag only with
# --user-data-dir, which playwright always passes (a fresh temporary profile).


@dataclass(frozen=True)
class TLSServer:
    context: ssl.SSLContext
    spki: str  # base64 SHA-256 of the server certificate's public key


def spki_sha256(cert_pem: bytes) -> str:
    """The base64 SHA-256 of a PEM certificate's SubjectPublicKeyInfo (what
    HPKP pins and Chromium's SPKI list are made of)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def tls_server(tmp_path: Path) -> TLSServer:
    """trionet's own server context (trionet.tls.server_context) for a
    trustme certificate for 127.0.0.1, from PEM files as a user's would be."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    certfile = tmp_path / "server.crt"
    keyfile = tmp_path / "server.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    keyfile.write_bytes(issued.private_key_pem.bytes())
    context = trionet.tls.server_context(certfile, keyfile)
    return TLSServer(context, spki_sha256(issued.cert_chain_pems[0].bytes()))


async def test_browser_echo_over_wss(nursery: trio.Nursery, tls_server: TLSServer) -> None:
    sessions: list[Session] = []
    server = await start_server(nursery, echo_app(sessions), tls_server.context)
    origin = f"https://127.0.0.1:{server.port}"
    (line,) = await browse(origin + "/", spki=[tls_server.spki])
    with trio.fail_after(SERVER_TIMEOUT):
        for session in sessions:
            await session.done.wait()
    check_echo_session(line, sessions, origin)
    assert report_of(line)["url"] == f"wss://127.0.0.1:{server.port}/echo"
    await server.shutdown()


async def test_browser_refuses_a_certificate_it_was_not_told_to_trust(
    nursery: trio.Nursery, tls_server: TLSServer
) -> None:
    """The control: the same server, the browser told to trust another key;
    the page does not load (so the test above passed by trusting exactly our
    key, not by ignoring certificate errors)."""
    sessions: list[Session] = []
    server = await start_server(nursery, echo_app(sessions), tls_server.context)
    other = trustme.CA().issue_cert("127.0.0.1")
    other_spki = spki_sha256(other.cert_chain_pems[0].bytes())
    (line,) = await browse(f"https://127.0.0.1:{server.port}/", spki=[other_spki])
    assert "report" not in line, line
    assert "ERR_CERT_AUTHORITY_INVALID" in line["loadError"], line
    assert sessions == []
    await server.shutdown()


# -- Origin -----------------------------------------------------------------------


async def test_browser_cross_origin_websocket_is_refused(nursery: trio.Nursery) -> None:
    """A page from one origin cannot open a WebSocket to an endpoint that
    admits only another origin (``accept_websocket(origins=[...])``): trionet
    answers the upgrade 403, the browser reports an error and close 1006, and
    no session starts. The same endpoint, opened from the origin it admits,
    works: the Origin the browser sends is what the allow-list holds."""
    attempts: list[tuple[str | None, int | None]] = []  # (Origin, refusal status)
    sessions: list[Session] = []
    guarded: dict[str, str] = {}

    async def guarded_app(request: trionet.http.Request) -> trionet.http.Response | None:
        if request.path == "/" and not request.is_websocket_upgrade:
            return page({"ws": guarded["url"], "messages": [], "closeReason": ""})
        if request.path != "/guarded" or not request.is_websocket_upgrade:
            return not_found()
        origin = request.headers.get("origin")
        try:
            ws = await request.accept_websocket(origins=[guarded["origin"]])
        except trionet.http.ProtocolError as exc:
            attempts.append((origin, exc.status))
            raise
        attempts.append((origin, None))
        session = Session(origin)
        sessions.append(session)
        try:
            async for message in ws:
                session.received.append(message)
            session.ended_cleanly = True
        finally:
            session.close_code = ws.close_code
            session.done.set()
        return None

    async def other_app(request: trionet.http.Request) -> trionet.http.Response | None:
        if request.path == "/":
            return page({"ws": guarded["url"], "messages": [], "closeReason": ""})
        return not_found()

    server = await start_server(nursery, guarded_app)
    other = await start_server(nursery, other_app)
    guarded["origin"] = f"http://127.0.0.1:{server.port}"
    guarded["url"] = f"ws://127.0.0.1:{server.port}/guarded"
    other_origin = f"http://127.0.0.1:{other.port}"

    refused, admitted = await browse(other_origin + "/", guarded["origin"] + "/")

    report = report_of(refused)
    assert report["url"] == guarded["url"]
    assert not report["opened"], refused
    assert report["error"], refused
    assert report["close"]["code"] == 1006, refused
    assert not report["close"]["wasClean"], refused
    # Chromium says why on the console: "... Unexpected response code: 403".
    assert any("response code: 403" in line for line in refused["console"]), refused["console"]

    report = report_of(admitted)
    assert report["opened"], admitted
    assert report["close"] == {"code": 1000, "reason": "", "wasClean": True}, admitted

    with trio.fail_after(SERVER_TIMEOUT):
        for session in sessions:
            await session.done.wait()
    assert attempts == [(other_origin, 403), (guarded["origin"], None)]
    assert [session.origin for session in sessions] == [guarded["origin"]]
    assert sessions[0].ended_cleanly
    assert sessions[0].close_code == 1000
    await server.shutdown()
    await other.shutdown()


# -- an ASGI application (Starlette) under trionet.asgi.serve ------------------------


async def test_browser_echo_over_ws_with_a_starlette_app(nursery: trio.Nursery) -> None:
    starlette_app = trionet.asgi.load_app("starlette_app:app", app_dir=str(ASGI_APPS))
    html = page({"messages": ECHO_MESSAGES, "closeReason": CLOSE_REASON}).body
    assert isinstance(html, bytes)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # The page at "/", and Starlette's echo (its route /ws) at the page's /echo.
        if scope["type"] == "http" and scope["path"] == "/":
            headers = [(b"content-type", b"text/html; charset=utf-8")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": html})
            return
        if scope["type"] == "websocket":
            scope = {**scope, "path": "/ws", "raw_path": b"/ws"}
        await starlette_app(scope, receive, send)

    server = await nursery.start(trionet.asgi.serve, app, 0, "127.0.0.1")
    (line,) = await browse(f"http://127.0.0.1:{server.port}/")
    report = report_of(line)
    assert report["opened"], line
    assert not report["error"], line
    assert report["extensions"].startswith("permessage-deflate"), report["extensions"]
    echoes = report["echoes"]
    assert len(echoes) == len(ECHO_MESSAGES), line["console"]
    assert echoes[0] == {"type": "string", "data": TEXT}
    assert echoes[1] == {"type": "ArrayBuffer", "base64": base64.b64encode(BINARY).decode()}
    assert base64.b64decode(echoes[2]["base64"]) == BIG_BINARY
    assert echoes[3] == {"type": "string", "data": BIG_TEXT}
    assert report["close"] == {"code": 1000, "reason": CLOSE_REASON, "wasClean": True}
    await server.shutdown()
