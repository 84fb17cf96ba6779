"""The keyword arguments of a request, as one type (for wrappers that pass
them on: ``**options: Unpack[RequestOptions]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from .._headers import HeadersInput
from ._auth import AuthInput
from ._body import Content
from ._limits import TimeoutsInput
from ._multipart import Files
from ._urls import QueryParams

__all__ = ["RequestOptions"]


class RequestOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`Client.request` (for the shorthands
    :meth:`~Client.get`, :meth:`~Client.post`...)."""

    params: QueryParams | None
    headers: HeadersInput | None
    content: Content | None
    json: Any
    form: Mapping[str, str] | None
    timeout: TimeoutsInput
    follow_redirects: bool | None
    expect_continue: bool
    auth: AuthInput | None
    cookies: Mapping[str, str] | None
    files: Files | None
    data: Mapping[str, str] | None
