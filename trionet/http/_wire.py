"""Wire-format pieces the HTTP server and client share (the reason phrases)."""

from __future__ import annotations

from http import HTTPStatus

__all__ = ["reason_phrase"]


def reason_phrase(status: int) -> str:
    """The standard reason phrase of a status code (``"Not Found"``), or ``""``.

    Args:
        status: The status code.

    Returns:
        The phrase from the IANA registry, as Python's ``http.HTTPStatus``
        knows it.
    """
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
