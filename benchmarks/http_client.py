"""Throughput of trionet's HTTP client against httpx and aiohttp's, GETting
from one local server.

    uv run python benchmarks/http_client.py [--rounds 4] [--requests 3000]
        [--concurrency 50] [--server node|trionet] [-c trionet,httpx,aiohttp]
        [--json FILE]

The server runs in its own process pinned to CPU 0 (``taskset -c 0``), the
clients in this process pinned to CPU 1. Each measurement is a fresh
``trio.run`` (``asyncio.run`` for aiohttp, which runs on asyncio only): open
a client, warm up, then time N requests. Rounds are interleaved (trionet,
httpx, aiohttp, aiohttp, httpx, trionet, ...) and the ratio is the median
of the per-round ratios, which is steadier than a ratio of medians when the
machine's speed drifts. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO, Any

import trio

ROOT = Path(__file__).resolve().parent.parent
NODE_SERVER = Path(__file__).resolve().parent / "hello_server.js"
EXPECTED_BODY = b"Hello World\n"
CONTENDERS = ("trionet", "httpx", "aiohttp")
SCENARIOS = ("sequential", "concurrent")
BASELINE = "httpx"
SERVER_CPU = 0
CLIENT_CPU = 1
WARMUP_SEQUENTIAL = 200
WARMUP_CONCURRENT = 1000

# One GET: returns the status and the body bytes.
Fetch = Callable[[str], Awaitable[tuple[int, bytes]]]
ClientFactory = Callable[[int], AbstractAsyncContextManager[Fetch]]


# --- the contenders -------------------------------------------------------


@asynccontextmanager
async def trionet_client(pool: int) -> AsyncIterator[Fetch]:
    import trionet.http

    async with trionet.http.Client(max_connections=pool, max_keepalive_per_host=pool) as client:

        async def fetch(url: str) -> tuple[int, bytes]:
            response = await client.get(url)
            body = await response.read()  # already read by get(): returns the bytes
            return response.status, body

        yield fetch


@asynccontextmanager
async def httpx_client(pool: int) -> AsyncIterator[Fetch]:
    import httpx

    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    async with httpx.AsyncClient(limits=limits) as client:

        async def fetch(url: str) -> tuple[int, bytes]:
            response = await client.get(url)
            body = await response.aread()
            return response.status_code, body

        yield fetch


FACTORIES: dict[str, ClientFactory] = {"trionet": trionet_client, "httpx": httpx_client}


async def measure_aiohttp(
    url: str, requests: int, tasks: int, warmup: int, pool: int, limit: float
) -> tuple[float, Tally, Tally, bool]:
    """:func:`measure` for aiohttp's client, on its own event loop (asyncio)."""
    import asyncio

    import aiohttp

    warm = Tally()
    tally = Tally()
    counts = {"remaining": 0, "done": 0}

    async def drive_asyncio(session: aiohttp.ClientSession, total: int, into: Tally) -> None:
        counts["remaining"], counts["done"] = total, 0

        async def worker() -> None:
            while counts["remaining"] > 0:
                counts["remaining"] -= 1
                try:
                    async with session.get(url) as response:
                        status, body = response.status, await response.read()
                except Exception as exc:  # a failed request is counted, not fatal
                    into.error(f"{type(exc).__name__}: {exc}")
                else:
                    if status != 200 or body != EXPECTED_BODY:
                        into.error(f"status {status}, body {body[:40]!r}")
                counts["done"] += 1

        async with asyncio.TaskGroup() as group:
            for _ in range(tasks):
                group.create_task(worker())

    seconds = math.nan
    timed_out = False
    connector = aiohttp.TCPConnector(limit=pool, limit_per_host=pool)
    try:
        async with asyncio.timeout(limit):
            async with aiohttp.ClientSession(connector=connector) as session:
                await drive_asyncio(session, warmup, warm)
                start = time.perf_counter()
                await drive_asyncio(session, requests, tally)
                seconds = time.perf_counter() - start
    except TimeoutError:
        timed_out = True
        tally.errors += requests - counts["done"]
        tally.first_error = tally.first_error or f"timed out after {limit:g} s"
    return seconds, warm, tally, timed_out


