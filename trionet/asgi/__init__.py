"""ASGI applications on trio (``trionet serve module:app``): Starlette,
FastAPI, Quart-Trio and any other ASGI 3 application, on trionet's HTTP and
WebSocket server; and WSGI ones (Flask, Django) in threads, through
:func:`from_wsgi` (``trionet serve --wsgi module:app``).

``await nursery.start(trionet.asgi.serve, app, 8000)`` serves ``app``;
:func:`load_app` finds one named ``"module:attribute"`` as the command line
does. See :doc:`/asgi`.
"""

from ._http import ClientDisconnected as ClientDisconnected
from ._lifespan import LifespanError as LifespanError
from ._load import AppLoadError as AppLoadError
from ._load import ASGIApp as ASGIApp
from ._load import load_app as load_app
from ._scope import ASGI_VERSION as ASGI_VERSION
from ._serve import DEFAULT_LIFESPAN_TIMEOUT as DEFAULT_LIFESPAN_TIMEOUT
from ._serve import HTTPServeOptions as HTTPServeOptions
from ._serve import serve as serve
from ._wsgi import DEFAULT_WSGI_THREADS as DEFAULT_WSGI_THREADS
from ._wsgi import from_wsgi as from_wsgi

__all__ = [
    "ASGI_VERSION",
    "DEFAULT_LIFESPAN_TIMEOUT",
    "DEFAULT_WSGI_THREADS",
    "ASGIApp",
    "AppLoadError",
    "ClientDisconnected",
    "HTTPServeOptions",
    "LifespanError",
    "from_wsgi",
    "load_app",
    "serve",
]
