"""httpbin (the HTTP request and response service, from PyPI) on loopback,
for the client's interop tests: served by waitress, a WSGI server we did not
write, on a port the system picks, printed as ``httpbin listening on PORT``.
Runs until killed::

    python tests/programs/httpbin_server.py
"""

from __future__ import annotations

import logging

import httpbin
import waitress

logging.getLogger("waitress").setLevel(logging.ERROR)

server = waitress.create_server(httpbin.app, host="127.0.0.1", port=0, threads=4)
print(f"httpbin listening on {server.effective_port}", flush=True)
server.run()
