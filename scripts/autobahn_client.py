"""trionet's WebSocket client as Autobahn|Testsuite's testee: echo every
message of every case the suite's fuzzing server runs.

    scripts/autobahn client [quick|default|full] -- uv run python scripts/autobahn_client.py

``scripts/autobahn`` starts the fuzzing server and sets ``$AUTOBAHN_URL``
(its ``ws://`` address) and ``$AUTOBAHN_AGENT`` (the name its reports file
our results under). The protocol is the suite's: a message from
``/getCaseCount`` says how many cases there are; ``/runCase?case=i&agent=A``
is case i, for i from 1, where the suite sends and we echo; opening
``/updateReports?agent=A`` makes it write the reports.

Many cases fail the connection on purpose (a bad frame, invalid UTF-8, a bad
close code): trionet must then close with the right code, which ends the
loop with :exc:`trionet.websocket.WebSocketClosed`, and the suite judges what
went over the wire. That is the expected end of those cases, not an error
here. Anything else a case raises is a trionet bug the suite may not see: it
is printed, the run goes on, and the exit status is 1.
"""

from __future__ import annotations

import os
import sys
import traceback
from urllib.parse import quote

import trio

import trionet

# The 9.* cases send messages of up to 16 MiB, past the 1 MiB default.
MAX_MESSAGE_SIZE = 16 * 1024 * 1024

# Seconds one case may take before it is abandoned as hung: the suite's own
# timeouts end a case within seconds; the 9.* cases move 16 MiB messages, which
# takes a few seconds on a loaded two-core machine. Far above both, so that
# only a hang trips it.
CASE_TIMEOUT = 120.0

# Seconds the suite may take to answer a control request (/getCaseCount,
# /updateReports writes every report; a few seconds for the full set).
CONTROL_TIMEOUT = 120.0


async def case_count(url: str) -> int:
    with trio.fail_after(CONTROL_TIMEOUT):
        async with trionet.websocket.connect(f"{url}/getCaseCount") as ws:
            message = await ws.receive()
    return int(message.data)


async def run_case(url: str, case: int, agent: str) -> None:
    """Echo every message of case ``case`` until the suite closes."""
    async with trionet.websocket.connect(
        f"{url}/runCase?case={case}&agent={quote(agent)}",
        max_message_size=MAX_MESSAGE_SIZE,
        max_queued_bytes=MAX_MESSAGE_SIZE,
        compression=True,
    ) as ws:
        async for message in ws:
            await ws.send(message.data)


async def update_reports(url: str, agent: str) -> None:
    with trio.fail_after(CONTROL_TIMEOUT):
        async with trionet.websocket.connect(f"{url}/updateReports?agent={quote(agent)}") as ws:
            # The suite writes the reports, then closes.
            async for _ in ws:
                pass


async def main() -> int:
    url = os.environ["AUTOBAHN_URL"].rstrip("/")
    agent = os.environ.get("AUTOBAHN_AGENT", "trionet")
    count = await case_count(url)
    print(f"autobahn client: {count} cases", file=sys.stderr, flush=True)
    errors = 0
    for case in range(1, count + 1):
        with trio.move_on_after(CASE_TIMEOUT) as scope:
            try:
                await run_case(url, case, agent)
            except trionet.websocket.WebSocketClosed:
                pass  # the case failed the connection, as it meant to
            except Exception:
                errors += 1
                print(f"autobahn client: case {case} raised:", file=sys.stderr)
                traceback.print_exc()
        if scope.cancelled_caught:
            errors += 1
            print(f"autobahn client: case {case} hung for {CASE_TIMEOUT:g} s", file=sys.stderr)
    await update_reports(url, agent)
    if errors:
        print(f"autobahn client: {errors} cases raised or hung", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(trio.run(main))
