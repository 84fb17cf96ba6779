"""Finding the application: ``module:attribute`` as uvicorn and hypercorn
read it, an application factory, ASGI 2 applications, and (with ``wsgi``)
WSGI ones, served through :func:`~trionet.asgi.from_wsgi`.

An ASGI 2 application is a *double callable*: ``app(scope)`` returns an
instance, and ``await instance(receive, send)`` runs it (a class whose
instances are called, typically). It is recognised the way asgiref does it
(a class, or a callable whose ``__call__`` takes one argument), and wrapped
with asgiref's ``guarantee_single_callable`` when asgiref is installed, or
an equivalent adapter otherwise.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ._wsgi import from_wsgi

__all__ = ["ASGIApp", "AppLoadError", "as_asgi3", "load_app"]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

#: An ASGI 3 application: ``async def app(scope, receive, send)``.
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class AppLoadError(Exception):
    """The application named ``module:attribute`` cannot be loaded: the
    module does not import, has no such attribute, or it is not an ASGI
    application (or, with ``factory``, not a factory of one)."""


def _is_double_callable(app: object) -> bool:
    if inspect.isclass(app):
        return True  # ASGI 2: the class is called with the scope
    call: Any = app
    if not (inspect.isfunction(app) or inspect.ismethod(app)):
        call = getattr(app, "__call__", None)  # noqa: B004 (its signature is wanted)
    if call is None:
        return False
    if inspect.iscoroutinefunction(call):
        return False
    try:
        parameters = inspect.signature(call).parameters
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) == 1


def as_asgi3(app: Any) -> ASGIApp:
    """``app`` as an ASGI 3 application: itself, or an ASGI 2 one wrapped.

    Raises:
        AppLoadError: ``app`` is not callable.
    """
    if not callable(app):
        raise AppLoadError(f"{app!r} is not an ASGI application (not callable)")
    if not _is_double_callable(app):
        single: ASGIApp = app
        return single
    try:
        from asgiref.compatibility import (  # type: ignore[import-not-found,unused-ignore]
            guarantee_single_callable,
        )
    except ImportError:

        async def asgi3(scope: Scope, receive: Receive, send: Send) -> None:
            await app(scope)(receive, send)

        return asgi3
    wrapped: ASGIApp = guarantee_single_callable(app)  # type: ignore[no-untyped-call,unused-ignore]
    return wrapped


def load_app(
    spec: str,
    *,
    app_dir: str | None = None,
    factory: bool = False,
    wsgi: bool = False,
    threads: int | None = None,
) -> ASGIApp:
    """Import the application ``spec`` (``"package.module:attribute"``,
    the attribute possibly dotted).

    Args:
        spec: Where the application is.
        app_dir: A directory to import the module from (put first on
            ``sys.path``), as uvicorn's ``--app-dir``.
        factory: The attribute is a function that returns the application
            (called without arguments).
        wsgi: The application is a WSGI one (Flask, Django...): it is
            returned wrapped by :func:`from_wsgi` (no ASGI 2 detection).
        threads: With ``wsgi``, the ``threads`` of :func:`from_wsgi`
            (default ``None``: its default, 10).

    Returns:
        The ASGI 3 application.

    Raises:
        AppLoadError: It cannot be loaded.
        ValueError: ``threads`` without ``wsgi``, or below 1.
        TypeError: ``threads`` is not an int.
    """
    if threads is not None and not wsgi:
        raise ValueError("threads is for a WSGI application: give wsgi=True too")
    module_name, colon, attribute = spec.partition(":")
    if not colon or not module_name or not attribute:
        raise AppLoadError(f"the application must be given as MODULE:ATTRIBUTE, not {spec!r}")
    if app_dir is not None:
        directory = os.path.abspath(app_dir)
        if directory not in sys.path:
            sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise AppLoadError(f"no module named {module_name!r} (look at --app-dir)") from exc
        raise  # the module itself imports something missing: its traceback says what
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise AppLoadError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if factory:
        if not callable(value):
            raise AppLoadError(f"{spec} is not callable, so it is no application factory")
        value = value()
    elif inspect.isfunction(value) and not inspect.iscoroutinefunction(value):
        parameters = inspect.signature(value).parameters
        if not parameters:
            raise AppLoadError(f"{spec} takes no arguments: is it a factory? (use --factory)")
    if wsgi:
        if not callable(value) or inspect.iscoroutinefunction(value):
            raise AppLoadError(f"{spec} is not a WSGI application")
        if threads is None:
            return from_wsgi(value)
        return from_wsgi(value, threads=threads)
    return as_asgi3(value)
