"""REDbot, Mark Nottingham's HTTP linter (https://redbot.org), run against
``examples/http_hello.py``: it must find no errors in our responses.

REDbot runs as its own command line, ``python -m redbot.cli -o har URL``,
which prints a HAR document whose entry carries REDbot's notes
(``_red_messages``), each with a level: ``GOOD``, ``INFO``, ``WARN`` or
``BAD``. A ``BAD`` note fails the test; warnings are allowed (today the only
one is ``FRESHNESS_HEURISTIC``: like Node's, the example sends no
``Cache-Control``, which is the application's choice).

Every request stays on loopback: the command line allows local addresses,
fetches no ``robots.txt``, and follows links only with ``--assets`` (not
passed); its extra checks (content negotiation, validators, ranges) request
the same URL again."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio

import trionet
from tests._peers import missing
from tests._process import EXAMPLES, read_port, running

# Every test here runs under each request parser (h11, httptools).
pytestmark = pytest.mark.usefixtures("http_parser")

# Seconds a REDbot run may take: about two on loopback (mostly starting
# Python), with a wide margin for a loaded machine.
REDBOT_TIMEOUT = 60.0

# Every level REDbot's HAR output names (httplint's ``levels``): a level we do
# not know would be one we cannot judge.
LEVELS = {"GOOD", "INFO", "WARN", "BAD"}


@pytest.fixture
def redbot() -> list[str]:
    """The command running REDbot. Without it, the test is skipped; on CI
    (``CI=true``) it fails instead, so that the lint never silently stops."""
    try:
        found = importlib.util.find_spec("redbot.cli") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        missing("redbot", "uv sync --group dev")
    return [sys.executable, "-m", "redbot.cli"]


async def lint(redbot: list[str], url: str) -> dict[str, Any]:
    """REDbot's HAR entry for ``url``; fails the test if REDbot could not
    fetch it."""
    with trio.fail_after(REDBOT_TIMEOUT):
        result = await trio.run_process(
            [*redbot, "-o", "har", url], capture_stdout=True, capture_stderr=True, check=False
        )
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 0, f"redbot exited {result.returncode}: {stderr}"
    log = json.loads(result.stdout)["log"]
    assert "_red_error" not in log, log["_red_error"]
    if not log["entries"]:
        # The HAR output leaves out a failed fetch, and why it failed; the
        # text output says.
        with trio.fail_after(REDBOT_TIMEOUT):
            text = await trio.run_process(
                [*redbot, "-o", "text", url], capture_stdout=True, check=False
            )
        pytest.fail(f"redbot could not fetch {url}: {text.stdout.decode('utf-8', 'replace')}")
    entry: dict[str, Any]
    [entry] = log["entries"]
    assert entry["request"]["url"] == url
    return entry


def notes(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Every note in a HAR entry, subnotes included."""

    def walk(found: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for note in found:
            yield note
            yield from walk(note.get("subnotes", []))

    found = list(walk(entry["_red_messages"]))
    unknown = [note for note in found if note["level"] not in LEVELS]
    assert not unknown, f"notes of levels this test does not know: {unknown}"
    return found


def describe(found: list[dict[str, Any]]) -> str:
    return "\n".join(f"{note['note_id']} ({note['subject']}): {note['summary']}" for note in found)


async def test_redbot_finds_no_errors_in_http_hello(redbot: list[str]) -> None:
    command = [sys.executable, str(EXAMPLES / "http_hello.py"), "--port", "0"]
    async with running(command) as (_, output):
        port = await read_port(output, r"^Server running at http://127\.0\.0\.1:(\d+)/$")
        url = f"http://127.0.0.1:{port}/"
        entry = await lint(redbot, url)
    assert entry["response"]["status"] == 200
    assert entry["response"]["content"]["mimeType"] == "text/plain"
    found = notes(entry)
    errors = [note for note in found if note["level"] == "BAD"]
    assert not errors, f"redbot found errors in {url}:\n{describe(errors)}"
    # REDbot did judge the framing and the clock, not just fetch the page.
    good = {note["note_id"] for note in found if note["level"] == "GOOD"}
    assert {"CL_CORRECT", "DATE_CORRECT"} <= good, describe(found)


# A response REDbot must call an error: a Date that is not an HTTP date.
BAD_DATE_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Date: yesterday\r\n"
    b"Content-Type: text/plain\r\n"
    b"Content-Length: 12\r\n"
    b"\r\n"
    b"Hello World\n"
)


async def test_redbot_errors_are_seen(
    redbot: list[str], trionet_tcp_server: Callable[..., Awaitable[trionet.Server]]
) -> None:
    # The test above passes when no note is BAD: this one shows that a BAD
    # note does reach it, so that it cannot pass by reading REDbot wrong.
    async def bad_date(conn: trionet.TCPConnection) -> None:
        head = b""
        async for event in conn:
            if isinstance(event, trionet.Data):
                head += event.data
                if b"\r\n\r\n" in head:
                    break
        await conn.send(BAD_DATE_RESPONSE)

    server = await trionet_tcp_server(bad_date)
    entry = await lint(redbot, f"http://127.0.0.1:{server.port}/")
    errors = {note["note_id"] for note in notes(entry) if note["level"] == "BAD"}
    assert errors == {"BAD_DATE_SYNTAX"}
