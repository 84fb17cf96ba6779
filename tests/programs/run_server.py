"""A server program run by ``tests/test_run.py`` under :func:`trionet.run`,
with real signals. ``POST /slow`` reads its whole body before answering, so a
test can hold a request in flight for as long as it keeps the body's last
bytes back; ``GET /forever`` never answers. Every step is a line on stdout
that the test waits for (no sleeps)::

    python tests/programs/run_server.py GRACE
"""

from __future__ import annotations

import signal
import sys
from functools import partial

import trio

import trionet
import trionet.http


async def app(request: trionet.http.Request) -> trionet.http.Response:
    print(f"handling {request.method} {request.target}", flush=True)
    if request.target == "/forever":
        await trio.sleep_forever()
    body = await request.read()
    return trionet.http.Response(200, body=b"got " + body)


async def main() -> None:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(partial(trionet.http.serve, app, 0, "127.0.0.1"))
        print(f"listening on {server.port}", flush=True)


def on_signal(signum: signal.Signals, forced: bool) -> None:
    print(f"{signum.name} {'forced' if forced else 'graceful'}", flush=True)


if __name__ == "__main__":
    trionet.run(main, grace=float(sys.argv[1]), on_signal=on_signal)
    print("exited", flush=True)
