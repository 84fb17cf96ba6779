"""Worker processes (``trionet.serve_workers``, ``trionet.run_workers``):
real processes, real sockets, real signals, on loopback.

The pool is started in this process where the test needs its API, and
``run_workers`` as a program (``python -m tests._worker_apps workers``)
where it needs signals. Every wait polls a condition under a deadline."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio

import trionet
from tests._process import (
    EXAMPLES,
    OutputReader,
    gone,
    read_port,
    running,
)
from tests._worker_apps import http_main, udp_main, unix_main
from trionet import ServerStatistics
from trionet._listener_pool import ListenKey, listen_key
from trionet._listeners import listeners_from_sockets
from trionet._workers._beat import MAX_LINE, Beat, BeatReader

LOOPBACK = "127.0.0.1"

# Heartbeats this often in the tests, so that counters and readiness show
# up quickly.
HEARTBEAT = 0.1

# Real seconds for anything a test waits for: a cold start of a few Python
# processes on a busy two-core machine, with a wide margin.
DEADLINE = 30.0

WORKER_LINE = r"^worker (\d+)/(\d+) pid (\d+) port (\d+)$"


@pytest.fixture(autouse=True, scope="module")
def _stop_resource_tracker() -> Iterator[None]:
    """Spawning a process starts multiprocessing's resource tracker, a
    process that lives as long as ours; stop it after these tests so that
    the session's leak check finds no child left."""
    yield
    from multiprocessing import resource_tracker

    resource_tracker._resource_tracker._stop()  # type: ignore[attr-defined]


class Failed(Exception):
    """A request that got no complete answer."""