def check_available(name: str) -> str | None:
    """Why the contender cannot run, or None."""
    if name == "trionet":
        import trionet.http

        if not hasattr(trionet.http, "Client"):
            return "trionet.http.Client does not exist (yet)"
    elif name == "httpx":
        try:
            import httpx  # noqa: F401
        except ImportError:
            return "httpx is not installed (uv sync installs the dev group)"
    elif name == "aiohttp":
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            return "aiohttp is not installed (uv sync installs the dev group)"
    return None


# --- one measurement ------------------------------------------------------


@dataclass
class Run:
    """One contender, one scenario, one round."""

    contender: str
    scenario: str
    round: int
    requests: int
    warmup: int
    seconds: float
    errors: int = 0  # among the timed requests
    warmup_errors: int = 0
    first_error: str | None = None
    timed_out: bool = False

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan


@dataclass
class Tally:
    errors: int = 0
    first_error: str | None = None

    def error(self, message: str) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = message


async def drive(fetch: Fetch, url: str, total: int, tasks: int, tally: Tally) -> int:
    """Make ``total`` requests from ``tasks`` tasks; returns how many completed."""
    remaining = total
    done = 0

    async def worker() -> None:
        nonlocal remaining, done
        while remaining > 0:
            remaining -= 1
            try:
                status, body = await fetch(url)
            except Exception as exc:  # a failed request is counted, not fatal
                tally.error(f"{type(exc).__name__}: {exc}")
            else:
                if status != 200 or body != EXPECTED_BODY:
                    tally.error(f"status {status}, body {body[:40]!r}")
            done += 1

    if tasks == 1:
        await worker()
    else:
        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(worker)
    return done


async def measure(
    factory: ClientFactory,
    url: str,
    requests: int,
    tasks: int,
    warmup: int,
    pool: int,
    limit: float,
) -> tuple[float, Tally, Tally, bool]:
    """Warm up, then time ``requests`` GETs.

    Returns the seconds, the warm-up's and the timed requests' tallies, and
    whether the measurement ran out of time.
    """
    warm = Tally()
    tally = Tally()
    done = 0
    seconds = math.nan
    with trio.move_on_after(limit) as scope:
        async with factory(pool) as fetch:
            await drive(fetch, url, warmup, tasks, warm)
            start = time.perf_counter()
            done = await drive(fetch, url, requests, tasks, tally)
            seconds = time.perf_counter() - start
    if scope.cancelled_caught:
        tally.errors += requests - done
        tally.first_error = tally.first_error or f"timed out after {limit:g} s"
    return seconds, warm, tally, scope.cancelled_caught


def warmup_for(scenario: str, args: argparse.Namespace) -> int:
    if args.warmup is not None:
        return int(args.warmup)
    # httpx's pool (httpcore 1.0) has a start-up transient under many tasks:
    # its first several hundred requests stall for up to seconds while the
    # pool opens and sheds connections. A longer warm-up times the steady state.
    return WARMUP_SEQUENTIAL if scenario == "sequential" else WARMUP_CONCURRENT


def run_once(name: str, scenario: str, round_: int, url: str, args: argparse.Namespace) -> Run:
    tasks = 1 if scenario == "sequential" else args.concurrency
    warmup = warmup_for(scenario, args)
    try:
        if name == "aiohttp":
            import asyncio

            seconds, warm, tally, timed_out = asyncio.run(
                measure_aiohttp(url, args.requests, tasks, warmup, args.pool, args.timeout)
            )
        else:
            seconds, warm, tally, timed_out = trio.run(
                measure,
                FACTORIES[name],
                url,
                args.requests,
                tasks,
                warmup,
                args.pool,
                args.timeout,
            )
    except Exception as exc:  # the client itself failed (e.g. on open or close)
        return Run(
            name,
            scenario,
            round_,
            args.requests,
            warmup,
            math.nan,
            errors=args.requests,
            first_error=f"{type(exc).__name__}: {exc}",
        )
    return Run(
        name,
        scenario,
        round_,
        args.requests,
        warmup,
        seconds,
        errors=tally.errors,
        warmup_errors=warm.errors,
        first_error=warm.first_error or tally.first_error,
        timed_out=timed_out,
    )


# --- the server -----------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(kind: str, port: int) -> list[str]:
    if kind == "node":
        node = shutil.which("node") or "/usr/bin/node"
        command = [node, str(NODE_SERVER), str(port), "127.0.0.1"]
    else:
        uv = shutil.which("uv") or "uv"
        command = [uv, "run", "python", "examples/http_hello.py", "--port", str(port)]
    if shutil.which("taskset") and can_pin():
        command = ["taskset", "-c", str(SERVER_CPU), *command]
    return command


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: IO[bytes], limit: float
) -> None:
    deadline = time.monotonic() + limit
    while True:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise SystemExit(f"the server exited with {process.returncode}:\n{output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the server did not accept on port {port} within {limit:g} s"
                ) from None
            time.sleep(0.05)


