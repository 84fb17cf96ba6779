"""One request and its response head over a :class:`ClientConnection`: the
trio side of an exchange (what is written when, the write and read
timeouts, 100-continue), with HTTP itself left to the protocol.

100-continue (RFC 9110 section 10.1.1): with ``Expect: 100-continue`` the
head goes first and the body only after ``100 Continue`` (or after
``continue_timeout``); a final answer instead means the body is never sent,
and the connection is closed after the response. A server may also answer
(413, 401...) and close while the body is still being sent: that answer is
the one reported, not the broken write.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable

import trio

from ..._connect import Trace
from .._headers import Headers
from ._body import RequestBody, request_fields
from ._connection import ClientConnection
from ._errors import RemoteProtocolError, ServerDisconnected
from ._limits import Timeouts
from ._pool import Pool
from ._protocol import Informational, ResponseHead, ServerClosed, wire_fields
from ._response import ClientResponse
from ._urls import Proxy, Target

__all__ = ["exchange"]


async def exchange(
    conn: ClientConnection,
    pool: Pool,
    method: str,
    target: Target,
    proxy: Proxy | None,
    fields: Headers,
    body: RequestBody,
    timeouts: Timeouts,
    *,
    continue_timeout: float,
    max_response_size: int,
    trace: Trace | None,
) -> ClientResponse:
    """Send one request on ``conn`` and read the response head.

    Raises:
        ValueError: The request breaks HTTP/1.1.
        WriteTimeout, ReadTimeout, ServerDisconnected, RemoteProtocolError:
            As the connection raises them.
    """
    request_target, pairs = request_fields(method, target, proxy, fields, body)
    pool.requests += 1
    if conn.requests:
        pool.reused += 1
    conn.requests += 1
    protocol = conn.protocol
    expect = body is not None and "100-continue" in fields.get("expect", "").lower()
    if body is None:
        head = protocol.request(method, request_target, pairs, end=True)
    elif isinstance(body, bytes) and not expect:
        # The head and a body in memory go out in one write (one packet).
        head = protocol.request(method, request_target, pairs, body, end=True)
        body = None
    else:
        head = protocol.request(method, request_target, pairs)
    if trace is not None:
        trace(
            "request",
            {
                "method": method,
                "url": target.url,
                "target": request_target,
                "reused": conn.requests > 1,
                "headers": wire_fields(method, request_target, pairs),
            },
        )
    received_before = conn.transport.bytes_received
    conn.first_byte_at = None
    started = trio.current_time()
    response_head: ResponseHead | None = None
    try:
        await conn.write(head, timeouts.write)
        if expect:
            assert body is not None
            response_head = await _await_continue(conn, timeouts, continue_timeout)
            if response_head is None:
                await _send_body(conn, body, timeouts)
        elif body is not None:
            await _send_body(conn, body, timeouts)
    except ServerDisconnected as exc:
        # The server may have answered (413, 401...) and closed while we
        # were sending: that answer is the one to report.
        response_head = await _early_answer(conn, timeouts)
        if response_head is None:
            raise ServerDisconnected(
                exc.message,
                before_response=conn.transport.bytes_received == received_before,
            ) from None
    sent = trio.current_time()
    if trace is not None:
        trace("sent", {"seconds": sent - started, "bytes": conn.transport.bytes_sent})
    if response_head is None:
        response_head = await _read_head(conn, timeouts, received_before)
    now = trio.current_time()
    response = ClientResponse(
        status=response_head.status,
        reason=response_head.reason,
        headers=response_head.headers,
        http_version=response_head.http_version,
        url=target.url,
        method=method,
        conn=conn,
        release=pool.release,
        read_timeout=timeouts.read,
        max_size=max_response_size,
        elapsed=now - started,
    )
    if trace is not None:
        trace(
            "response",
            {
                "status": response.status,
                "reason": response.reason,
                "http_version": response.http_version,
                "headers": response.headers.items(),
                "first_byte": (conn.first_byte_at or now) - started,
                "seconds": now - started,
            },
        )
    return response


async def _read_head(
    conn: ClientConnection, timeouts: Timeouts, received_before: int
) -> ResponseHead:
    while True:
        try:
            event = await conn.receive_event(timeouts.read)
        except ServerDisconnected as exc:
            raise ServerDisconnected(
                exc.message,
                before_response=conn.transport.bytes_received == received_before,
            ) from None
        if isinstance(event, Informational):
            continue  # 100 Continue, 103 Early Hints: nothing to do
        if isinstance(event, ResponseHead):
            return event
        if isinstance(event, ServerClosed):
            raise ServerDisconnected(
                "the server closed the connection without answering",
                before_response=conn.transport.bytes_received == received_before,
            )
        raise RemoteProtocolError(f"unexpected {type(event).__name__} before the response")


async def _await_continue(
    conn: ClientConnection, timeouts: Timeouts, continue_timeout: float
) -> ResponseHead | None:
    """After a head with ``Expect: 100-continue``: ``None`` to send the
    body (100 came, or ``continue_timeout`` passed), or the server's
    final answer, which means the body must not be sent."""
    with trio.move_on_after(continue_timeout):
        while True:
            event = await conn.receive_event(timeouts.read)
            if isinstance(event, Informational):
                if event.status == 100:
                    return None
                continue
            if isinstance(event, ResponseHead):
                return event
            raise ServerDisconnected("the server closed the connection before answering")
    return None


async def _send_body(
    conn: ClientConnection, body: bytes | AsyncIterable[bytes], timeouts: Timeouts
) -> None:
    protocol = conn.protocol
    if isinstance(body, bytes):
        await conn.write(protocol.body(body, end=True), timeouts.write)
        return
    try:
        async for chunk in body:
            if not isinstance(chunk, bytes | bytearray | memoryview):
                raise TypeError(f"a body iterator yields bytes, not {type(chunk).__name__}")
            if chunk:
                await conn.write(protocol.body(bytes(chunk)), timeouts.write)
    finally:
        if inspect.isasyncgen(body):
            # Stopped early (an error): the generator's own cleanup runs
            # now, not whenever the garbage collector finds it.
            await body.aclose()
    await conn.write(protocol.end(), timeouts.write)


async def _early_answer(conn: ClientConnection, timeouts: Timeouts) -> ResponseHead | None:
    """A response the server sent before it stopped reading, if any."""
    try:
        while True:
            event = await conn.receive_event(timeouts.read)
            if isinstance(event, ResponseHead):
                return event
            if not isinstance(event, Informational):
                return None
    except (ServerDisconnected, RemoteProtocolError, TimeoutError):
        return None