async def get(port: int, path: str = "/") -> tuple[int, int]:
    """One request on a new connection: the answering worker's pid and index.

    Raises:
        trionet.ConnectError: The connection was refused.
        Failed: The answer was not a complete 200.
    """
    try:
        conn = await trionet.connect_tcp(LOOPBACK, port, connect_timeout=10)
    except trionet.ConnectTimeout as exc:
        raise Failed(f"connect timed out: {exc}") from None
    try:
        async with conn:
            request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            await conn.send(request.encode())
            with trio.fail_after(10):
                raw = b"".join([e.data async for e in conn if isinstance(e, trionet.Data)])
    except (trionet.ConnectionClosed, trio.TooSlowError) as exc:
        raise Failed(repr(exc)) from None
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 ") or body != b"hello\n":
        raise Failed(f"not the answer: {raw!r}")
    fields = dict(
        line.decode().lower().split(": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line
    )
    return int(fields["x-worker-pid"]), int(fields["x-worker-index"])


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after ``DEADLINE`` seconds."""
    give_up = trio.current_time() + DEADLINE
    while not condition():
        if trio.current_time() > give_up:
            pytest.fail(f"still not so after {DEADLINE} s: {what}")
        await trio.sleep(0.01)


def inheritable_descriptors(pid: int) -> list[int]:
    """The descriptors above stderr that process ``pid`` would pass to a
    program it runs (no close-on-exec flag)."""
    found = []
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            flags = next(line for line in info.read_text().splitlines() if line.startswith("flags"))
        except (OSError, StopIteration):
            continue  # closed meanwhile
        if int(info.name) > 2 and not int(flags.split()[1], 8) & os.O_CLOEXEC:
            found.append(int(info.name))
    return found


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on ``port`` (the kernel's table)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


def start_pool(workers: int, **options: object) -> Callable[..., Awaitable[None]]:
    """``serve_workers`` of ``http_main`` on ``127.0.0.1``, port 0, for
    ``nursery.start``."""
    crash_flag = options.pop("crash_flag", None)
    return partial(
        trionet.serve_workers,
        http_main,
        LOOPBACK,
        0,
        crash_flag,
        workers=workers,
        listen=[(LOOPBACK, 0)],
        heartbeat_interval=HEARTBEAT,
        **options,
    )


@asynccontextmanager
async def worker_pool(workers: int = 2, **options: object) -> AsyncIterator[trionet.WorkerPool]:
    """A pool of ``http_main`` workers (see :func:`start_pool`); killed at
    the end unless the test shut it down."""
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            pool = await nursery.start(start_pool(workers, **options))
        try:
            yield pool
        finally:
            nursery.cancel_scope.cancel()


class Load:
    """Clients that send requests until told to stop, counting what happens."""

    def __init__(self, port: int, path: str = "/slow") -> None:
        self.port = port
        self.path = path
        self.pids: Counter[int] = Counter()
        self.failures: list[str] = []
        self.refused = 0
        self.stop = trio.Event()

    async def client(self, until_refused: bool) -> None:
        while not self.stop.is_set():
            try:
                pid, _ = await get(self.port, self.path)
            except trionet.ConnectError as exc:
                if until_refused:
                    self.refused += 1
                    return
                self.failures.append(repr(exc))
            except Failed as exc:
                self.failures.append(str(exc))
            else:
                self.pids[pid] += 1

    def run(self, nursery: trio.Nursery, clients: int = 4, *, until_refused: bool = False) -> None:
        for _ in range(clients):
            nursery.start_soon(self.client, until_refused)

    @property
    def answered(self) -> int:
        return sum(self.pids.values())


async def read_workers(
    output: OutputReader, count: int, *, pool_ready: bool = False
) -> tuple[dict[int, int], int]:
    """Read the next ``count`` workers' lines (and, with ``pool_ready``, the
    supervisor's log line that says the pool is up: it answers signals from
    then on); return index -> pid, and the port."""
    found: dict[int, int] = {}
    ports = set()
    regex = re.compile(WORKER_LINE)
    with trio.fail_after(DEADLINE):
        while len(found) < count or pool_ready:
            line = await output.readline()
            if line is None:
                pytest.fail(f"output ended: {output.lines!r}")
            pool_ready = pool_ready and not line.endswith(f"{count} workers ready")
            if match := regex.search(line):
                found[int(match.group(1))] = int(match.group(3))
                ports.add(int(match.group(4)))
    [port] = ports  # one port for all
    return found, port


def workers_program(*options: str) -> list[str]:
    return [sys.executable, "-m", "tests._worker_apps", "workers", *options]


def run_workers_program() -> AbstractAsyncContextManager[tuple[trio.Process, OutputReader]]:
    """``run_workers`` as a program, its log read with its output."""
    return running(workers_program(), stderr=subprocess.STDOUT)


# -- sharing a port ---------------------------------------------------------------


@pytest.mark.parametrize("reuse_port", [False, True], ids=["inherited", "reuse_port"])
async def test_connections_spread_over_two_workers(reuse_port: bool) -> None:
    async with worker_pool(2, reuse_port=reuse_port) as pool:
        [(host, port)] = pool.addresses
        assert host == LOOPBACK
        assert port != 0
        by_index = {w.index: w.pid for w in pool.statistics().workers}
        # One shared socket, or one socket per worker (the supervisor's
        # reservation does not listen).
        assert listening_sockets(port) == (2 if reuse_port else 1)
        seen: dict[int, int] = {}

        async def client() -> None:
            while len(seen) < 2:
                pid, index = await get(port)
                seen[index] = pid

        with trio.fail_after(DEADLINE):
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(client)
        # current_worker() in each: indices 0..N-1, each its own process.
        assert seen == by_index
        assert sorted(seen) == [0, 1]
        # What a worker inherited goes no further.
        for pid in seen.values():
            assert inheritable_descriptors(pid) == []


def test_current_worker_is_none_outside_workers() -> None:
    assert trionet.current_worker() is None


async def test_statistics_are_summed_over_workers() -> None:
    async with worker_pool(2) as pool:
        answered: Counter[int] = Counter()
        for _ in range(20):
            pid, _ = await get(pool.port)
            answered[pid] += 1
        await wait_until(lambda: pool.statistics().servers.accepted == 20, "20 accepted")
        stats = pool.statistics()
        by_pid = {w.pid: w.servers.accepted for w in stats.workers if w.servers.accepted}
        assert by_pid == dict(answered)
        assert stats.servers.bytes_sent == sum(w.servers.bytes_sent for w in stats.workers) > 0


# -- failures -------------------------------------------------------------------


async def test_a_killed_worker_is_replaced_while_answers_keep_coming() -> None:
    async with worker_pool(2) as pool:
        before = pool.statistics().workers
        victim, survivor = before[0].pid, before[1].pid
        assert victim is not None
        answers: list[int] = []
        failures: list[str] = []
        stop = trio.Event()

        async def client() -> None:
            while not stop.is_set():
                try:
                    answers.append((await get(pool.port))[0])
                except Failed as exc:
                    failures.append(str(exc))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(client)
            await wait_until(lambda: len(answers) >= 5, "answers before the kill")
            os.kill(victim, signal.SIGKILL)
            killed_at = len(answers)

            def replaced() -> bool:
                worker = pool.statistics().workers[0]
                return worker.pid not in (None, victim)

            await wait_until(replaced, "worker 0 replaced")
            newcomer = pool.statistics().workers[0].pid
            await wait_until(lambda: newcomer in answers, "the new worker answers")
            stop.set()
        after = pool.statistics().workers
        assert after[0].restarts == 1
        assert after[1].pid == survivor
        assert after[1].restarts == 0
        # The survivor answered while worker 0 was away; at most the request
        # in flight at the kill failed.
        assert survivor in answers[killed_at:]
        assert len(failures) <= 1, failures


async def test_a_worker_failing_at_start_up_raises_worker_error(tmp_path: Path) -> None:
    flag = tmp_path / "crash"
    flag.touch()
    async with trio.open_nursery() as nursery:
        with pytest.raises(trionet.WorkerError) as info:
            await nursery.start(start_pool(2, crash_flag=str(flag)))
    assert info.value.exitcode == 3
    assert info.value.index in (0, 1)
    assert f"worker {info.value.index} (pid {info.value.pid}) exited with status 3" in str(
        info.value
    )
    assert "before it was ready" in str(info.value)


async def test_a_worker_that_never_gets_ready_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "never.sock")
    # http_main serves TCP only: the Unix socket entry is never served.
    start = partial(
        trionet.serve_workers,
        http_main,
        LOOPBACK,
        0,
        workers=1,
        listen=[(LOOPBACK, 0), path],
        heartbeat_interval=HEARTBEAT,
        startup_timeout=3,
    )
    async with trio.open_nursery() as nursery:
        with pytest.raises(trionet.WorkerError) as info:
            await nursery.start(start)
    assert info.value.exitcode is None
    assert "was not ready within 3 s" in str(info.value)
    assert path in str(info.value)
    assert not await trio.Path(path).exists()  # the supervisor's socket file is removed


async def test_a_crash_loop_backs_off(tmp_path: Path) -> None:
    flag = tmp_path / "crash"
    async with worker_pool(1, crash_flag=str(flag)) as pool:
        [worker] = pool.statistics().workers
        assert worker.pid is not None
        flag.touch()  # from now on, every new worker exits at start-up
        os.kill(worker.pid, signal.SIGKILL)
        await wait_until(lambda: pool.statistics().workers[0].restarts >= 3, "3 restarts")
        [worker] = pool.statistics().workers
        assert worker.pid is None  # none of them got ready
        # The wait before each restart doubles: 0.1, 0.2, 0.4, 0.8 s...
        assert worker.restart_delay == min(0.1 * 2**worker.restarts, 10)
        # ...so within the next second at most one more restart begins
        # (without the back-off, a restart begins every time one fails).
        counted = worker.restarts
        await trio.sleep(1.0)  # a window to count in, not a wait for an event
        assert pool.statistics().workers[0].restarts <= counted + 1


async def test_a_worker_that_stops_beating_is_killed_and_replaced() -> None:
    async with worker_pool(1, heartbeat_timeout=1.0) as pool:
        [before] = pool.statistics().workers

        async def block() -> None:
            with pytest.raises(Failed):  # its worker is killed before it answers
                await get(pool.port, "/block")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(block)
            await wait_until(
                lambda: pool.statistics().workers[0].pid not in (None, before.pid), "replaced"
            )
        assert gone(before.pid)
        [after] = pool.statistics().workers
        assert after.restarts == 1
        await get(pool.port)


async def test_workers_share_a_unix_socket_and_the_supervisor_removes_it(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "workers.sock")

    async def pid_of_answer() -> int:
        async with await trionet.connect_unix(path) as conn:
            return int((await conn.__anext__()).data)  # type: ignore[attr-defined]

    start = partial(trionet.serve_workers, unix_main, path, workers=1, listen=[path])
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            pool = await nursery.start(start)
            assert pool.addresses == [path]
            [first] = pool.statistics().workers
            assert await pid_of_answer() == first.pid
            # The old worker's server closes its socket when it drains, and
            # must leave the file, which is the supervisor's, in place.
            await pool.restart()
            [second] = pool.statistics().workers
            assert second.pid != first.pid
            assert await pid_of_answer() == second.pid
            await pool.shutdown()
    assert pool.exit_status == 0
    assert not await trio.Path(path).exists()


async def test_max_requests_replaces_a_worker_without_a_failed_request() -> None:
    async with worker_pool(1, max_requests=5) as pool:
        [first] = pool.statistics().workers
        answers: list[int] = []
        with trio.fail_after(DEADLINE):
            while not answers or answers[-1] == first.pid:
                answers.append((await get(pool.port))[0])
        assert len(answers) > 5  # the limit is noticed at a heartbeat
        # (The newcomer accepts as soon as it listens, a moment before its
        # heartbeat says it is ready and it takes the old one's place.)
        await wait_until(lambda: pool.statistics().workers[0].pid == answers[-1], "swapped")
        [worker] = pool.statistics().workers
        assert worker.restarts == 0  # a planned replacement is no failure


# -- run_workers and its signals ---------------------------------------------------


async def test_sigterm_stops_run_workers_gracefully_under_load() -> None:
    async with run_workers_program() as (process, output):
        pids, port = await read_workers(output, 2, pool_ready=True)
        load = Load(port)
        async with trio.open_nursery() as nursery:
            load.run(nursery, until_refused=True)
            await wait_until(lambda: load.answered >= 20, "answers before SIGTERM")
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(DEADLINE):
                status = await process.wait()
                rest = await output.read_rest()
        assert status == 0
        assert rest[-1] == "exit status 0"
        assert "SIGTERM: stopping the workers (again to kill them at once)" in rest
        assert load.failures == []
        assert load.refused == 4  # every client ended on a refused connection
        assert set(load.pids) <= set(pids.values())


async def test_sighup_rolls_the_workers_over_under_load() -> None:
    async with run_workers_program() as (process, output):
        old, port = await read_workers(output, 2, pool_ready=True)
        load = Load(port)
        async with trio.open_nursery() as nursery:
            load.run(nursery)
            await wait_until(lambda: load.answered >= 20, "answers before SIGHUP")
            process.send_signal(signal.SIGHUP)
            new, _ = await read_workers(output, 2)
            await wait_until(lambda: all(gone(pid) for pid in old.values()), "old workers gone")
            answered = load.answered
            await wait_until(lambda: load.answered >= answered + 20, "answers after")
            load.stop.set()
        assert load.failures == []
        assert not set(new.values()) & set(old.values())
        assert set(load.pids) <= set(old.values()) | set(new.values())
        assert set(load.pids) & set(new.values())
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(DEADLINE):
            assert await process.wait() == 0


async def test_sigttin_and_sigttou_add_and_remove_a_worker() -> None:
    async with run_workers_program() as (process, output):
        await read_workers(output, 2, pool_ready=True)
        process.send_signal(signal.SIGTTIN)
        with trio.fail_after(DEADLINE):
            match = await output.wait_for(WORKER_LINE)
        assert (match.group(1), match.group(2)) == ("2", "3")  # index 2 of 3
        third = int(match.group(3))
        process.send_signal(signal.SIGTTOU)
        await wait_until(lambda: gone(third), "worker 2 gone")
        # Ctrl-C: SIGINT to the whole process group. The workers leave it to
        # the supervisor, which stops them gracefully.
        os.killpg(process.pid, signal.SIGINT)
        with trio.fail_after(DEADLINE):
            assert await process.wait() == 0


async def test_no_orphan_when_the_supervisor_is_killed() -> None:
    async with run_workers_program() as (process, output):
        pids, _ = await read_workers(output, 2, pool_ready=True)
        process.kill()
        # The workers see their supervisor's end of the pipe close, and stop.
        await wait_until(lambda: all(gone(pid) for pid in pids.values()), "workers gone")


@pytest.mark.parametrize(
    ("name", "ready"),
    [
        ("http_hello.py", r"^Server running at http://127\.0\.0\.1:(\d+)/$"),
        ("tcp_echo.py", r"^TCP echo on 127\.0\.0\.1:(\d+)$"),
        ("ws_echo.py", r"^WebSocket echo at ws://127\.0\.0\.1:(\d+)/$"),
    ],
)
async def test_examples_run_with_workers(name: str, ready: str) -> None:
    command = [sys.executable, str(EXAMPLES / name), "--port", "0", "--workers", "2"]
    async with running(command) as (process, output):
        port = await read_port(output, ready)
        with trio.fail_after(DEADLINE):
            async with await trionet.connect_tcp(LOOPBACK, port) as conn:
                if name == "tcp_echo.py":
                    await conn.send(b"ping")
                    assert await conn.__anext__() == trionet.Data(b"ping")
                else:
                    await conn.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    event = await conn.__anext__()
                    assert isinstance(event, trionet.Data)
                    assert event.data.startswith(b"HTTP/1.1 200 ")
            process.send_signal(signal.SIGTERM)
            assert await process.wait() == 0
            # Worker 0 alone says where it listens.
            assert [line for line in await output.read_rest() if line] == []


# -- sockets from elsewhere ---------------------------------------------------------


async def test_systemd_socket_activation_serves_on_the_passed_socket() -> None:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        port = sock.getsockname()[1]
        program = [sys.executable, "-m", "tests._worker_apps", "single", "--port", str(port)]
        wrapper = [sys.executable, "-m", "tests._worker_apps", "systemd", str(sock.fileno())]
        async with running([*wrapper, "--", *program], pass_fds=[sock.fileno()]) as (
            process,
            output,
        ):
            with trio.fail_after(DEADLINE):
                match = await output.wait_for(WORKER_LINE.replace(r"(\d+)/(\d+)", "-/-"))
                assert await output.readline() == "LISTEN_FDS=None"  # unset once read
            # Our copy of the socket still listens, so the program could not
            # have bound the port itself: it serves on the one it was given.
            assert match.group(1) == str(process.pid)  # LISTEN_PID, kept by exec
            assert match.group(2) == str(port)
            pid, index = await get(port)
            assert (pid, index) == (process.pid, -1)


def parent_of(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text[text.rindex(")") + 2 :].split()[1])


@pytest.mark.parametrize("workers", [None, 2], ids=["one_process", "workers"])
async def test_systemd_socket_activation_passes_a_udp_socket(workers: int | None) -> None:
    """systemd's ``ListenDatagram=``: a bound UDP socket as descriptor 3.
    ``serve_udp`` in the program takes it; under ``run_workers`` the
    supervisor takes it for its ``"udp"`` entry and hands it to the
    workers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        port = sock.getsockname()[1]
        program = [sys.executable, "-m", "tests._worker_apps", "single", "--udp"]
        program += ["--port", str(port)]
        if workers:
            program += ["--workers", str(workers)]
        wrapper = [sys.executable, "-m", "tests._worker_apps", "systemd", str(sock.fileno())]
        async with running(
            [*wrapper, "--", *program], pass_fds=[sock.fileno()], stderr=subprocess.STDOUT
        ) as (process, output):
            # Our copy of the socket holds the port, so the program could not
            # have bound it itself: what answers reads the socket it was
            # given (datagrams sent before it reads wait in that socket).
            client = UDPClient(port)
            try:
                with trio.fail_after(DEADLINE):
                    pid = await client.ask()
            finally:
                client.close()
            if workers:
                assert parent_of(pid) == process.pid
            else:
                assert pid == process.pid
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(DEADLINE):
                status = await process.wait()
            said = await output.read_rest()
            assert status == 0, said
            # Nothing but the word that it stops (no traceback).
            assert [line.split(":")[0] for line in said] == ["SIGTERM"]


