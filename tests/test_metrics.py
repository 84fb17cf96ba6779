"""trionet.metrics: real loopback servers report to a Metrics, real clients
talk to them, and the exposition is parsed with prometheus-client's own
parser, as Prometheus would read it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial

import pytest
import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import trionet
import trionet.metrics
from tests._http import exchange, request
from tests._net import receive_exactly
from tests._wait import wait_until
from trionet.metrics._record import close_code_label, method_label, status_class
from trionet.testing import TLSCertificates

LOOPBACK = "127.0.0.1"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(metrics: trionet.metrics.Metrics) -> Samples:
    return parse(generate_latest(metrics.registry).decode())


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sample's value, or None when there is no such series."""
    return samples.get((name, tuple(sorted(labels.items()))))


def series(samples: Samples, name: str) -> Iterator[dict[str, str]]:
    """The label sets of every series of ``name``."""
    for sample_name, labels in samples:
        if sample_name == name:
            yield dict(labels)


def metric(metrics: trionet.metrics.Metrics, name: str, **labels: str) -> float | None:
    return value(scrape(metrics), name, **labels)


def total(metrics: trionet.metrics.Metrics, name: str) -> float:
    """The sum of every series of ``name``."""
    return sum(v for (sample_name, _), v in scrape(metrics).items() if sample_name == name)


async def app(request: trionet.http.Request) -> trionet.http.Response:
    if request.path == "/boom":
        raise RuntimeError("a bug in the handler")
    if request.path == "/missing":
        return trionet.http.Response(404, body=b"no such thing\n")
    return trionet.http.Response(200, body=b"hello\n")


async def start_http(
    nursery: trio.Nursery,
    metrics: trionet.metrics.Metrics | None,
    handler: trionet.http.Handler = app,
) -> trionet.Server:
    server: trionet.Server = await nursery.start(
        partial(trionet.http.serve, handler, 0, LOOPBACK, metrics=metrics)
    )
    return server


def name_of(server: trionet.Server, kind: str = "http") -> str:
    return f"{kind} server {LOOPBACK}:{server.port}"


# -- HTTP ------------------------------------------------------------------------------------


