"""A Flask application for the WSGI tests (``trionet serve --wsgi``).

``/`` answers with the worker's pid and the environ's ``wsgi.*`` flags;
``/echo`` echoes a JSON body and the query's arguments; ``/stream`` streams
two pieces, the second only once the test sets ``PROCEED``; ``/upload``
reads a large body in pieces; ``/environ`` shows the CGI variables;
``/boom`` raises; ``/stuck`` blocks (nothing releases it: a call a shutdown
must give up on).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request

app = Flask(__name__)

# Set by the test once it has read the stream's first piece.
PROCEED = threading.Event()
# Never set: /stuck waits on it.
STUCK = threading.Event()
# A hang guard only: the test sets PROCEED long before.
PATIENCE = 20.0


@app.get("/")
def index() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "multithread": request.environ["wsgi.multithread"],
        "multiprocess": request.environ["wsgi.multiprocess"],
    }


@app.post("/echo")
def echo() -> dict[str, Any]:
    return {"received": request.get_json(), "args": request.args.to_dict(flat=False)}


@app.get("/stream")
def stream() -> Response:
    def pieces() -> Iterator[str]:
        yield "first\n"
        if not PROCEED.wait(PATIENCE):
            raise RuntimeError("the test never read the first piece")
        yield "second\n"

    return Response(pieces(), mimetype="text/plain")


@app.post("/upload")
def upload() -> dict[str, Any]:
    digest = hashlib.sha256()
    size = pieces = 0
    while piece := request.stream.read(65536):
        digest.update(piece)
        size += len(piece)
        pieces += 1
    return {"size": size, "sha256": digest.hexdigest(), "pieces": pieces}


@app.route("/environ", methods=["GET", "POST"])
def environ() -> dict[str, Any]:
    return {
        key: value
        for key, value in request.environ.items()
        if isinstance(value, str | bool | int | tuple) and not key.startswith("werkzeug.")
    }


@app.get("/boom")
def boom() -> str:
    raise RuntimeError("the view failed")


@app.get("/stuck")
def stuck() -> str:
    print("stuck request started", flush=True)
    STUCK.wait(PATIENCE)
    return "released"
