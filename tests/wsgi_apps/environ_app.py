"""A plain WSGI application that answers with its environ (the string
values, and the body it read), served by trionet and by waitress in the
tests to compare the two. Run as a program, it serves itself with
waitress on a loopback port of the system's choice, with the URL prefix
given as its argument, and prints that port."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    body = environ["wsgi.input"].read()
    shown: dict[str, Any] = {
        key: value for key, value in environ.items() if isinstance(value, str | bool | tuple)
    }
    shown["body"] = body.decode("latin-1")
    answer = json.dumps(shown).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]


if __name__ == "__main__":
    import waitress

    server = waitress.create_server(app, host="127.0.0.1", port=0, url_prefix=sys.argv[1])
    print(f"waitress on port {server.effective_port}", flush=True)
    server.run()