@contextmanager
def server(kind: str) -> Iterator[str]:
    """Start the server in its own process group; yields its URL; always kills it."""
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            server_command(kind, port),
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, spared our Ctrl-C
        )
        try:
            wait_for_port(port, process, log, limit=30)
            yield f"http://127.0.0.1:{port}/"
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=3)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    # `uv run` may leave its child behind for a moment: the whole group goes.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def server_version(kind: str) -> str:
    if kind == "node":
        node = shutil.which("node") or "/usr/bin/node"
        result = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
        return f"node {result.stdout.strip()}"
    return f"trionet {package_version('trionet')} (examples/http_hello.py)"


# --- the report -----------------------------------------------------------


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


@dataclass
class Summary:
    contender: str
    median: float
    low: float
    high: float
    ratio: float | None  # median of the per-round ratios vs the baseline
    errors: int
    requests: int
    warmup_errors: int
    warmup_requests: int
    first_error: str | None = None
    rps: list[float] = field(default_factory=list)


def summarize(runs: list[Run], contenders: list[str]) -> list[Summary]:
    by_name = {
        name: sorted((r for r in runs if r.contender == name), key=lambda r: r.round)
        for name in contenders
    }
    baseline = by_name.get(BASELINE)
    summaries = []
    for name in contenders:
        mine = by_name[name]
        rates = [r.rps for r in mine]
        finite = [x for x in rates if math.isfinite(x)] or [math.nan]
        ratio = None
        if baseline is not None and name != BASELINE:
            ratios = [
                a.rps / b.rps
                for a, b in zip(mine, baseline, strict=True)
                if math.isfinite(a.rps) and math.isfinite(b.rps) and b.rps > 0
            ]
            ratio = statistics.median(ratios) if ratios else math.nan
        elif name == BASELINE and len(contenders) > 1:
            ratio = 1.0
        summaries.append(
            Summary(
                contender=name,
                median=statistics.median(finite),
                low=min(finite),
                high=max(finite),
                ratio=ratio,
                errors=sum(r.errors for r in mine),
                requests=sum(r.requests for r in mine),
                warmup_errors=sum(r.warmup_errors for r in mine),
                warmup_requests=sum(r.warmup for r in mine),
                first_error=next((r.first_error for r in mine if r.first_error), None),
                rps=rates,
            )
        )
    return summaries


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if math.isfinite(x) else "n/a"


def table(title: str, summaries: list[Summary]) -> str:
    lines = [
        f"### {title}",
        "",
        f"| contender | req/s (median) | min-max | ratio vs {BASELINE} |",
        "| --- | ---: | ---: | ---: |",
    ]
    notes = []
    for s in summaries:
        name = s.contender
        if s.errors or s.warmup_errors:
            name += " ⚠ errors"
            failed = f"{s.errors} of {s.requests} timed requests failed"
            if s.warmup_errors:
                failed += f" (and {s.warmup_errors} of {s.warmup_requests} in the warm-up)"
            notes.append(f"- {s.contender}: {failed}; first: {s.first_error}")
        ratio = "—" if s.ratio is None else (f"{s.ratio:.2f}x" if math.isfinite(s.ratio) else "n/a")
        spread = f"{fmt_rate(s.low)}-{fmt_rate(s.high)}"
        lines.append(f"| {name} | {fmt_rate(s.median)} | {spread} | {ratio} |")
    if notes:
        lines += ["", "Errors (the numbers above do not count as a result):", *notes]
    return "\n".join(lines)