def test_listeners_from_sockets_takes_listening_sockets_only() -> None:
    with socket.socket() as bound:
        bound.bind((LOOPBACK, 0))
        with pytest.raises(ValueError, match="listen"):
            listeners_from_sockets([bound])
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as datagram,
        pytest.raises(ValueError, match="stream"),
    ):
        listeners_from_sockets([datagram])
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    sock.listen()
    listeners, addresses = listeners_from_sockets([sock])
    assert addresses == [sock.getsockname()]
    assert len(listeners) == 1
    sock.close()


# -- the heartbeat, sans I/O -------------------------------------------------------


def test_heartbeats_are_lines_read_in_any_pieces() -> None:
    counters = ServerStatistics(1, 2, 3, 4, 5, 6, 7, 8, 9)
    beats = [Beat(False, counters, ("127.0.0.1:0",)), Beat(True, counters)]
    wire = b"".join(beat.encode() for beat in beats)
    reader = BeatReader()
    received = [beat for byte in range(len(wire)) for beat in reader.feed(wire[byte : byte + 1])]
    assert received == beats


def test_a_heartbeat_from_other_code_keeps_the_counters_both_know() -> None:
    line = b'{"ready":true,"servers":{"accepted":3,"requests":7},"pending":[]}\n'
    [beat] = BeatReader().feed(line)
    assert beat.servers.accepted == 3
    assert beat.servers.active == 0


