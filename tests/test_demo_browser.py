"""``trionet demo``'s page in a real browser: headless Chromium, driven by
``tests/node/demo_browser.js`` through playwright-core, loads ``GET /`` from
a running demo, over ``http://`` and over ``https://`` with the development
certificate, and uses it as a person would: it waits for live updates to
arrive over the page's WebSocket, types into the echo box, presses Send and
sees the server's echo appear.

The browser trusts the development certificate the way
``tests/test_ws_browser.py`` trusts trustme's: by its public key
(``--ignore-certificate-errors-spki-list``), which accepts exactly that key
and verifies every other certificate as usual; see the comment there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from tests._node import run_node_lines
from tests.test_cli import demo, logged
from tests.test_ws_browser import (
    CHROMIUM,
    DRIVER_TIMEOUT_MS,
    RUN_TIMEOUT,
    require_browser,
    spki_sha256,
)

pytestmark = pytest.mark.node

MESSAGES = {"http": "héllo, 世界 🎉", "https": "over wss"}


@pytest.fixture(autouse=True)
def browser_available() -> None:
    require_browser()


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The development certificate goes to the test's own cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


async def browse(pages: list[dict[str, str]], spki: str) -> list[dict[str, Any]]:
    """Use each page in turn in one fresh headless Chromium; the driver's
    line for each (see ``tests/node/demo_browser.js``)."""
    config = {
        "chromium": str(CHROMIUM),
        "pages": pages,
        "updates": 2,
        "spkiList": [spki],
        "timeoutMs": DRIVER_TIMEOUT_MS,
    }
    with trio.fail_after(RUN_TIMEOUT):
        lines = await run_node_lines("demo_browser.js", json.dumps(config))
    assert [line.get("url") for line in lines] == [page["url"] for page in pages], lines
    return lines


async def test_the_page_shows_live_updates_and_echoes_over_ws_and_wss(
    private_cache: Path,
) -> None:
    async with demo() as running_demo:
        http, https = running_demo.port("HTTP"), running_demo.port("HTTPS")
        cert = private_cache / "trionet" / "dev-cert" / "cert.pem"
        spki = spki_sha256(await trio.Path(cert).read_bytes())
        pages = [
            {"url": f"http://127.0.0.1:{http}/", "message": MESSAGES["http"]},
            {"url": f"https://127.0.0.1:{https}/", "message": MESSAGES["https"]},
        ]
        lines = await browse(pages, spki)
        log = await running_demo.stop()

    for line, (scheme, port, ws) in zip(
        lines, [("http", http, "ws"), ("https", https, "wss")], strict=True
    ):
        assert "loadError" not in line, line
        assert line["title"] == "trionet demo"
        assert line["status"] == f"Connected to {ws}://127.0.0.1:{port}/updates"
        # The updates arrived one by one, newest first; the page was still
        # receiving them while the echo came.
        numbers = [int(text.split(":")[0].removeprefix("update ")) for text in line["updates"]]
        assert len(numbers) >= 2, line
        assert numbers == list(range(len(numbers), 0, -1)), line
        # The server's echo of what was typed (Python's repr, quotes and all).
        assert line["echo"] == f"echo: {MESSAGES[scheme]!r}"
        # No script error, no content-security-policy violation.
        assert line["console"] == [], line["console"]
        assert logged(log, rf"{scheme} +127\.0\.0\.1:\d+ GET / 200")
        assert logged(log, rf"{ws} +127\.0\.0\.1:\d+ open /updates")
    # Closing each page closed its WebSocket ("going away", as browsers say
    # on leaving a page), seen in the demo's log before Ctrl-C.
    for ws in ("ws", "wss"):
        assert logged(log, rf"{ws} +127\.0\.0\.1:\d+ closed 1001 \(going away\)")
