"""The seed's WebSocket client in trionet: connect to ``/updates``, send a
greeting, print what arrives.

    uv run python examples/ws_client.py [--url ws://127.0.0.1:12010/updates]
                                        [--count N]

The Node original::

    var socket = new WebSocket('ws://127.0.0.1:12010/updates');
    socket.onopen = function () {
      setInterval(function () {
        if (socket.bufferedAmount == 0) socket.send(getUpdateData());
      }, 50);
    };
    socket.onmessage = function (event) { console.log(event.data); };

``--count`` stops after that many messages (default: run until the server
closes or Ctrl-C).
"""

import argparse

import trionet


async def main(url: str, count: int | None) -> None:
    async with trionet.websocket.connect(url) as ws:
        await ws.send("hello from trionet")
        received = 0
        async for message in ws:
            print(message.data, flush=True)
            received += 1
            if count is not None and received >= count:
                break
    print(f"closed with {ws.close_code}", flush=True)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:12010/updates")
    parser.add_argument("--count", type=int, default=None)
    args = parser.parse_args()
    # Ctrl-C or SIGTERM ends it quietly, with exit status 0.
    trionet.run(main, args.url, args.count)


if __name__ == "__main__":
    cli()
