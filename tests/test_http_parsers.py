"""The two request parsers never disagree: h11 (the reference) and llhttp
through httptools (the fast path) read the same bytes into the same
requests, or refuse them with the same status, and keep or close the
connection alike. A framing disagreement between two parsers is how
requests are smuggled, so this is checked on:

* every hostile case the HTTP tests send (their tables, imported);
* every request stream the HTTP test suite sent a server, as recorded in
  ``tests/data/http_requests.json.gz`` (``scripts/record_http_requests``
  records it again), each read as it arrived, whole, and byte by byte;
* known request-smuggling vectors (llhttp CVE-2024-27982, h11
  CVE-2025-43859, bare LF in chunk extensions...);
* hypothesis-generated streams: random requests (methods, targets,
  versions, header casing and whitespace, Content-Length and chunked
  framing with extensions and trailers), pipelined, mutated with garbage,
  and split at random points across reads.

Everything runs sans-IO: :class:`ServerProtocol` driven as the trio driver
drives it, no event loop. The number of generated examples is
``TRIONET_PARSER_EXAMPLES`` (2,000 per property by default; a longer local
run: ``TRIONET_PARSER_EXAMPLES=200000 uv run pytest tests/test_http_parsers.py``).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import trionet.http
import trionet.testing
from tests.test_http_fuzz import INSERTIONS, SMUGGLING
from tests.test_http_server import MALFORMED
from trionet.http import Headers, HTTPConnection
from trionet.http._server import _limits
from trionet.http._server._errors import ProtocolError
from trionet.http._server._events import (
    CLIENT_CLOSED,
    END_OF_BODY,
    NEED_DATA,
    BodyData,
    ParsedHead,
    RequestHead,
)
from trionet.http._server._limits import HTTPLimits
from trionet.http._server._protocol import ServerProtocol

CORPUS = Path(__file__).parent / "data" / "http_requests.json.gz"

EXAMPLES = int(os.environ.get("TRIONET_PARSER_EXAMPLES", "2000"))

# Small limits, so that the generated requests reach them too.
LIMITS = {
    "max_header_size": 600,
    "max_header_count": 12,
    "max_target_length": 120,
    "max_body_size": 300,
    "max_requests_per_connection": 5,
}

Outcome = list[tuple[object, ...]]


def outcome(parser: str, pieces: list[bytes], **limits: object) -> Outcome:
    """What a server connection makes of ``pieces`` (the reads, in order;
    the client closes after the last): each request as the handler sees it
    (method, target, version, headers, body, trailers, whether 100 Continue
    was sent), then whether the connection stays open after the answer, and
    at the end how the connection ended (the error status, the client's
    close, or waiting for more)."""
    proto = ServerProtocol(HTTPLimits(parser=parser, **limits))  # type: ignore[arg-type]
    reads = iter([*pieces, b""])
    seen: Outcome = []

    def feed() -> bool:
        data = next(reads, None)
        if data is None:
            return False
        proto.receive_data(data)
        return True

    try:
        while True:
            event = proto.next_event()
            if event is NEED_DATA:
                if not feed():
                    seen.append(("waiting",))
                    return seen
                continue
            if event is CLIENT_CLOSED:
                seen.append(("closed",))
                return seen
            assert isinstance(event, RequestHead)
            head = (event.method, event.target, event.http_version, event.headers)
            done = proto.start_body()
            continued = False
            body = b""
            while not done:
                continued = continued or bool(proto.continue_response())
                event = proto.next_event()
                if event is NEED_DATA:
                    if not feed():
                        seen.append(("waiting in the body", head, body))
                        return seen
                elif type(event) is BodyData:
                    body += event.data
                else:
                    assert event is END_OF_BODY
                    done = True
            seen.append(("request", head, body, proto.trailers, continued))
            proto.complete_response(200, Headers(), b"ok")
            seen.append(("response", proto.closing))
            if proto.closing:
                return seen
            proto.start_next_request()
    except ProtocolError as exc:
        seen.append(("refused", exc.status))
        return seen


def compare(pieces: list[bytes], **limits: object) -> Outcome:
    """Assert that both parsers make the same of ``pieces``; return it."""
    reference = outcome("h11", pieces, **limits)
    fast = outcome("httptools", pieces, **limits)
    assert fast == reference, f"the parsers disagree on {b''.join(pieces)!r}"
    return reference


# -- choosing the parser ----------------------------------------------------------


async def test_parser_chooses_the_request_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    client, server = trionet.testing.memory_stream_pair()
    assert type(HTTPConnection(server)._protocol._reader).__name__ == "LLHTTPReader"
    chosen = HTTPConnection(server, parser="h11")._protocol._reader
    assert type(chosen).__name__ == "H11Reader"
    with pytest.raises(ValueError, match="parser must be one of 'auto', 'h11', 'httptools'"):
        HTTPConnection(server, parser="llhttp")
    with pytest.raises(ValueError, match="parser must be one of"):
        await trionet.http.serve(ok, 0, "127.0.0.1", parser="fast")
    # Without httptools installed, "auto" is h11, and asking for httptools
    # says how to install it.
    monkeypatch.setattr(_limits, "_httptools_installed", lambda: False)
    assert type(HTTPConnection(server)._protocol._reader).__name__ == "H11Reader"
    with pytest.raises(ImportError, match=r"pip install 'trionet\[fast\]'"):
        HTTPConnection(server, parser="httptools")
    with pytest.raises(ImportError, match="httptools"):
        await trionet.http.serve(ok, 0, "127.0.0.1", parser="httptools")
    await client.aclose()


async def ok(request: trionet.http.Request) -> trionet.http.Response:
    return trionet.http.Response(200)


# -- the hostile cases of the HTTP tests, and known smuggling vectors ----------------

SECOND = b"GET /second HTTP/1.1\r\nHost: test\r\n\r\n"

VECTORS = {
    # llhttp CVE-2024-27982: a space before Content-Length hid it from the parser.
    "CVE-2024-27982 space before Content-Length": (
        b"POST / HTTP/1.1\r\nHost: a\r\n Content-Length: 5\r\n\r\nhello"
    ),
    "space before the first field": b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    # h11 CVE-2025-43859: any two bytes were taken for the CRLF after chunk data.
    "CVE-2025-43859 chunk data without its CRLF": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nAAAAAXX2\r\n45\r\n0\r\n\r\n" + SECOND
    ),
    "chunk data ended by a bare LF": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\n0\r\n\r\n"
    ),
    "bare LF in a chunk extension": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1;a\nb\r\nx\r\n0\r\n\r\n" + SECOND
    ),
    "bare CR in a chunk extension": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1;a\rb\r\nx\r\n0\r\n\r\n" + SECOND
    ),
    "quoted chunk extension with a LF": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'1;a="\n"\r\nx\r\n0\r\n\r\n' + SECOND
    ),
    "chunk size with a space after it": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n"
    ),
    "chunk size overflow": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"10000000000000001\r\nx\r\n0\r\n\r\n"
    ),
    "last chunk without its CRLF, then a request": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + SECOND
    ),
    "trailer fields": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\nX-Sum: 1\r\nX-B:  2 \r\n\r\n" + SECOND
    ),
    "a bad trailer line": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX y\r\n\r\n"
    ),
    "Transfer-Encoding in an HTTP/1.0 request": (
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "Content-Length with a tab": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\t2\t\r\n\r\nab",
    "Content-Length with leading zeros": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 002\r\n\r\nab"
    ),
    "Content-Length twice, equal": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab" + SECOND
    ),
    "Content-Length list, equal": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nab" + SECOND
    ),
    "vertical tab in a value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n",
    "obs-text in a value": b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xe9\r\n\r\n" + SECOND,
    "a tab in the request line": b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
    "two spaces in the request line": b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    "a lowercase method": b"get / HTTP/1.1\r\nHost: a\r\n\r\n" + SECOND,
    "an unknown method": b"BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n" + SECOND,
    "a WebDAV method": b"PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n" + SECOND,
    "HTTP/1.2": b"GET / HTTP/1.2\r\nHost: a\r\n\r\n" + SECOND,
    "HTTP/0.9": b"GET / HTTP/0.9\r\n\r\n",
    "HTTP/3.0": b"GET / HTTP/3.0\r\nHost: a\r\n\r\n",
    "HTTP/1.0 keep-alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + SECOND,
    "empty lines before a request": b"\r\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n" + SECOND,
    "an upgrade": (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + SECOND
    ),
    "an upgrade with a body": (
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: x\r\n"
        b"Content-Length: 2\r\n\r\nab" + SECOND
    ),
    "CONNECT": b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n" + SECOND,
    "100-continue": (
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab" + SECOND
    ),
    "an absolute target": b"GET http://a.test/x?y HTTP/1.1\r\nHost: a.test\r\n\r\n" + SECOND,
    "an asterisk target": b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" + SECOND,
    "a fragment in the target": b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n" + SECOND,
    "DEL in the target": b"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n",
    "NUL in a name": b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n",
    "an empty field name": b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
    "a field without a colon": b"GET / HTTP/1.1\r\nHost: a\r\nX\r\n\r\n",
    "an empty value": b"GET / HTTP/1.1\r\nHost: a\r\nX:\r\nY: \r\n\r\n" + SECOND,
    "a HEAD": b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + SECOND,
    "the client closes mid-head": b"GET / HTTP/1.1\r\nHo",
    "the client closes mid-body": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc",
    "TLS bytes": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
}

TABLES = [
    *(pytest.param(data, id=f"server-{name}") for name, (data, _) in MALFORMED.items()),
    *(pytest.param(case.values[0], id=f"fuzz-{case.id}") for case in SMUGGLING),
    *(pytest.param(data, id=name) for name, data in VECTORS.items()),
]


@pytest.mark.parametrize("data", TABLES)
def test_the_parsers_agree_on_hostile_cases(data: bytes) -> None:
    compare([data])
    compare([data + SECOND])
    compare([bytes([byte]) for byte in data])
    compare([data], **LIMITS)


def test_the_smuggling_vectors_are_refused_or_read_alike() -> None:
    # Not only equal: the known vectors never let the request behind them
    # be read as part of the first one (a check that the comparison above
    # is about something).
    for name in ("CVE-2025-43859 chunk data without its CRLF", "bare LF in a chunk extension"):
        assert compare([VECTORS[name]])[-1] == ("refused", 400), name
    assert compare([VECTORS["CVE-2024-27982 space before Content-Length"]]) == [("refused", 400)]
    trailers = compare([VECTORS["trailer fields"]])
    assert trailers[0][3] == [(b"X-Sum", b"1"), (b"X-B", b"2")]
    assert [event[1][1] for event in trailers if event[0] == "request"] == ["/", "/second"]


# -- the fast path is taken ---------------------------------------------------------

PLAIN = {
    "keep-alive": b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "Connection: close": b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "HTTP/1.0": b"GET / HTTP/1.0\r\n\r\n",
    "HTTP/1.0 keep-alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "a counted body": b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi",
    "an upgrade": (
        b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    ),
}


def test_the_fast_path_reads_plain_requests_itself() -> None:
    # Equal answers could hide a fast path that hands everything to h11:
    # every plain request is read by llhttp, whatever came before it on
    # this thread (llhttp's parser is shared by the connections).
    from trionet.http._server._reader_llhttp import LLHTTPReader

    for _ in range(3):
        for name, data in PLAIN.items():
            reader = LLHTTPReader(HTTPLimits(parser="httptools"))
            reader.receive_data(data)
            event = reader.next_event()
            assert isinstance(event, ParsedHead), name
            assert reader._fallback is None, f"h11 read {name!r}"


# -- every request stream the HTTP test suite sent ------------------------------------


def recorded_streams() -> list[list[bytes]]:
    with gzip.open(CORPUS, "rt", encoding="ascii") as file:
        return [[base64.b64decode(piece) for piece in stream] for stream in json.load(file)]


def test_the_parsers_agree_on_every_request_of_the_test_suite() -> None:
    streams = recorded_streams()
    assert len(streams) > 500  # (the recording is not empty or truncated)
    for pieces in streams:
        compare(pieces)
        compare([b"".join(pieces)])
        if sum(map(len, pieces)) <= 4096:
            compare([bytes([byte]) for byte in b"".join(pieces)])


# -- generated streams --------------------------------------------------------------

METHODS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT"]
ODD_METHODS = [b"PROPFIND", b"BREW", b"get", b"G\x00T", b"", b"GET\t"]
TARGETS = [b"/", b"/a/b?c=d&e=%20", b"*", b"http://x.test/y", b"/a#f", b"//", b"/" + b"a" * 130]
ODD_TARGETS = [b"", b"/a b", b"/\x7f", b"/\x80", b"/\x00", b"x", b"/\t"]
VERSIONS = [b"1.1", b"1.0"]
ODD_VERSIONS = [b"1.2", b"2.0", b"0.9", b"11", b"1.x", b"3.0", b"1.01", b""]
NAMES = [
    b"Host",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Connection",
    b"Expect",
    b"Upgrade",
    b"Trailer",
    b"X-A",
    b"Accept",
]
ODD_NAMES = [b"", b"X A", b"X\x00", b"X\x7f", b"\xff", b" Host", b"Host "]
# Field values: the clean ones, then framing and hostile ones.
CLEAN_VALUES = [
    b"",
    b"a",
    b"keep-alive",
    b"close",
    b"upgrade",
    b"100-continue",
    b"caf\xe9",
    b"a\tb",
]
VALUES = [
    *CLEAN_VALUES,
    *[b"chunked", b"Chunked", b"gzip, chunked", b"chunked, gzip"],
    *[b"0", b"3", b"+3", b"3, 3", b"03"],
    *[b"a\x01b", b"x\x7fy", b"a\rb"],
]


def casing(draw: st.DrawFn, name: bytes) -> bytes:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return bytes(
        c ^ 0x20 if flip and chr(c).isalpha() else c for c, flip in zip(name, flips, strict=True)
    )


CLEAN_NAMES = [b"Connection", b"Expect", b"Upgrade", b"X-A", b"Accept", b"Cookie"]


@st.composite
def heads(draw: st.DrawFn, clean: bool) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """A request line and header fields: well-formed when ``clean``."""
    odd = not clean and draw(st.booleans())
    method = draw(st.sampled_from(METHODS + ODD_METHODS if odd else METHODS))
    target = draw(st.sampled_from(TARGETS + ODD_TARGETS if odd else TARGETS))
    version = draw(st.sampled_from(VERSIONS + ODD_VERSIONS if odd else VERSIONS))
    separator = draw(st.sampled_from([b" "] * 8 + [b"  ", b"\t"])) if odd else b" "
    line = method + separator + target + b" HTTP/" + version
    fields: list[tuple[bytes, bytes]] = []
    if clean or draw(st.integers(0, 4)):
        fields.append((b"Host", b"a.test"))
    for _ in range(draw(st.integers(0, 5))):
        if clean:
            name = draw(st.sampled_from(CLEAN_NAMES))
            value = draw(st.sampled_from(CLEAN_VALUES))
        else:
            name = draw(st.sampled_from(NAMES + ODD_NAMES if odd else NAMES))
            value = draw(st.sampled_from(VALUES) | st.binary(max_size=10))
        fields.append((casing(draw, name), value))
    return line, fields


@st.composite
def bodies(draw: st.DrawFn, clean: bool) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Framing fields and the body bytes that go with them (or, unless
    ``clean``, not)."""
    kinds = ["none", "length", "chunked"] if clean else ["length", "chunked", "both"]
    kind = draw(st.sampled_from(kinds))
    data = draw(st.binary(max_size=40))
    if kind == "none":
        return [], b""

    def pick(good: list[bytes], bad: list[bytes]) -> bytes:
        return draw(st.sampled_from(good if clean else good + bad))

    if kind == "length":
        length = len(data) + (0 if clean else draw(st.sampled_from([0, -1, 1])))
        value = pick([b"%d", b" %d ", b"0%d"], [b"%d, %d", b"+%d", b"%d\x00"])
        return [(b"Content-Length", value.replace(b"%d", b"%d" % max(length, 0)))], data
    body = b""
    rest = data
    while rest:
        size = draw(st.integers(1, len(rest)))
        chunk, rest = rest[:size], rest[size:]
        form = pick([b"%x", b"%X", b"0%x"], [b"%x ", b" %x", b"+%x"])
        extension = pick([b"", b";a", b";a=b", b';a="x y"'], [b";a\nb", b" ;a", b";\x00", b";a\rb"])
        end = pick([b"\r\n"], [b"\n", b"XX", b"", b"\r"])
        body += (form % size) + extension + b"\r\n" + chunk + end
    trailers = pick([b"", b"X-T: 1\r\n", b"X-T:  v \r\nY: 2\r\n"], [b"bad\r\n", b" X: 1\r\n"])
    body += b"0\r\n" + trailers + b"\r\n"
    fields = [(b"Transfer-Encoding", pick([b"chunked", b"Chunked"], [b"gzip, chunked", b"x"]))]
    if kind == "both":
        fields.append((b"Content-Length", b"%d" % len(body)))
    return fields, body


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One request: mostly well-formed, a third of the time not."""
    clean = draw(st.integers(0, 2)) > 0
    line, fields = draw(heads(clean))
    framing, body = draw(bodies(clean))
    fields += framing
    draw(st.randoms()).shuffle(fields)

    def pick(good: list[bytes], bad: list[bytes]) -> bytes:
        return draw(st.sampled_from(good if clean else good + bad))

    ending = pick([b"\r\n"], [b"\n"])
    colon = pick([b": ", b":", b":\t", b":  "], [b" : ", b"\x00: "])
    trailing = pick([b"", b" ", b"\t"], [b"\r", b"\x0b"])
    block = b"".join(name + colon + value + trailing + ending for name, value in fields)
    if not clean and draw(st.booleans()):
        block += b" folded" + ending  # an obs-fold onto the last field
    return line + ending + block + ending + body


@st.composite
def streams(draw: st.DrawFn) -> list[bytes]:
    """Pipelined requests, sometimes mutated, split into reads at random
    points."""
    data = b"".join(draw(st.lists(requests(), min_size=1, max_size=4)))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.sampled_from(["insert", "replace", "delete"]))
        piece = draw(st.sampled_from(INSERTIONS) | st.binary(min_size=1, max_size=4))
        if how == "insert":
            data = data[:at] + piece + data[at:]
        elif how == "replace":
            data = data[:at] + piece + data[at + len(piece) :]
        else:
            data = data[:at] + data[at + 1 :]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY
@given(streams())
@example([VECTORS["CVE-2025-43859 chunk data without its CRLF"]])
def test_the_parsers_agree_on_generated_streams(pieces: list[bytes]) -> None:
    compare(pieces, **LIMITS)


@PROPERTY
@given(st.lists(st.binary(max_size=64), max_size=4))
def test_the_parsers_agree_on_garbage(pieces: list[bytes]) -> None:
    compare(pieces, **LIMITS)
    compare([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", *pieces], **LIMITS)