# --- main -----------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds (default 4)")
    parser.add_argument(
        "--requests", type=int, default=3000, help="timed requests per round (default 3000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=50, help="tasks in the concurrent scenario (default 50)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        help="untimed requests before each timing (default: 200 sequential, 1000 concurrent)",
    )
    parser.add_argument(
        "--pool", type=int, default=100, help="connection pool size of both clients (default 100)"
    )
    parser.add_argument(
        "--server", choices=("node", "trionet"), default="node", help="the server (default node)"
    )
    parser.add_argument(
        "-c",
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated, from: trionet, httpx",
    )
    parser.add_argument(
        "-s",
        "--scenarios",
        default=",".join(SCENARIOS),
        help="comma-separated, from: sequential, concurrent",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=120,
        help="limit for one measurement, seconds (default 120)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also save the raw numbers as JSON"
    )
    args = parser.parse_args(argv)

    def pick(value: str, allowed: tuple[str, ...], what: str) -> list[str]:
        chosen = [x.strip() for x in value.split(",") if x.strip()]
        unknown = [x for x in chosen if x not in allowed]
        if unknown or not chosen:
            parser.error(f"{what}: choose from {', '.join(allowed)} (got {value!r})")
        return list(dict.fromkeys(chosen))

    args.contenders = pick(args.contenders, CONTENDERS, "--contenders")
    args.scenarios = pick(args.scenarios, SCENARIOS, "--scenarios")
    for name in ("rounds", "requests", "concurrency", "pool"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup is not None and args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in args.contenders:
        reason = check_available(name)
        if reason:
            hint = " (pick the others with -c)" if len(args.contenders) > 1 else ""
            progress(f"cannot run contender {name!r}: {reason}{hint}")
            return 2

    pinned = can_pin()
    if pinned:
        os.sched_setaffinity(0, {CLIENT_CPU})
    else:
        progress(f"note: CPUs {SERVER_CPU} and {CLIENT_CPU} are not both available; not pinning")

    # A SIGTERM should clean up like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    runs: list[Run] = []
    started = time.monotonic()
    with server(args.server) as url:
        progress(f"{args.server} server at {url}")
        for scenario in args.scenarios:
            for round_ in range(args.rounds):
                # trionet, httpx, httpx, trionet, ...: neither always goes first.
                order = args.contenders if round_ % 2 == 0 else args.contenders[::-1]
                for name in order:
                    run = run_once(name, scenario, round_, url, args)
                    runs.append(run)
                    failures = run.errors + run.warmup_errors
                    flag = f"  {failures} errors: {run.first_error}" if failures else ""
                    where = f"{scenario:10} round {round_ + 1}/{args.rounds} {name:8}"
                    progress(f"  {where} {fmt_rate(run.rps):>8} req/s{flag}")
    elapsed = time.monotonic() - started

    versions = {
        "python": platform.python_version(),
        "trio": package_version("trio"),
        "httpx": package_version("httpx"),
        "aiohttp": package_version("aiohttp"),
        "trionet": package_version("trionet"),
        "server": server_version(args.server),
    }
    descriptions = {
        "sequential": "sequential: 1 task, keep-alive",
        "concurrent": f"concurrent: {args.concurrency} tasks sharing one client",
    }
    print()
    for scenario in args.scenarios:
        summaries = summarize([r for r in runs if r.scenario == scenario], args.contenders)
        title = f"{descriptions[scenario]} ({args.requests} requests x {args.rounds} rounds)"
        print(table(title, summaries))
        print()
    warmups = ", ".join(f"{warmup_for(s, args)} {s}" for s in args.scenarios)
    pin_note = (
        f"server on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}" if pinned else "not pinned"
    )
    print(
        f"Python {versions['python']}, trio {versions['trio']}, httpx {versions['httpx']}, "
        f"trionet {versions['trionet']}; server: {versions['server']}; {pin_note}; "
        f"warm-up {warmups}, pool {args.pool}; {elapsed:.0f} s"
    )

    if args.json:
        data = {
            "config": {
                "rounds": args.rounds,
                "requests": args.requests,
                "concurrency": args.concurrency,
                "warmup": {s: warmup_for(s, args) for s in args.scenarios},
                "pool": args.pool,
                "server": args.server,
                "contenders": args.contenders,
                "scenarios": args.scenarios,
                "pinned": pinned,
            },
            "versions": versions,
            "runs": [asdict(r) | {"rps": r.rps} for r in runs],
            "summary": {
                scenario: [
                    asdict(s)
                    for s in summarize([r for r in runs if r.scenario == scenario], args.contenders)
                ]
                for scenario in args.scenarios
            },
        }
        # NaN is not JSON: write null for a measurement that did not finish.
        args.json.write_text(json.dumps(nan_to_none(data), indent=2) + "\n")
        progress(f"raw numbers saved to {args.json}")
    return 1 if any(r.errors or r.warmup_errors for r in runs) else 0


def nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_to_none(v) for v in value]
    return value


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        progress("interrupted")
        sys.exit(130)
