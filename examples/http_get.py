"""The seed's Node ``http.request`` in trionet: GET a URL, print the status,
the header fields and the body.

    uv run python examples/http_get.py [URL]   (default http://127.0.0.1:12010/)

The Node original::

    var http = require('http');
    var req = http.request({hostname: '127.0.0.1', port: 12010, path: '/'}, function (res) {
      console.log('STATUS: ' + res.statusCode);
      console.log('HEADERS: ' + JSON.stringify(res.headers));
      res.setEncoding('utf8');
      res.on('data', function (chunk) { console.log(chunk); });
    });
    req.end();
"""

import sys

import trio

import trionet.http


async def main(url: str) -> None:
    async with (
        trionet.http.Client() as client,
        # http.request(...) and its 'response' event: the status and headers
        # arrive first, the body is read as it comes ('data' events).
        client.stream("GET", url) as response,
    ):
        print(f"STATUS: {response.status}")
        print(f"HEADERS: {dict(response.headers.items())}")
        async for chunk in response:
            print(chunk.decode(response.encoding, errors="replace"), end="")


if __name__ == "__main__":
    try:
        trio.run(main, sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:12010/")
    except trionet.http.HTTPError as exc:
        sys.exit(f"http_get: {exc}")
