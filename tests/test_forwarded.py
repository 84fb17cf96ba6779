"""Whom a server believes behind a reverse proxy: ``trionet._trust`` (the
trusted peers) and ``trionet.http._forwarded`` (``Forwarded`` and
``X-Forwarded-*``, RFC 7239), both sans-IO, checked table by table and
fuzzed."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trionet._trust import SocketAddress, TrustedPeers
from trionet.http._forwarded import MAX_HOPS, ForwardedView, resolve

# -- TrustedPeers: what it accepts ---------------------------------------------


@pytest.mark.parametrize(
    ("allow", "expected_repr", "truthy", "everyone"),
    [
        (None, "TrustedPeers(None)", False, False),
        ("", "TrustedPeers(None)", False, False),
        (" , ,", "TrustedPeers(None)", False, False),
        ([], "TrustedPeers(None)", False, False),
        ("*", "TrustedPeers('*')", True, True),
        ("127.0.0.1", "TrustedPeers('127.0.0.1')", True, False),
        ("::1", "TrustedPeers('::1')", True, False),
        ("10.0.0.0/8", "TrustedPeers('10.0.0.0/8')", True, False),
        ("fd00::/8", "TrustedPeers('fd00::/8')", True, False),
        ("10.0.0.0/255.0.0.0", "TrustedPeers('10.0.0.0/8')", True, False),
        ("unix", "TrustedPeers('unix')", True, False),
        ("UNIX", "TrustedPeers('unix')", True, False),
        (" 127.0.0.1 ,10.0.0.0/8,, ", "TrustedPeers('127.0.0.1, 10.0.0.0/8')", True, False),
        (["127.0.0.1", " ::1 ", ""], "TrustedPeers('127.0.0.1, ::1')", True, False),
        (("unix", "*"), "TrustedPeers('unix, *')", True, True),
        ("127.0.0.1, 127.0.0.1/32", "TrustedPeers('127.0.0.1')", True, False),
    ],
)
def test_trusted_peers_accepts(
    allow: str | list[str] | tuple[str, ...] | None,
    expected_repr: str,
    truthy: bool,
    everyone: bool,
) -> None:
    trusted = TrustedPeers(allow)
    assert repr(trusted) == expected_repr
    assert bool(trusted) is truthy
    assert trusted.trust_all is everyone


@pytest.mark.parametrize(
    "item",
    [
        "localhost",
        "10.0.0.1/8",  # host bits set
        "fd00::1/8",
        "10.0.0.0/33",
        "1.2.3",
        "300.1.1.1",
        "01.2.3.4",
        "[::1]",
        "127.0.0.1:80",
        "*.example.com",
        "unix:/run/app.sock",
        "**",
    ],
)
def test_trusted_peers_refuses_and_names_the_item(item: str) -> None:
    with pytest.raises(
        ValueError, match=r"a trusted peer must be .*, not " + re.escape(repr(item))
    ):
        TrustedPeers(f"127.0.0.1, {item}")
    with pytest.raises(ValueError, match="a trusted peer must be"):
        TrustedPeers([item])


@pytest.mark.parametrize("allow", [b"127.0.0.1", 127, ["127.0.0.1", 1], [None]])
def test_trusted_peers_refuses_what_is_not_text(allow: object) -> None:
    with pytest.raises(TypeError):
        TrustedPeers(allow)  # type: ignore[arg-type]


def test_trusted_peers_is_immutable() -> None:
    trusted = TrustedPeers("127.0.0.1")
    with pytest.raises(AttributeError, match="immutable"):
        trusted._all = True
    assert not trusted.trust_all


# -- TrustedPeers: whom it trusts -----------------------------------------------

ALLOW = "127.0.0.1, 10.0.0.0/8, fd00::/8, ::1"


@pytest.mark.parametrize(
    ("allow", "peer", "expected"),
    [
        (ALLOW, ("127.0.0.1", 5000), True),
        (ALLOW, ("127.0.0.2", 5000), False),
        (ALLOW, ("10.200.3.4", 1), True),
        (ALLOW, ("11.0.0.1", 1), False),
        (ALLOW, ("::1", 80, 0, 0), True),
        (ALLOW, ("fd12::3", 80, 0, 0), True),
        (ALLOW, ("fe80::1%eth0", 80, 0, 2), False),
        (ALLOW, ("2001:db8::1", 80, 0, 0), False),
        # IPv4-mapped peers (a dual-stack socket) match the IPv4 entries.
        (ALLOW, ("::ffff:10.0.0.1", 80, 0, 0), True),
        (ALLOW, ("::ffff:127.0.0.1", 80, 0, 0), True),
        (ALLOW, ("::ffff:11.0.0.1", 80, 0, 0), False),
        ("::ffff:0:0/96", ("::ffff:11.0.0.1", 80, 0, 0), True),
        # Unix peers: a path, or "" for an unnamed socket.
        (ALLOW, "/run/app.sock", False),
        (ALLOW, "", False),
        ("unix", "/run/app.sock", True),
        ("unix", "", True),
        ("unix", ("127.0.0.1", 80), False),
        # Odd shapes are never trusted, except by "*".
        (ALLOW, (), False),
        (ALLOW, ("not-an-ip", 80), False),
        (ALLOW, (b"127.0.0.1", 80), False),
        ("*", ("203.0.113.9", 1), True),
        ("*", "/run/app.sock", True),
        ("*", (), True),
        (None, ("127.0.0.1", 80), False),
        (None, "", False),
    ],
)
def test_trusts_peer(allow: str | None, peer: SocketAddress, expected: bool) -> None:
    assert TrustedPeers(allow).trusts(peer) is expected


@pytest.mark.parametrize(
    ("allow", "host", "expected"),
    [
        (ALLOW, "127.0.0.1", True),
        (ALLOW, " 10.1.2.3 ", True),
        (ALLOW, "[::1]", True),
        (ALLOW, "::1", True),
        (ALLOW, "::ffff:10.9.9.9", True),
        (ALLOW, "[fd00::5]", True),
        (ALLOW, "203.0.113.9", False),
        (ALLOW, "unknown", False),
        (ALLOW, "_hidden", False),
        (ALLOW, "", False),
        (ALLOW, "[127.0.0.1", False),
        ("unix", "127.0.0.1", False),
        ("*", "unknown", True),
        ("*", "203.0.113.9", True),
    ],
)
def test_trusts_host(allow: str, host: str, expected: bool) -> None:
    assert TrustedPeers(allow).trusts_host(host) is expected


# -- resolve(): tables ----------------------------------------------------------

PROXY = ("127.0.0.1", 40000)
V = ForwardedView


def fields(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.encode(), value.encode("latin-1")) for name, value in pairs]


XFF = "X-Forwarded-For"
XFP = "X-Forwarded-Proto"
XFH = "X-Forwarded-Host"
FWD = "Forwarded"


def family(given: list[tuple[str, str]]) -> str:
    """The family of fields a case is about: ``Forwarded`` when it has one."""
    return "forwarded" if any(name.lower() == "forwarded" for name, _ in given) else "x-forwarded"


def seen(client: str, port: int = 0, scheme: str = "http", host: str | None = "app.test") -> V:
    return V((client, port), scheme, host)


P = pytest.param

# Through a trusted proxy (PROXY, trusted by ALLOW); the request by itself
# says scheme "http", host "app.test".
THROUGH_A_PROXY = [
    P([], None, id="no fields"),
    P([(XFF, "203.0.113.9")], seen("203.0.113.9"), id="single proxy"),
    P([(XFF, "203.0.113.9:5678")], seen("203.0.113.9", 5678), id="XFF with port"),
    P([(XFF, "[2001:DB8:0::1]:80")], seen("2001:db8::1", 80), id="XFF bracketed IPv6, port"),
    P([(XFF, "[2001:db8::1]")], seen("2001:db8::1"), id="XFF bracketed IPv6"),
    P([(XFF, "2001:db8:0:0::1")], seen("2001:db8::1"), id="XFF bare IPv6"),
    P([(XFF, "::ffff:203.0.113.9")], seen("203.0.113.9"), id="XFF IPv4-mapped"),
    P([("x-FORWARDED-for", "203.0.113.9")], seen("203.0.113.9"), id="names in any case"),
    P(
        [(XFF, "6.6.6.6, 203.0.113.9, 10.0.0.2, 10.0.0.3")],
        seen("203.0.113.9"),
        id="trusted intermediaries, forged hop left of the client",
    ),
    P([(XFF, "10.0.0.1, 10.0.0.2, ::1")], seen("10.0.0.1"), id="all trusted: left-most"),
    P([(XFF, "1.1.1.1, unknown, 10.0.0.1")], seen("unknown"), id="non-IP hop is the client"),
    P([(XFF, "1.1.1.1, not an ip:x")], seen("not an ip:x"), id="garbage kept whole"),
    P([(XFF, "10.0.0.1:99999")], seen("10.0.0.1:99999"), id="bad port makes garbage"),
    P([(XFF, " , 203.0.113.9 ,, 10.0.0.1, ")], seen("203.0.113.9"), id="empty entries skipped"),
    P([(XFF, " , ,")], None, id="only empty entries"),
    P(
        [(XFF, "203.0.113.9"), ("x-forwarded-for", "10.0.0.1, 10.0.0.2")],
        seen("203.0.113.9"),
        id="repeated XFF lines joined in order",
    ),
    # X-Forwarded-Proto / -Host: aligned when the lists match, else right-most.
    P([(XFF, "203.0.113.9"), (XFP, " HTTPS ")], seen("203.0.113.9", 0, "https"), id="XFP"),
    P(
        [(XFF, "203.0.113.9, 10.0.0.1"), (XFP, "https, http"), (XFH, "front.test, inner.test")],
        seen("203.0.113.9", 0, "https", "front.test"),
        id="XFP/XFH aligned with the chosen hop",
    ),
    P(
        [(XFF, "6.6.6.6, 203.0.113.9, 10.0.0.1"), (XFP, "https, http"), (XFH, "a.test, b.test")],
        seen("203.0.113.9", 0, "http", "b.test"),
        id="XFP/XFH not aligned: right-most",
    ),
    P(
        [(XFF, "203.0.113.9"), (XFP, "https"), (XFF, "10.0.0.1"), (XFP, "http")],
        seen("203.0.113.9", 0, "https"),
        id="XFP aligned across repeated lines",
    ),
    P([(XFF, "203.0.113.9"), (XFP, "ftp")], seen("203.0.113.9"), id="XFP: other schemes ignored"),
    P([(XFP, "http, https")], seen(*PROXY, "https"), id="XFP alone: client stays the peer"),
    P([(XFH, " example.com:8443 ")], seen(*PROXY, "http", "example.com:8443"), id="XFH alone"),
    P([(XFP, "gopher")], None, id="XFP alone, not a scheme"),
    P([(XFH, " ")], None, id="XFH alone, empty"),
    # Forwarded (RFC 7239).
    P([(FWD, "for=203.0.113.9")], seen("203.0.113.9"), id="Forwarded"),
    P(
        [(FWD, 'For="[2001:db8:cafe::17]:4711";PROTO=HTTPS;Host="example.com"')],
        seen("2001:db8:cafe::17", 4711, "https", "example.com"),
        id="Forwarded: quoted IPv6 with port, proto, host",
    ),
    P([(FWD, 'for="203.0.113.9:80"')], seen("203.0.113.9", 80), id="Forwarded: IPv4 with port"),
    P([(FWD, 'for="[::ffff:203.0.113.9]"')], seen("203.0.113.9"), id="Forwarded: IPv4-mapped"),
    P([(FWD, "for=unknown")], seen("unknown"), id="Forwarded: unknown"),
    P([(FWD, 'for="_gazonk:_port"')], seen("_gazonk"), id="Forwarded: obfuscated, obf. port"),
    P([(FWD, 'for="_hidden:8080"')], seen("_hidden", 8080), id="Forwarded: obfuscated, port"),
    P([(FWD, 'for="203.0.113.9:_p1"')], seen("203.0.113.9"), id="Forwarded: obfuscated port"),
    P([(FWD, "proto=https")], seen("unknown", 0, "https"), id="Forwarded: no for= is unknown"),
    P(
        [
            (
                FWD,
                "for=6.6.6.6;proto=http;host=x, for=203.0.113.9;proto=https;host=front.test,"
                " for=10.0.0.1;proto=http;host=inner",
            )
        ],
        seen("203.0.113.9", 0, "https", "front.test"),
        id="Forwarded: proto and host of the chosen element",
    ),
    P(
        [(FWD, "for=203.0.113.9, for=10.0.0.1;proto=https;host=inner")],
        seen("203.0.113.9"),
        id="Forwarded: the chosen element says nothing, the request's kept",
    ),
    P([(FWD, 'for=10.0.0.1, for="[::1]"')], seen("10.0.0.1"), id="Forwarded: all trusted"),
    P(
        [(FWD, ' , for=203.0.113.9 ; ;by=x;host="a\\.test" ,, ')],
        seen("203.0.113.9", 0, "http", "a.test"),
        id="Forwarded: escapes, spaces around separators, empty elements and pairs",
    ),
    P(
        [(FWD, "for=203.0.113.9;proto=https"), ("forwarded", "for=10.0.0.1")],
        seen("203.0.113.9", 0, "https"),
        id="Forwarded: repeated lines joined",
    ),
    P([(FWD, "for=203.0.113.9;proto=ws")], seen("203.0.113.9"), id="Forwarded: other proto"),
    P([(FWD, 'for=203.0.113.9;host=""')], seen("203.0.113.9"), id="Forwarded: empty host"),
    P([(FWD, " , ;, ")], None, id="Forwarded: only empty elements"),
]


@pytest.mark.parametrize(("given", "expected"), THROUGH_A_PROXY)
def test_resolve(given: list[tuple[str, str]], expected: V | None) -> None:
    view = resolve(
        PROXY,
        fields(*given),
        TrustedPeers(ALLOW),
        scheme="http",
        host="app.test",
        header=family(given),
    )
    assert view == expected


def test_only_the_family_the_server_is_told_of_is_read() -> None:
    # A proxy keeps only its own family up to date: the other one arrives as
    # the client wrote it.
    both = fields((XFF, "198.51.100.1"), (XFP, "https"), (XFH, "xf.test"), (FWD, "for=203.0.113.9"))
    trusted = TrustedPeers(ALLOW)
    xff = resolve(PROXY, both, trusted, scheme="http", host="app.test")
    assert xff == seen("198.51.100.1", 0, "https", "xf.test")
    fwd = resolve(PROXY, both, trusted, scheme="http", host="app.test", header="forwarded")
    assert fwd == seen("203.0.113.9")
    only_forwarded = fields((FWD, "for=203.0.113.9;host=evil.test"))
    assert resolve(PROXY, only_forwarded, trusted, scheme="http", host="app.test") is None
    only_xff = fields((XFF, "203.0.113.9"))
    assert resolve(PROXY, only_xff, trusted, scheme="http", host="a", header="forwarded") is None


FORGED = [(XFF, "1.1.1.1"), (XFP, "https"), (XFH, "evil.test"), (FWD, "for=1.1.1.1;host=evil")]

# Who is trusted, and who connects.
PEERS_AND_TRUST = [
    P(ALLOW, ("203.0.113.7", 1), FORGED, None, id="untrusted peer, everything forged"),
    P(ALLOW, ("203.0.113.7", 1), [(XFF, "1.1.1.1")], None, id="untrusted peer, forged XFF"),
    P(None, PROXY, FORGED, None, id="trust nobody"),
    P("*", ("203.0.113.7", 1), [(XFF, "6.6.6.6, 203.0.113.9")], seen("6.6.6.6"), id="*"),
    P("*", PROXY, [(XFF, "unknown, 203.0.113.9")], seen("unknown"), id="* keeps a non-IP"),
    P("*", PROXY, [(FWD, "for=_a, for=_b")], seen("_a"), id="* in Forwarded"),
    P("unix", "", [(XFF, "203.0.113.9")], seen("203.0.113.9"), id="unix peer"),
    P("unix", "/s", [(XFF, "6.6.6.6, 127.0.0.1")], seen("127.0.0.1"), id="unix: IP hops untrusted"),
    P("unix", "/run/s", [(XFP, "https")], seen("/run/s", 0, "https"), id="unix peer, XFP alone"),
    P("unix", PROXY, [(XFF, "203.0.113.9")], None, id="unix only, IP peer"),
    P(
        ALLOW,
        ("::ffff:127.0.0.1", 9, 0, 0),
        [(XFF, "203.0.113.9")],
        seen("203.0.113.9"),
        id="IPv4-mapped peer",
    ),
    P(ALLOW, ("::1", 9, 0, 0), [(FWD, "for=203.0.113.9")], seen("203.0.113.9"), id="IPv6 peer"),
]


@pytest.mark.parametrize(("allow", "peer", "given", "expected"), PEERS_AND_TRUST)
def test_resolve_by_peer(
    allow: str | None, peer: SocketAddress, given: list[tuple[str, str]], expected: V | None
) -> None:
    view = resolve(
        peer,
        fields(*given),
        TrustedPeers(allow),
        scheme="http",
        host="app.test",
        header=family(given),
    )
    assert view == expected


MALFORMED = [
    "for=[2001:db8::1]",  # an IPv6 address must be quoted
    'for="203.0.113.9',  # unterminated quote
    "for=1.1.1.1;FOR=2.2.2.2",  # duplicate parameter in an element
    "for = 1.1.1.1",  # no whitespace around "="
    "for=1.1.1.1 proto=https",
    "for=",
    "=1.1.1.1",
    "for",
    'for="a"b',
    'for="\x01"',
    "for=1.1.1.1,,garbage",
]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_forwarded_changes_nothing(value: str) -> None:
    trusted = TrustedPeers(ALLOW)
    with_xff = fields((FWD, value), (XFF, "198.51.100.1"), (XFP, "https"))
    assert resolve(PROXY, with_xff, trusted, scheme="http", host="a", header="forwarded") is None
    assert resolve(PROXY, fields((FWD, value)), trusted, scheme="http", host=None) is None


def test_the_request_defaults_are_kept() -> None:
    trusted = TrustedPeers(ALLOW)
    view = resolve(PROXY, fields((XFF, "203.0.113.9")), trusted, scheme="https", host=None)
    assert view == V(("203.0.113.9", 0), "https", None)


# -- resolve(): bounded work ------------------------------------------------------


def test_the_walk_stops_after_max_hops() -> None:
    trusted = TrustedPeers(ALLOW)
    # An untrusted hop just beyond the cap, then MAX_HOPS trusted ones.
    chain = ["6.6.6.6", "203.0.113.9"] + [f"10.0.{i // 250}.{i % 250 + 1}" for i in range(MAX_HOPS)]
    view = resolve(PROXY, fields((XFF, ", ".join(chain))), trusted, scheme="http", host=None)
    assert MAX_HOPS == 64
    assert view is not None
    assert view.client == (chain[-MAX_HOPS], 0)
    forwarded = ", ".join(f'for="{hop}"' for hop in chain)
    view = resolve(
        PROXY, fields((FWD, forwarded)), trusted, scheme="http", host=None, header="forwarded"
    )
    assert view is not None
    assert view.client == (chain[-MAX_HOPS], 0)
    # One trusted hop fewer and the untrusted one is in reach.
    view = resolve(PROXY, fields((XFF, ", ".join(chain[1:-1]))), trusted, scheme="http", host=None)
    assert view is not None
    assert view.client == ("203.0.113.9", 0)


def test_a_huge_chain_is_read_in_linear_time() -> None:
    # Quadratic work on 50 000 hops would not finish in a test's lifetime.
    trusted = TrustedPeers(ALLOW)
    hops = 50_000
    huge = fields(
        (XFF, ", ".join(["10.0.0.1"] * hops)),
        (XFP, ", ".join(["https"] * hops)),
        (FWD, ", ".join(['for="[::1]:1";proto=https'] * hops) + ', for="'),  # malformed at the end
    )
    view = resolve(PROXY, huge, trusted, scheme="http", host=None)
    assert view == V(("10.0.0.1", 0), "https", None)
    assert resolve(PROXY, huge, trusted, scheme="http", host=None, header="forwarded") is None
    many_lines = fields(*[(XFF, "10.0.0.2")] * hops, (XFF, "203.0.113.9, 10.0.0.1"))
    view = resolve(PROXY, many_lines, trusted, scheme="http", host=None)
    assert view == V(("203.0.113.9", 0), "http", None)
    huge_forwarded = fields((FWD, ", ".join(['for="\\"\\\\' + "x" * 50 + '"'] * hops)))
    view = resolve(PROXY, huge_forwarded, trusted, scheme="http", host=None, header="forwarded")
    assert view == V(('"\\' + "x" * 50, 0), "http", None)


# -- resolve(): never raises -------------------------------------------------------

NAMES = [b"Forwarded", b"forwarded", b"X-Forwarded-For", b"x-forwarded-proto", b"X-FORWARDED-HOST"]
ALPHABET = st.sampled_from(
    [b"", b",", b";", b"=", b'"', b"\\", b" ", b":", b"[", b"]", b"_", b"for", b"proto",
     b"host", b"https", b"unknown", b"10.0.0.1", b"203.0.113.9", b"::1", b"fd00::2", b"99999",
     b"\xb2", b"\xff"]
)  # fmt: skip
FIELD_VALUES = st.one_of(st.binary(max_size=64), st.lists(ALPHABET, max_size=24).map(b"".join))
PEER_HOSTS = ["127.0.0.1", "10.1.1.1", "203.0.113.7", "::1", "junk"]
PEERS = st.one_of(
    st.tuples(st.sampled_from(PEER_HOSTS), st.integers(0, 65535)),
    st.sampled_from(["", "/run/app.sock"]),
)
ALLOWS = st.sampled_from([None, "*", ALLOW, "unix", "10.0.0.0/8, unix"])


@settings(max_examples=400, deadline=None)
@given(
    peer=PEERS,
    allow=ALLOWS,
    given_fields=st.lists(st.tuples(st.sampled_from(NAMES), FIELD_VALUES), max_size=6),
    scheme=st.sampled_from(["http", "https"]),
    host=st.one_of(st.none(), st.just("app.test")),
    header=st.sampled_from(["x-forwarded", "forwarded"]),
)
def test_resolve_never_raises(
    peer: SocketAddress,
    allow: str | None,
    given_fields: list[tuple[bytes, bytes]],
    scheme: str,
    host: str | None,
    header: str,
) -> None:
    trusted = TrustedPeers(allow)
    view = resolve(peer, given_fields, trusted, scheme=scheme, host=host, header=header)
    if not trusted.trusts(peer):
        assert view is None
    if view is not None:
        client_host, port = view.client
        assert isinstance(client_host, str)
        assert 0 <= port <= 65535
        assert view.scheme in ("http", "https")
        assert view.host is None or (view.host and view.host == view.host.strip())


@settings(max_examples=300, deadline=None)
@given(
    chain=st.lists(
        st.one_of(
            st.ip_addresses(v=4).map(str),
            st.sampled_from(["10.0.0.1", "10.9.9.9", "127.0.0.1", "::1", "fd00::1", "unknown"]),
        ),
        min_size=1,
        max_size=80,
    )
)
def test_both_header_families_choose_the_same_hop(chain: list[str]) -> None:
    """Against a model: the right-most untrusted hop, else the left-most of the last 64."""
    trusted = TrustedPeers(ALLOW)
    window = chain[-MAX_HOPS:]
    expected = window[0]
    for hop in reversed(window):
        ip = ipaddress.ip_address(hop) if hop != "unknown" else None
        if ip is None or not trusted.trusts_host(hop):
            expected = hop
            break
    xff = resolve(PROXY, fields((XFF, ", ".join(chain))), trusted, scheme="http", host=None)
    quoted = ", ".join(f'for="[{hop}]"' if ":" in hop else f"for={hop}" for hop in chain)
    fwd = resolve(
        PROXY, fields((FWD, quoted)), trusted, scheme="http", host=None, header="forwarded"
    )
    assert xff is not None
    assert fwd is not None
    assert xff.client == fwd.client == (expected, 0)