async def test_http_requests_by_method_and_status_class(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()
    server = await start_http(nursery, metrics)
    close = "Connection: close\r\n"
    # One connection each, so that the connection counts are exact too.
    replies = [
        await exchange(server.port, request("GET", "/", close)),
        await exchange(server.port, request("GET", "/", close)),
        await exchange(server.port, request("POST", "/", close, b"payload")),
        await exchange(server.port, request("GET", "/missing", close)),
        await exchange(server.port, request("GET", "/boom", close)),
        await exchange(server.port, b"NOT AN HTTP REQUEST\r\n\r\n"),
    ]
    statuses = [reply.split(b" ", 2)[1] for reply in replies]
    assert statuses == [b"200", b"200", b"200", b"404", b"500", b"400"]
    await wait_until(lambda: server.statistics().active == 0)

    samples = scrape(metrics)
    server_label = name_of(server)
    requests = "trionet_http_requests_total"
    assert {labels["server"] for labels in series(samples, requests)} == {server_label}
    counts = {
        (labels["method"], labels["status"]): value(samples, requests, **labels)
        for labels in series(samples, requests)
    }
    assert counts == {
        ("GET", "2xx"): 2,
        ("POST", "2xx"): 1,
        ("GET", "4xx"): 1,
        ("GET", "5xx"): 1,
        ("other", "4xx"): 1,  # the malformed request: answered before any handler
    }
    # Timed: every request a handler saw, by method (the malformed one is not).
    count = "trionet_http_request_duration_seconds_count"
    assert value(samples, count, server=server_label, method="GET") == 4
    assert value(samples, count, server=server_label, method="POST") == 1
    assert value(samples, count, server=server_label, method="other") is None
    bucket = "trionet_http_request_duration_seconds_bucket"
    assert value(samples, bucket, server=server_label, method="GET", le="+Inf") == 4
    # The server's statistics, as they are.
    stats = server.statistics()
    assert value(samples, "trionet_connections_total", server=server_label) == stats.accepted == 6
    assert value(samples, "trionet_connections_open", server=server_label) == 0
    assert value(samples, "trionet_handler_errors_total", server=server_label) == 1
    assert (
        value(samples, "trionet_received_bytes_total", server=server_label) == stats.bytes_received
    )
    assert value(samples, "trionet_sent_bytes_total", server=server_label) == stats.bytes_sent
    assert stats.bytes_sent == sum(len(reply) for reply in replies)
    # An HTTP server reports its WebSockets too, from zero.
    assert value(samples, "trionet_websocket_messages_received_total", server=server_label) == 0


async def test_request_duration_lands_in_its_bucket(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics(duration_buckets=[0.01, 0.05, 60])

    async def slow(request: trionet.http.Request) -> trionet.http.Response:
        await trio.sleep(0.06)  # the request's own duration, not a wait of the test
        return trionet.http.Response(200, body=b"done\n")

    server = await start_http(nursery, metrics, slow)
    await exchange(server.port, request("GET", "/", "Connection: close\r\n"))
    samples = scrape(metrics)
    labels = {"server": name_of(server), "method": "GET"}
    bucket = "trionet_http_request_duration_seconds_bucket"
    assert value(samples, bucket, le="0.01", **labels) == 0
    assert value(samples, bucket, le="0.05", **labels) == 0
    assert value(samples, bucket, le="60.0", **labels) == 1
    assert value(samples, bucket, le="+Inf", **labels) == 1
    total = value(samples, "trionet_http_request_duration_seconds_sum", **labels)
    assert total is not None
    assert 0.06 <= total < 60


async def test_label_values_stay_bounded(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()
    server = await start_http(nursery, metrics)
    for method in ("BREW", "XYZZY", "get", "PROPFIND"):
        reply = await exchange(server.port, request(method, "/", "Connection: close\r\n"))
        assert reply.startswith(b"HTTP/1.1 200 ")
    samples = scrape(metrics)
    assert list(series(samples, "trionet_http_requests_total")) == [
        {"server": name_of(server), "method": "other", "status": "2xx"}
    ]
    labels = {"server": name_of(server), "method": "other"}
    assert value(samples, "trionet_http_requests_total", status="2xx", **labels) == 4
    assert value(samples, "trionet_http_request_duration_seconds_count", **labels) == 4
    assert [method_label(m) for m in ("GET", "PATCH", "get", "M-SEARCH")] == [
        "GET",
        "PATCH",
        "other",
        "other",
    ]
    assert [status_class(s) for s in (101, 204, 308, 451, 599)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
    ]
    codes = (1000, 1006, 1015, 1016, 2999, 3000, 3999, 4000, 4999, 5000, None)
    assert [close_code_label(c) for c in codes] == [
        "1000",
        "1006",
        "1015",
        "other",
        "other",
        "3xxx",
        "3xxx",
        "4xxx",
        "4xxx",
        "other",
        "1006",
    ]


async def test_connections_open_follows_the_connections(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()

    async def echo(conn: trionet.TCPConnection) -> None:
        async for event in conn:
            if isinstance(event, trionet.Data):
                await conn.send(event.data)

    server = await nursery.start(partial(trionet.serve_tcp, echo, 0, LOOPBACK, metrics=metrics))
    label = name_of(server, "tcp")
    a = await trionet.connect_tcp(LOOPBACK, server.port)
    b = await trionet.connect_tcp(LOOPBACK, server.port)
    await wait_until(lambda: metric(metrics, "trionet_connections_open", server=label) == 2)
    for conn in (a, b):
        await conn.send(b"twelve bytes")
        assert await receive_exactly(conn, 12) == b"twelve bytes"
    assert metric(metrics, "trionet_received_bytes_total", server=label) == 24  # live connections
    await a.aclose()
    await b.aclose()
    await wait_until(lambda: metric(metrics, "trionet_connections_open", server=label) == 0)
    samples = scrape(metrics)
    assert value(samples, "trionet_connections_total", server=label) == 2
    assert value(samples, "trionet_received_bytes_total", server=label) == 24
    assert value(samples, "trionet_sent_bytes_total", server=label) == 24
    assert value(samples, "trionet_connections_dropped_total", server=label) == 0
    # A TCP server has no HTTP, WebSocket or UDP series.
    assert not list(series(samples, "trionet_websocket_messages_received_total"))
    assert not list(series(samples, "trionet_udp_datagrams_received_total"))


async def test_tls_handshake_failure_is_counted(
    nursery: trio.Nursery, trionet_tls: TLSCertificates
) -> None:
    metrics = trionet.metrics.Metrics()

    async def never(conn: trionet.TCPConnection) -> None:
        raise AssertionError("no handler runs for a failed handshake")

    server = await nursery.start(
        partial(
            trionet.serve_tcp,
            never,
            0,
            LOOPBACK,
            ssl_context=trionet_tls.server_context,
            metrics=metrics,
        )
    )
    label = name_of(server, "tls")
    # Plain text where a TLS ClientHello belongs.
    await exchange(server.port, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    await wait_until(lambda: metric(metrics, "trionet_handshake_failures_total", server=label) == 1)
    assert metric(metrics, "trionet_handler_errors_total", server=label) == 0


# -- WebSocket -------------------------------------------------------------------------------


async def test_websocket_messages_and_close_codes(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()

    async def echo(ws: trionet.websocket.WebSocketConnection) -> None:
        async for message in ws:
            await ws.send(message.data)

    server = await nursery.start(
        partial(trionet.websocket.serve, echo, 0, LOOPBACK, metrics=metrics)
    )
    label = name_of(server)
    received = "trionet_websocket_messages_received_total"
    sent = "trionet_websocket_messages_sent_total"
    url = f"ws://{LOOPBACK}:{server.port}/"
    async with trionet.websocket.connect(url) as ws:
        for text in ("one", "two", "three"):
            await ws.send(text)
            assert (await ws.receive()).data == text
        # Read from the open connection's statistics. (The echo's count
        # follows its write: the server may not have counted it yet.)
        await wait_until(lambda: metric(metrics, sent, server=label) == 3)
        samples = scrape(metrics)
        assert value(samples, received, server=label) == 3
        assert not list(series(samples, "trionet_websocket_closes_total"))
    async with trionet.websocket.connect(url) as ws:
        await ws.send(b"\x00binary")
        assert (await ws.receive()).data == b"\x00binary"
        await ws.aclose(4001, "the application's own code")
    closes = "trionet_websocket_closes_total"
    await wait_until(lambda: total(metrics, closes) == 2)
    samples = scrape(metrics)
    assert value(samples, closes, server=label, code="1000") == 1
    assert value(samples, closes, server=label, code="4xxx") == 1
    assert value(samples, received, server=label) == 4  # kept after the connections ended
    assert value(samples, sent, server=label) == 4
    assert (
        value(samples, "trionet_http_requests_total", server=label, method="GET", status="1xx") == 2
    )
    # An upgrade is counted, not timed: its "response" lasts as long as the WebSocket.
    assert (
        value(samples, "trionet_http_request_duration_seconds_count", server=label, method="GET")
        is None
    )


# -- UDP -------------------------------------------------------------------------------------


async def test_udp_datagrams(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()

    async def echo(peer: trionet.UDPPeer) -> None:
        async for dgram in peer:
            await peer.send(dgram.data)

    server = await nursery.start(partial(trionet.serve_udp, echo, 0, LOOPBACK, metrics=metrics))
    label = name_of(server, "udp")
    async with trionet.open_udp_socket(LOOPBACK) as sock:
        for payload in (b"a", b"bb", b"ccc"):
            await sock.send(payload, (LOOPBACK, server.port))
            assert (await sock.__anext__()).data == payload
    # (The last echo is counted after its send returns, maybe after it arrived.)
    await wait_until(lambda: metric(metrics, "trionet_udp_datagrams_sent_total", server=label) == 3)
    samples = scrape(metrics)
    assert value(samples, "trionet_udp_datagrams_received_total", server=label) == 3
    assert value(samples, "trionet_udp_datagrams_dropped_total", server=label) == 0
    assert value(samples, "trionet_connections_total", server=label) == 1  # one session
    assert value(samples, "trionet_connections_open", server=label) == 1
    assert value(samples, "trionet_received_bytes_total", server=label) == 6


async def test_udp_drops_are_counted(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()
    release = trio.Event()

    async def stuck(peer: trionet.UDPPeer) -> None:
        await release.wait()  # reads nothing: its queue of one fills up

    server = await nursery.start(
        partial(trionet.serve_udp, stuck, 0, LOOPBACK, queue_size=1, metrics=metrics)
    )
    label = name_of(server, "udp")
    async with trionet.open_udp_socket(LOOPBACK) as sock:
        for _ in range(3):
            await sock.send(b"x", (LOOPBACK, server.port))
        await wait_until(
            lambda: metric(metrics, "trionet_udp_datagrams_received_total", server=label) == 3
        )
    assert metric(metrics, "trionet_udp_datagrams_dropped_total", server=label) == 2
    release.set()


# -- several servers, stopped servers ------------------------------------------------------------


async def test_two_servers_share_one_metrics(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()
    first = await start_http(nursery, metrics)
    second = await start_http(nursery, metrics)
    for _ in range(2):
        await exchange(first.port, request("GET", "/", "Connection: close\r\n"))
    await exchange(second.port, request("GET", "/missing", "Connection: close\r\n"))
    samples = scrape(metrics)
    assert {labels["server"] for labels in series(samples, "trionet_connections_total")} == {
        name_of(first),
        name_of(second),
    }
    requests = "trionet_http_requests_total"
    assert value(samples, requests, server=name_of(first), method="GET", status="2xx") == 2
    assert value(samples, requests, server=name_of(first), method="GET", status="4xx") is None
    assert value(samples, requests, server=name_of(second), method="GET", status="4xx") == 1
    assert value(samples, "trionet_connections_total", server=name_of(second)) == 1


async def test_a_stopped_servers_counters_stay(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()
    server = await start_http(nursery, metrics)
    label = name_of(server)
    for _ in range(3):
        await exchange(server.port, request("GET", "/", "Connection: close\r\n"))
    await wait_until(lambda: metric(metrics, "trionet_connections_open", server=label) == 0)
    before = scrape(metrics)
    await server.shutdown()
    after = scrape(metrics)
    assert value(after, "trionet_connections_open", server=label) is None  # the gauge leaves
    for name in ("trionet_connections_total", "trionet_sent_bytes_total"):
        assert value(after, name, server=label) == value(before, name, server=label) != 0
    requests = {"server": label, "method": "GET", "status": "2xx"}
    assert value(after, "trionet_http_requests_total", **requests) == 3
    # The same again, on the same address: the counters go on from there.
    again = await nursery.start(
        partial(trionet.http.serve, app, server.port, LOOPBACK, metrics=metrics)
    )
    assert name_of(again) == label
    await exchange(again.port, request("GET", "/", "Connection: close\r\n"))
    samples = scrape(metrics)
    assert value(samples, "trionet_http_requests_total", **requests) == 4
    assert value(samples, "trionet_connections_total", server=label) == 4
    await wait_until(lambda: metric(metrics, "trionet_connections_open", server=label) == 0)


# -- exposition --------------------------------------------------------------------------------


async def test_the_handler_answers_get_and_refuses_other_methods(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()

    async def routes(request: trionet.http.Request) -> trionet.http.Response:
        if request.path == "/metrics":
            return await metrics.handler(request)
        return await app(request)

    server = await start_http(nursery, metrics, routes)
    base = f"http://{LOOPBACK}:{server.port}"
    async with trionet.http.Client() as client:
        await client.get(f"{base}/")
        refused = await client.post(f"{base}/metrics", content=b"")
        assert refused.status == 405
        assert refused.headers["allow"] == "GET, HEAD"
        scraped = await client.get(f"{base}/metrics")
    assert scraped.status == 200
    assert scraped.headers["content-type"] == CONTENT_TYPE_LATEST
    samples = parse((await scraped.read()).decode())
    requests = "trionet_http_requests_total"
    assert value(samples, requests, server=name_of(server), method="GET", status="2xx") == 1
    assert value(samples, requests, server=name_of(server), method="POST", status="4xx") == 1


async def test_serve_metrics_on_a_port_of_its_own(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()
    server = await start_http(nursery, metrics)
    exporter = await nursery.start(trionet.metrics.serve_metrics, metrics, 0, LOOPBACK)
    assert exporter.port != server.port
    await exchange(server.port, request("GET", "/", "Connection: close\r\n"))
    async with trionet.http.Client() as client:
        response = await client.get(f"http://{LOOPBACK}:{exporter.port}/metrics")
    assert response.status == 200
    samples = parse((await response.read()).decode())
    requests = "trionet_http_requests_total"
    assert value(samples, requests, server=name_of(server), method="GET", status="2xx") == 1
    # The exporter's own traffic is not in the metrics.
    assert {labels["server"] for labels in series(samples, "trionet_connections_total")} == {
        name_of(server)
    }
    await exporter.shutdown()


async def test_snapshot_is_plain_numbers_and_matches_the_exposition(nursery: trio.Nursery) -> None:
    metrics = trionet.metrics.Metrics()
    server = await start_http(nursery, metrics)
    await exchange(server.port, request("GET", "/", "Connection: close\r\n"))
    snapshot = metrics.snapshot()
    assert json.loads(json.dumps(snapshot)) == snapshot  # plain data, all the way down

    def leaves(tree: dict[str, object]) -> Iterator[object]:
        for item in tree.values():
            if isinstance(item, dict):
                yield from leaves(item)
            else:
                yield item

    assert all(isinstance(leaf, int | float) for leaf in leaves(snapshot))
    counts = snapshot["servers"][name_of(server)]
    assert counts["http_requests_total"] == {"GET": {"2xx": 1}}
    assert counts["http_request_duration_seconds"]["GET"]["count"] == 1
    assert counts["connections_total"] == metric(
        metrics, "trionet_connections_total", server=name_of(server)
    )


async def test_a_scrape_from_another_thread_reads_in_the_servers_thread(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As prometheus_client.start_http_server scrapes: from a thread of its own.
    metrics = trionet.metrics.Metrics()
    server = await start_http(nursery, metrics)
    await exchange(server.port, request("GET", "/", "Connection: close\r\n"))
    read_in: list[threading.Thread] = []
    snapshot = metrics._snapshot

    def spy() -> dict[str, object]:
        read_in.append(threading.current_thread())
        return snapshot()

    monkeypatch.setattr(metrics, "_snapshot", spy)
    text = await trio.to_thread.run_sync(generate_latest, metrics.registry)
    assert read_in == [threading.current_thread()]
    requests = {"server": name_of(server), "method": "GET", "status": "2xx"}
    assert value(parse(text.decode()), "trionet_http_requests_total", **requests) == 1


def test_options_are_checked() -> None:
    registry = CollectorRegistry()
    trionet.metrics.Metrics(registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        trionet.metrics.Metrics(registry=registry)  # the same names twice
    trionet.metrics.Metrics(registry=registry, namespace="other")
    assert "other_connections_open" in generate_latest(registry).decode()
    with pytest.raises(ValueError, match="namespace"):
        trionet.metrics.Metrics(namespace="not a name")
    with pytest.raises(TypeError, match="namespace"):
        trionet.metrics.Metrics(namespace=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="increasing"):
        trionet.metrics.Metrics(duration_buckets=[1.0, 0.5])
    with pytest.raises(TypeError, match="seconds"):
        trionet.metrics.Metrics(duration_buckets=["1"])  # type: ignore[list-item]


def test_without_prometheus_client_metrics_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install 'trionet\[metrics\]'"):
        trionet.metrics.Metrics()


def test_servers_without_metrics_do_not_import_prometheus_client() -> None:
    program = (
        "import sys, trionet, trionet.http, trionet.websocket\n"
        "loaded = [m for m in sys.modules if m.startswith('prometheus_client')]\n"
        "print(sorted(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