def test_what_is_not_a_heartbeat_is_refused() -> None:
    with pytest.raises(ValueError, match="not a heartbeat"):
        BeatReader().feed(b"GET / HTTP/1.1\n")
    with pytest.raises(ValueError, match="longer than"):
        BeatReader().feed(b"{" * (MAX_LINE + 1))


# -- options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"workers": 0}, ValueError, "workers"),
        ({"heartbeat_interval": 2.0, "heartbeat_timeout": 1.0}, ValueError, "heartbeat_timeout"),
        ({"listen": [b"8000"]}, TypeError, "listen entry"),
        ({"listen": [8000, 8000]}, ValueError, "twice"),
        ({"listen": [(LOOPBACK, 8000), (LOOPBACK, 8000, "tcp")]}, ValueError, "twice"),
        ({"listen": [(LOOPBACK, 8000, "sctp")]}, ValueError, "'tcp' or 'udp'"),
        ({"max_requests": 0}, ValueError, "max_requests"),
        ({"startup_timeout": -1}, ValueError, "startup_timeout"),
    ],
)
async def test_options_are_checked(
    options: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        await trionet.serve_workers(http_main, LOOPBACK, 0, **options)  # type: ignore[arg-type]


async def test_main_must_be_picklable_by_reference() -> None:
    async def local_main() -> None:
        pass

    with pytest.raises(TypeError, match="picklable by reference"):
        await trionet.serve_workers(local_main, workers=1)
    with pytest.raises(TypeError, match="arguments for main must be picklable"):
        await trionet.serve_workers(http_main, lambda: None, 0, workers=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="picklable by reference"):
        trionet.run_workers(local_main, workers=1)


def test_the_systemd_units_the_docs_show() -> None:
    # What the activation test above emulates (a socket passed as fd 3 with
    # LISTEN_FDS) is what these units make systemd do; their settings are
    # the ones the deployment guide explains.
    import configparser

    deploy = Path(__file__).resolve().parent.parent / "examples" / "deploy"
    socket_unit = configparser.ConfigParser(interpolation=None)
    socket_unit.read(deploy / "app.socket")
    assert socket_unit["Socket"]["ListenStream"].endswith(":8000")
    service = configparser.ConfigParser(interpolation=None)
    service.read(deploy / "app.service")
    assert service["Unit"]["Requires"] == "app.socket"
    assert service["Service"]["KillMode"] == "mixed"  # SIGTERM to the supervisor only
    assert service["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"  # rolling restart
    assert "--workers" in service["Service"]["ExecStart"]


# -- listen entries, parsed ----------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        (8000, ListenKey(port=8000)),
        ((LOOPBACK, 8000), ListenKey(host=LOOPBACK, port=8000)),
        ((LOOPBACK, 8000, "tcp"), ListenKey(host=LOOPBACK, port=8000)),
        ((None, 8000, "tcp"), ListenKey(port=8000)),
        ((LOOPBACK, 41234, "udp"), ListenKey(host=LOOPBACK, port=41234, udp=True)),
        (("::1", 0, "udp"), ListenKey(host="::1", port=0, udp=True)),
        ((None, 41234, "udp"), ListenKey(port=41234, udp=True)),
        ("/run/app.sock", ListenKey(path="/run/app.sock")),
    ],
)
def test_listen_entries_and_their_keys(entry: object, key: ListenKey) -> None:
    assert listen_key(entry) == key


