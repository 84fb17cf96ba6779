"""One strictness for every argument check (trionet/_checks.py): the wrong
kind of value is a TypeError, an out-of-range one a ValueError, and both read
"NAME must be CONDITION, not VALUE", whichever public function refuses it."""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio

import trionet
import trionet.http
import trionet.websocket
from trionet import _checks as checks
from trionet.testing import VirtualUDPNetwork, memory_stream_pair

SHAPE = re.compile(r"^(?P<name>.+) must be (?P<condition>.+), not (?P<value>.+)$")


def refusal(exc: BaseException) -> tuple[str, str]:
    match = SHAPE.match(str(exc))
    assert match is not None, f"not the shape of a refusal: {exc}"
    return match["name"], match["value"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("5", TypeError),
        (True, TypeError),
        (None, TypeError),
        (0, ValueError),
        (-1.5, ValueError),
        (math.nan, ValueError),
        (-math.inf, ValueError),
    ],
)
def test_seconds_refusals(value: object, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        checks.seconds("idle_timeout", value)
    assert refusal(info.value) == ("idle_timeout", repr(value))


def test_seconds_accepted() -> None:
    assert checks.seconds("t", 2) == 2.0
    assert isinstance(checks.seconds("t", 2), float)
    assert checks.seconds("t", math.inf) == math.inf  # no limit
    assert checks.seconds("t", None, none=True) is None
    assert checks.non_negative_seconds("grace", 0) == 0.0
    with pytest.raises(ValueError, match=r"^grace must be >= 0 seconds, not -1$"):
        checks.non_negative_seconds("grace", -1)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (1.0, TypeError),
        (math.nan, TypeError),
        (False, TypeError),
        ("3", TypeError),
        (0, ValueError),
        (70000, ValueError),
    ],
)
def test_count_refusals(value: object, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        checks.count("port", value, maximum=65535)
    assert refusal(info.value) == ("port", repr(value))


def test_count_conditions_read_as_ranges() -> None:
    with pytest.raises(ValueError, match=r"^n must be >= 1 or None, not 0$"):
        checks.count("n", 0, none=True)
    with pytest.raises(ValueError, match=r"^port must be in 0\.\.65535, not -1$"):
        checks.count("port", -1, minimum=0, maximum=65535)
    assert checks.count("n", None, none=True) is None
    assert checks.count("port", 0, minimum=0) == 0


def test_one_of_and_fraction() -> None:
    with pytest.raises(ValueError, match=r'^handler_errors must be "log" or "raise", not \'x\'$'):
        checks.one_of("handler_errors", "x", ("log", "raise"))
    with pytest.raises(ValueError, match=r"^loss must be in 0\.\.1, not 1\.5$"):
        checks.fraction("loss", 1.5)
    with pytest.raises(TypeError, match=r"^loss must be a number in 0\.\.1, not True$"):
        checks.fraction("loss", True)


def _serve(function: Callable[..., Awaitable[object]], *args: Any) -> Callable[..., Any]:
    async def call(nursery: trio.Nursery, **kwargs: Any) -> None:
        await nursery.start(partial(function, *args, **kwargs))

    return call


async def _nothing(*_: Any) -> None:
    await trio.lowlevel.checkpoint()


async def _client(**kwargs: Any) -> None:
    async with trionet.http.Client(**kwargs):
        pass


async def _udp(**kwargs: Any) -> None:
    async with trionet.open_udp_socket("127.0.0.1", **kwargs):
        pass


# A public function, one of its options, and a value of the wrong kind.
WRONG_KIND: list[tuple[str, Callable[..., Any], str, object]] = [
    ("serve_tcp", _serve(trionet.serve_tcp, _nothing, 0, "127.0.0.1"), "max_connections", "10"),
    ("serve_tcp", _serve(trionet.serve_tcp, _nothing, 0, "127.0.0.1"), "close_timeout", "5"),
    ("http.serve", _serve(trionet.http.serve, _nothing, 0, "127.0.0.1"), "max_body_size", 1.5),
    ("http.serve", _serve(trionet.http.serve, _nothing, 0, "127.0.0.1"), "body_timeout", True),
    (
        "websocket.serve",
        _serve(trionet.websocket.serve, _nothing, 0, "127.0.0.1"),
        "ping_interval",
        "20",
    ),
    ("serve_udp", _serve(trionet.serve_udp, _nothing, 0, "127.0.0.1"), "queue_size", 2.0),
    ("serve_udp", _serve(trionet.serve_udp, _nothing, 0, "127.0.0.1"), "idle_timeout", "60"),
]


@pytest.mark.parametrize(
    ("function", "call", "name", "value"), WRONG_KIND, ids=[f"{f}-{n}" for f, _, n, _ in WRONG_KIND]
)
async def test_public_functions_refuse_the_wrong_kind_before_binding(
    nursery: trio.Nursery, function: str, call: Callable[..., Any], name: str, value: object
) -> None:
    with pytest.raises(TypeError) as info:
        await call(nursery, **{name: value})
    assert refusal(info.value) == (name, repr(value))


@pytest.mark.parametrize(
    ("call", "name", "value", "error"),
    [
        (_client, "max_connections", 0, ValueError),
        (_client, "max_redirects", 2.0, TypeError),
        (_client, "keepalive_expiry", "5", TypeError),
        (_udp, "receive_buffer_size", 0, ValueError),
        (_udp, "max_datagram_size", 70000, ValueError),
    ],
)
async def test_clients_and_sockets_refuse_with_the_same_shape(
    call: Callable[..., Awaitable[None]], name: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        await call(**{name: value})
    assert refusal(info.value) == (name, repr(value))


def test_testing_helpers_refuse_with_the_same_shape() -> None:
    with pytest.raises(ValueError, match="loss") as info:
        VirtualUDPNetwork(loss=2)
    assert refusal(info.value) == ("loss", "2")
    with pytest.raises(TypeError, match="buffer_size") as type_info:
        memory_stream_pair(1.5)  # type: ignore[arg-type]
    assert refusal(type_info.value) == ("buffer_size", "1.5")
