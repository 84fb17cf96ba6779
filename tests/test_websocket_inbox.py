"""trionet/websocket/_inbox.py on its own: a trio module, tested in memory
(no socket, no protocol), deterministically."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trionet._websocket_limits import QueueBudget
from trionet.websocket import BinaryMessage, Ping, TextMessage, WebSocketClosed
from trionet.websocket._inbox import Inbox
from trionet.websocket._protocol import MessageData


def cut(_: bool) -> Exception:
    return WebSocketClosed(1006, "cut")


async def test_pieces_are_joined_and_control_events_pass_between_them() -> None:
    inbox = Inbox(1000, None)
    assert inbox.admit(MessageData("ab", False, 2))
    assert inbox.put_control(Ping(b"p"))
    assert inbox.admit(MessageData("cd", True, 2))
    assert inbox.admit(MessageData(b"xyz", True, 3))
    assert inbox.queued_bytes == 7
    assert await inbox.next_event(cut) == TextMessage("abcd")
    assert await inbox.next_event(cut) == BinaryMessage(b"xyz")
    assert inbox.messages_received == 2
    assert inbox.queued_bytes == 0
    assert inbox.put_control(Ping(b"q"))
    assert await inbox.next_event(cut) == Ping(b"q")


async def test_the_end_returns_none_and_a_cut_message_raises() -> None:
    inbox = Inbox(1000, None)
    inbox.admit(MessageData(b"half", False, 4))
    inbox.finish()
    with pytest.raises(WebSocketClosed, match="cut"):
        await inbox.next_event(cut)
    assert await inbox.next_event(cut) is None


async def test_the_receiver_is_woken_by_what_arrives() -> None:
    inbox = Inbox(1000, None)
    got: list[object] = []

    async def receiver() -> None:
        got.append(await inbox.next_event(cut))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receiver)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await inbox.next_piece()
        inbox.admit(MessageData("hi", True, 2))
        inbox.wake()
    assert got == [TextMessage("hi")]


async def test_a_full_queue_makes_the_reader_wait_until_the_application_reads() -> None:
    inbox = Inbox(4, None)
    assert not await inbox.wait_for_room()  # empty: no wait, no schedule point
    inbox.admit(MessageData(b"12345", True, 5))  # one message is always admitted
    waited: list[bool] = []

    async def reader() -> None:
        waited.append(await inbox.wait_for_room())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert inbox.paused
        assert waited == []
        assert await inbox.next_event(cut) == BinaryMessage(b"12345")
    assert waited == [True]
    assert inbox.pauses == 1
    assert not inbox.paused


async def test_discarding_frees_a_waiting_reader_and_the_budget() -> None:
    budget = QueueBudget(4)
    inbox = Inbox(1000, budget)
    inbox.admit(MessageData(b"12345", True, 5))
    assert budget.spent

    async def reader() -> None:
        await inbox.wait_for_room()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert inbox.paused
        inbox.discard()  # closing: the close handshake must not wait behind the queue
    assert budget.used == 0
    assert inbox.queue is None
    assert not inbox.admit(MessageData(b"later", True, 5))
    assert not inbox.put_control(Ping(b""))
    assert not await inbox.wait_for_room()


async def test_pieces_one_at_a_time() -> None:
    inbox = Inbox(1000, None)
    inbox.admit(MessageData(b"a", False, 1))
    inbox.put_control(Ping(b"p"))
    inbox.admit(MessageData(b"b", True, 1))
    first = await inbox.next_piece()
    assert first is not None
    assert (first.data, first.finished) == (b"a", False)
    second = await inbox.next_piece()  # the ping is skipped
    assert second is not None
    assert (second.data, second.finished) == (b"b", True)
    assert inbox.messages_received == 1