def test_a_listen_key_says_which_transport() -> None:
    assert str(listen_key((LOOPBACK, 41234, "udp"))) == "udp 127.0.0.1:41234"
    assert str(listen_key(("::1", 0, "udp"))) == "udp [::1]:0"
    assert str(listen_key((None, 53, "udp"))) == "udp *:53"
    assert str(listen_key((LOOPBACK, 8000, "tcp"))) == "127.0.0.1:8000"
    # A UDP entry and a TCP entry on one port are two entries.
    assert listen_key((LOOPBACK, 8000, "udp")) != listen_key((LOOPBACK, 8000))


@pytest.mark.parametrize(
    ("entry", "error", "match"),
    [
        ((LOOPBACK, 8000, "sctp"), ValueError, "must be 'tcp' or 'udp', not 'sctp'"),
        ((LOOPBACK, 8000, "UDP"), ValueError, "must be 'tcp' or 'udp'"),
        ((LOOPBACK, 8000, 17), TypeError, "transport must be a str, not 17"),
        ((LOOPBACK, 70000, "udp"), ValueError, "listen port"),
        ((LOOPBACK, -1, "udp"), ValueError, "listen port"),
        ((LOOPBACK, "8000", "udp"), TypeError, "listen port"),
        ((LOOPBACK, True, "udp"), TypeError, "listen port"),
        ((8000, 8000, "udp"), TypeError, "host must be a str or None"),
        ((LOOPBACK, 8000, "udp", "x"), TypeError, r"\(host, port, 'tcp' or 'udp'\)"),
        ((None, 8000), TypeError, "listen entry"),
    ],
)
def test_bad_listen_entries_are_refused(entry: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        listen_key(entry)


@pytest.mark.parametrize("servers", [1, 2])
async def test_port_0_written_twice_is_two_ports_taken_in_order(servers: int) -> None:
    """Each ``(host, 0, "udp")`` is a port of its own, and a worker's
    ``serve_udp`` calls take them one after the other; a worker that takes
    one only is never ready, and says which entry it does not serve."""
    start = partial(
        trionet.serve_workers,
        udp_main,
        LOOPBACK,
        0,
        servers,
        workers=1,
        listen=[(LOOPBACK, 0, "udp"), (LOOPBACK, 0, "udp")],
        heartbeat_interval=HEARTBEAT,
        startup_timeout=3,
    )
    async with trio.open_nursery() as nursery:
        if servers == 1:
            with pytest.raises(trionet.WorkerError) as info:
                await nursery.start(start)
            assert "(it does not serve udp 127.0.0.1:0)" in str(info.value)
            return
        with trio.fail_after(DEADLINE):
            pool = await nursery.start(start)
        ports = [address[1] for address in pool.addresses if isinstance(address, tuple)]
        assert len(set(ports)) == 2
        [worker] = pool.statistics().workers
        for port in ports:
            client = UDPClient(port)
            try:
                with trio.fail_after(DEADLINE):
                    assert await client.ask() == worker.pid
            finally:
                client.close()
        nursery.cancel_scope.cancel()


# -- UDP ------------------------------------------------------------------------------

# Seconds before a query that got no answer is sent again (a worker killed
# while it held the datagram never answers it), and how many times.
RESEND_AFTER = 2.0
RESENDS = 10


def udp_sockets(port: int) -> int:
    """How many UDP sockets are bound to ``port`` (the kernel's table)."""
    count = 0
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


class UDPClient:
    """A client socket that asks ``udp_main`` workers who answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.queries = 0

    async def ask(self) -> int:
        """Send a query until it is answered; return the answering pid."""
        self.queries += 1
        query = f"query {self.queries}".encode()
        for _ in range(RESENDS):
            await self.sock.sendto(query, (LOOPBACK, self.port))
            with trio.move_on_after(RESEND_AFTER):
                while True:
                    data, _ = await self.sock.recvfrom(2048)
                    pid, _, echoed = data.partition(b" ")
                    if echoed == query:  # not a late answer to an earlier query
                        return int(pid)
        pytest.fail(f"{query!r} to port {self.port} was never answered")

    def close(self) -> None:
        self.sock.close()


@asynccontextmanager
async def udp_pool(workers: int = 2, **options: object) -> AsyncIterator[trionet.WorkerPool]:
    """A pool of ``udp_main`` workers sharing ``(127.0.0.1, 0, "udp")``."""
    start = partial(
        trionet.serve_workers,
        udp_main,
        LOOPBACK,
        0,
        workers=workers,
        listen=[(LOOPBACK, 0, "udp")],
        heartbeat_interval=HEARTBEAT,
        **options,
    )
    async with trio.open_nursery() as nursery:
        with trio.fail_after(DEADLINE):
            pool = await nursery.start(start)
        try:
            yield pool
        finally:
            nursery.cancel_scope.cancel()


@pytest.mark.parametrize("reuse_port", [False, True], ids=["inherited", "reuse_port"])
async def test_a_udp_listen_entry_is_shared_by_the_workers(reuse_port: bool) -> None:
    async with udp_pool(2, reuse_port=reuse_port) as pool:
        [(host, port)] = pool.addresses
        assert host == LOOPBACK
        assert port != 0
        # One socket, read by both workers, with reuse_port too: the
        # supervisor's is the only UDP socket on the port.
        assert udp_sockets(port) == 1
        pids = {worker.pid for worker in pool.statistics().workers}
        answered: Counter[int] = Counter()
        clients = [UDPClient(port) for _ in range(4)]

        async def keep_asking(client: UDPClient) -> None:
            while len(answered) < 2 or client.queries < 5:
                answered[await client.ask()] += 1

        try:
            with trio.fail_after(DEADLINE):
                async with trio.open_nursery() as nursery:
                    for client in clients:
                        nursery.start_soon(keep_asking, client)
        finally:
            for client in clients:
                client.close()
        # Every datagram was answered, by both workers and by them only.
        assert set(answered) == pids
        assert sum(answered.values()) == sum(client.queries for client in clients)
        # Their UDP servers' counters reach the supervisor with the beats:
        # at least one session per client, each query's bytes.
        queries = sum(client.queries for client in clients)
        await wait_until(
            lambda: pool.statistics().servers.bytes_sent >= queries * len("1 query 1"),
            "the workers' counters",
        )
        assert pool.statistics().servers.accepted >= len(clients)
        for pid in pids:
            assert pid is not None
            assert inheritable_descriptors(pid) == []


async def test_udp_is_answered_while_a_killed_worker_is_replaced() -> None:
    async with udp_pool(2) as pool:
        [port] = [address[1] for address in pool.addresses if isinstance(address, tuple)]
        before = pool.statistics().workers
        victim, survivor = before[0].pid, before[1].pid
        assert victim is not None
        client = UDPClient(port)
        try:
            with trio.fail_after(DEADLINE):
                assert await client.ask() in (victim, survivor)
                os.kill(victim, signal.SIGKILL)
                # Answered all along: by the survivor, then by either.
                after_kill: list[int] = []

                def replaced() -> bool:
                    return pool.statistics().workers[0].pid not in (None, victim)

                while not replaced():
                    after_kill.append(await client.ask())
                newcomer = pool.statistics().workers[0].pid
                while newcomer not in after_kill:
                    after_kill.append(await client.ask())
        finally:
            client.close()
        # (A process with SIGKILL pending never runs again: every answer
        # after the kill came from the others.)
        assert set(after_kill) <= {survivor, newcomer}
        assert gone(victim)
        assert pool.statistics().workers[0].restarts == 1
        assert pool.statistics().workers[1].pid == survivor


async def test_a_udp_server_in_a_worker_binds_its_own_port_with_reuse_port() -> None:
    """A ``serve_udp`` that matches no entry binds as usual; with
    ``reuse_port``, with ``SO_REUSEPORT``, so every worker binds the same
    fixed port (held here by a socket with ``SO_REUSEPORT`` too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((LOOPBACK, 0))
        port = holder.getsockname()[1]
        start = partial(
            trionet.serve_workers,
            udp_main,
            LOOPBACK,
            port,
            workers=2,
            reuse_port=True,
            heartbeat_interval=HEARTBEAT,
        )
        async with trio.open_nursery() as nursery:
            with trio.fail_after(DEADLINE):
                pool = await nursery.start(start)
            # The holder's socket and one per worker.
            assert udp_sockets(port) == 3
            nursery.cancel_scope.cancel()
        assert pool.addresses == []
