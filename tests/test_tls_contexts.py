"""trionet.tls: server and client contexts, over real TLS on loopback.

Certificates come from trustme CAs, written to files as a user's would be;
servers are trionet.serve_tcp with the context under test."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from cryptography.hazmat.primitives import serialization

import trionet
import trionet.tls
from tests._net import receive_exactly
from tests._peers import require_executable
from tests._wait import wait_until

LOOPBACK = "127.0.0.1"

# Seconds `openssl s_client` may take to connect, handshake and quit.
OPENSSL_TIMEOUT = 30.0

ServerFactory = Callable[..., Awaitable[trionet.Server]]


# -- certificates as files ------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A certificate written to disk: its chain, its key, and its DER to compare."""

    certfile: Path
    keyfile: Path
    der: bytes
    cert: Any  # trustme.LeafCert


def write_certificate(cert: Any, certfile: Path, keyfile: Path) -> Issued:
    """Write a trustme certificate's chain and key as PEM files (replacing them)."""
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    keyfile.write_bytes(cert.private_key_pem.bytes())
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode("ascii"))
    return Issued(certfile, keyfile, der, cert)


@dataclass
class PKI:
    """Two unrelated CAs (a renewal can come from another one) and a directory."""

    directory: Path
    ca: Any
    other_ca: Any

    def issue(
        self,
        stem: str,
        *names: str,
        ca: Any = None,
        key_type: trustme.KeyType = trustme.KeyType.ECDSA,
    ) -> Issued:
        cert = (ca or self.ca).issue_cert(*names, common_name=names[0], key_type=key_type)
        return write_certificate(
            cert, self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        )

    def trust_file(self, *cas: Any) -> Path:
        path = self.directory / f"trust-{len(list(self.directory.iterdir()))}.pem"
        path.write_bytes(b"".join(ca.cert_pem.bytes() for ca in cas))
        return path

    def client(
        self, *, check_hostname: bool = True, alpn: list[str] | None = None, **kwargs: Any
    ) -> ssl.SSLContext:
        """A client trusting both CAs (a reload may switch from one to the other)."""
        context = trionet.tls.client_context(
            cafile=self.trust_file(self.ca, self.other_ca), alpn=alpn, **kwargs
        )
        context.check_hostname = check_hostname
        return context


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI(tmp_path, trustme.CA(), trustme.CA())


# -- servers and clients --------------------------------------------------------


async def echo(conn: trionet.TCPConnection) -> None:
    try:
        async for event in conn:
            if isinstance(event, trionet.Data):
                await conn.send(event.data)
    except trionet.ConnectionClosed:
        pass  # clients here may vanish without a close_notify


async def start(
    factory: ServerFactory, context: ssl.SSLContext, handler: Any = echo
) -> trionet.Server:
    return await factory(handler, ssl_context=context)


async def connect(
    server: trionet.Server, client: ssl.SSLContext, server_hostname: str = "localhost"
) -> trionet.TCPConnection:
    return await trionet.connect_tcp(
        LOOPBACK, server.port, ssl_context=client, server_hostname=server_hostname
    )


def served_der(conn: trionet.TCPConnection) -> bytes:
    """The certificate the server presented on this connection, as DER."""
    stream = conn.stream
    assert isinstance(stream, trio.SSLStream)
    der = stream.getpeercert(binary_form=True)
    assert der is not None
    return bytes(der)


async def round_trip(conn: trionet.TCPConnection, data: bytes = b"ping") -> None:
    await conn.send(data)
    assert await receive_exactly(conn, len(data)) == data


async def certificate_served(
    server: trionet.Server, client: ssl.SSLContext, server_hostname: str = "localhost"
) -> bytes:
    """Connect, check the connection works, and return the server's certificate."""
    async with await connect(server, client, server_hostname) as conn:
        await round_trip(conn)
        return served_der(conn)


async def refused(
    server: trionet.Server, client: ssl.SSLContext, server_hostname: str = "localhost"
) -> str:
    """Connect and try a round trip, which must fail with a TLS error; return its
    message.

    In TLS 1.3 a client finishes its handshake before the server has checked
    the client's certificate, so a refusal can surface only at the first read.
    And the client never learns the server's reason: trio's SSLStream drops
    the alert OpenSSL queued when a handshake fails (python-trio/trio#3413),
    so the client sees the connection end without a close_notify. The reason
    is in the server's debug log (see ``server_log``)."""
    with pytest.raises(trionet.TLSError) as caught:
        async with await connect(server, client, server_hostname) as conn:
            await round_trip(conn)
    return str(caught.value)


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """What the TCP server logged, including why handshakes failed (debug level)."""
    caplog.set_level(logging.DEBUG, logger="trionet.tcp")
    return lambda: caplog.text


# -- defaults: versions, ALPN, options ------------------------------------------


async def test_defaults_tls12_floor_alpn_http11_and_hardened_options(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    default = pki.issue("default", "localhost")
    context = trionet.tls.server_context(default.certfile, default.keyfile)
    assert isinstance(context, ssl.SSLContext)
    assert isinstance(context, trionet.tls.ServerContext)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_NONE
    for option in (ssl.OP_NO_COMPRESSION, ssl.OP_NO_RENEGOTIATION, ssl.OP_CIPHER_SERVER_PREFERENCE):
        assert context.options & option
    seen: list[trionet.TLSInfo | None] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        seen.append(conn.tls)
        await echo(conn)

    server = await start(trionet_tcp_server, context, handler)
    # The oldest client still accepted: one that speaks nothing newer than 1.2.
    client = pki.client(alpn=["h2", "http/1.1"])
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    async with await connect(server, client) as conn:
        await round_trip(conn)
        assert conn.tls is not None
        assert (conn.tls.version, conn.tls.alpn_protocol) == ("TLSv1.2", "http/1.1")
        assert served_der(conn) == default.der
    [info] = seen
    assert info is not None
    assert (info.version, info.alpn_protocol, info.peer_certificate) == (
        "TLSv1.2",
        "http/1.1",
        None,
    )
    # And a current client gets TLS 1.3.
    async with await connect(server, pki.client()) as conn:
        assert conn.tls is not None
        assert conn.tls.version == "TLSv1.3"
        assert conn.tls.alpn_protocol is None  # it offered no ALPN


async def test_tls11_client_is_refused(
    pki: PKI, trionet_tcp_server: ServerFactory, server_log: Callable[[], str]
) -> None:
    default = pki.issue("default", "localhost")
    tls11 = pki.client()
    with pytest.warns(DeprecationWarning, match="TLSv1_1"):
        tls11.minimum_version = tls11.maximum_version = ssl.TLSVersion.TLSv1_1
    tls11.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 disables TLS 1.1 above level 0
    # Control: the same client against a server that still allows TLS 1.1. If
    # it cannot connect there either, this OpenSSL cannot speak TLS 1.1 at all
    # and a refusal below would prove nothing about server_context.
    permissive = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with pytest.warns(DeprecationWarning, match="TLSv1_1"):
        permissive.minimum_version = ssl.TLSVersion.TLSv1_1
    permissive.set_ciphers("DEFAULT:@SECLEVEL=0")
    permissive.load_cert_chain(default.certfile, default.keyfile)
    control = await start(trionet_tcp_server, permissive)
    try:
        async with await connect(control, tls11) as conn:
            assert conn.tls is not None
            assert conn.tls.version == "TLSv1.1"
    except trionet.TLSError as exc:
        pytest.skip(f"this OpenSSL cannot speak TLS 1.1 at all ({exc})")

    server = await start(
        trionet_tcp_server, trionet.tls.server_context(default.certfile, default.keyfile)
    )
    await refused(server, tls11)
    await wait_until(lambda: server.statistics().handshake_failures == 1)
    assert "UNSUPPORTED_PROTOCOL" in server_log()


async def test_tls13_floor_refuses_a_tls12_client(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    default = pki.issue("default", "localhost")
    context = trionet.tls.server_context(
        default.certfile, default.keyfile, minimum_version=ssl.TLSVersion.TLSv1_3
    )
    server = await start(trionet_tcp_server, context)
    tls12 = pki.client()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    await refused(server, tls12)
    await wait_until(lambda: server.statistics().handshake_failures == 1)
    assert await certificate_served(server, pki.client()) == default.der


@pytest.mark.parametrize(
    "version",
    [ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1, ssl.TLSVersion.MINIMUM_SUPPORTED],
)
def test_minimum_version_below_tls12_is_refused(pki: PKI, version: ssl.TLSVersion) -> None:
    default = pki.issue("default", "localhost")
    with pytest.raises(ValueError, match="RFC 8996"):
        trionet.tls.server_context(default.certfile, default.keyfile, minimum_version=version)
    with pytest.raises(ValueError, match="RFC 8996"):
        trionet.tls.client_context(minimum_version=version)


@pytest.mark.parametrize(
    ("server_alpn", "client_alpn", "agreed"),
    [
        (("http/1.1",), ["h2", "http/1.1"], "http/1.1"),
        (("http/1.1",), ["h2"], None),  # no overlap: no ALPN, the handshake goes on
        (None, ["http/1.1"], None),  # alpn=None: the server offers nothing
        (("h2", "http/1.1"), ["http/1.1", "h2"], "h2"),  # the server's order wins
    ],
)
async def test_alpn(
    pki: PKI,
    trionet_tcp_server: ServerFactory,
    server_alpn: tuple[str, ...] | None,
    client_alpn: list[str],
    agreed: str | None,
) -> None:
    default = pki.issue("default", "localhost")
    seen: list[str | None] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        assert conn.tls is not None
        seen.append(conn.tls.alpn_protocol)
        await echo(conn)

    context = trionet.tls.server_context(default.certfile, default.keyfile, alpn=server_alpn)
    server = await start(trionet_tcp_server, context, handler)
    async with await connect(server, pki.client(alpn=client_alpn)) as conn:
        await round_trip(conn)
        assert conn.tls is not None
        assert conn.tls.alpn_protocol == agreed
    assert seen == [agreed]


# -- mutual TLS -----------------------------------------------------------------


async def test_mtls_requires_a_certificate_from_client_ca(
    pki: PKI, trionet_tcp_server: ServerFactory, server_log: Callable[[], str]
) -> None:
    default = pki.issue("default", "localhost")
    client_ca = trustme.CA()
    alice = pki.issue("alice", "alice@example.test", ca=client_ca)
    mallory = pki.issue("mallory", "mallory@example.test", ca=pki.other_ca)
    peers: list[dict[str, Any] | None] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        assert conn.tls is not None
        peers.append(conn.tls.peer_certificate)
        await echo(conn)

    context = trionet.tls.server_context(
        default.certfile, default.keyfile, client_ca=pki.trust_file(client_ca)
    )
    assert context.verify_mode == ssl.CERT_REQUIRED
    server = await start(trionet_tcp_server, context, handler)

    # No certificate at all.
    await refused(server, pki.client())
    await wait_until(lambda: server.statistics().handshake_failures == 1)
    assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in server_log()
    # A certificate, from a CA the server does not trust for clients.
    untrusted = pki.client(certfile=mallory.certfile, keyfile=mallory.keyfile)
    await refused(server, untrusted)
    await wait_until(lambda: server.statistics().handshake_failures == 2)
    assert "certificate rejected: self-signed certificate in certificate chain" in server_log()
    assert peers == []  # the handler never ran for either

    trusted = pki.client(certfile=alice.certfile, keyfile=alice.keyfile)
    assert await certificate_served(server, trusted) == default.der
    [peer] = peers
    assert peer is not None
    assert (("commonName", "alice@example.test"),) in peer["subject"]
    assert ("email", "alice@example.test") in peer["subjectAltName"]
    assert server.statistics().handshake_failures == 2


async def test_tls_info_has_both_certificates_and_the_chain_the_client_sent(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    # Alice's certificate comes from an intermediate CA; she sends both, the
    # server trusts only the root.
    default = pki.issue("default", "localhost")
    client_root = trustme.CA()
    intermediate = client_root.create_child_ca()
    alice = pki.issue("alice", "alice@example.test", ca=intermediate)
    intermediate_der = ssl.PEM_cert_to_DER_cert(intermediate.cert_pem.bytes().decode("ascii"))
    seen: list[trionet.TLSInfo] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        assert conn.tls is not None
        seen.append(conn.tls)
        await echo(conn)

    context = trionet.tls.server_context(
        default.certfile,
        default.keyfile,
        client_ca=pki.trust_file(client_root),
        require_client_certificate=False,
    )
    server = await start(trionet_tcp_server, context, handler)
    client = pki.client(certfile=alice.certfile, keyfile=alice.keyfile)
    async with await connect(server, client) as conn:
        await round_trip(conn)
        assert conn.tls is not None
        assert conn.tls.local_certificate == alice.der
        assert conn.tls.peer_certificate_chain[0] == default.der
    [server_side] = seen
    assert server_side.local_certificate == default.der
    assert server_side.peer_certificate_chain == (alice.der, intermediate_der)

    # A client without a certificate, with a context built without trionet:
    # it knows no certificate of its own, and the server received none.
    plain = ssl.create_default_context(cafile=pki.trust_file(pki.ca))
    async with await connect(server, plain) as conn:
        await round_trip(conn)
        assert conn.tls is not None
        assert (conn.tls.local_certificate, conn.tls.peer_certificate_chain[0]) == (
            None,
            default.der,
        )
    assert (seen[1].peer_certificate, seen[1].peer_certificate_chain) == (None, ())


async def test_mtls_optional_accepts_a_client_without_certificate(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    default = pki.issue("default", "localhost")
    client_ca = trustme.CA()
    alice = pki.issue("alice", "alice@example.test", ca=client_ca)
    mallory = pki.issue("mallory", "mallory@example.test", ca=pki.other_ca)
    peers: list[dict[str, Any] | None] = []

    async def handler(conn: trionet.TCPConnection) -> None:
        assert conn.tls is not None
        peers.append(conn.tls.peer_certificate)
        await echo(conn)

    context = trionet.tls.server_context(
        default.certfile,
        default.keyfile,
        client_ca=pki.trust_file(client_ca),
        require_client_certificate=False,
    )
    assert context.verify_mode == ssl.CERT_OPTIONAL
    server = await start(trionet_tcp_server, context, handler)
    await certificate_served(server, pki.client())
    await certificate_served(server, pki.client(certfile=alice.certfile, keyfile=alice.keyfile))
    anonymous, identified = peers
    assert anonymous is None
    assert identified is not None
    assert (("commonName", "alice@example.test"),) in identified["subject"]
    # Optional is not "anything goes": a certificate that does not verify is refused.
    await refused(server, pki.client(certfile=mallory.certfile, keyfile=mallory.keyfile))
    await wait_until(lambda: server.statistics().handshake_failures == 1)


async def test_mtls_applies_under_every_sni_name(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    # The client certificate is verified with the trust store of the context
    # the handshake was switched to: each per-name context must have it.
    default = pki.issue("default", "localhost")
    api = pki.issue("api", "api.example.test")
    client_ca = trustme.CA()
    alice = pki.issue("alice", "alice@example.test", ca=client_ca)
    context = trionet.tls.server_context(
        default.certfile,
        default.keyfile,
        client_ca=pki.trust_file(client_ca),
        sni={"api.example.test": (api.certfile, api.keyfile)},
    )
    server = await start(trionet_tcp_server, context)
    with_certificate = pki.client(certfile=alice.certfile, keyfile=alice.keyfile)
    assert await certificate_served(server, with_certificate, "api.example.test") == api.der
    await refused(server, pki.client(), "api.example.test")
    await wait_until(lambda: server.statistics().handshake_failures == 1)


# -- SNI ------------------------------------------------------------------------


@pytest.fixture
def sni_certificates(pki: PKI) -> dict[str, Issued]:
    return {
        "default": pki.issue("default", "localhost"),
        "a": pki.issue("a", "a.example.test"),
        "b": pki.issue("b", "b.example.test"),
        "wild": pki.issue("wild", "*.wild.example.test"),
    }


def sni_context(issued: dict[str, Issued]) -> trionet.tls.ServerContext:
    return trionet.tls.server_context(
        issued["default"].certfile,
        issued["default"].keyfile,
        sni={
            "a.example.test": (issued["a"].certfile, issued["a"].keyfile),
            "B.Example.TEST": (issued["b"].certfile, issued["b"].keyfile),  # keys: any case
            "*.wild.example.test": (issued["wild"].certfile, issued["wild"].keyfile),
        },
    )


@pytest.mark.parametrize(
    ("server_hostname", "expected"),
    [
        ("a.example.test", "a"),
        ("b.example.test", "b"),
        ("x.wild.example.test", "wild"),
        ("y.x.wild.example.test", "default"),  # a wildcard matches one label only
        ("wild.example.test", "default"),  # ...and not zero
        ("unknown.example.test", "default"),
        (LOOPBACK, "default"),  # clients send no SNI for an IP address
    ],
)
async def test_sni_chooses_the_certificate_by_name(
    pki: PKI,
    trionet_tcp_server: ServerFactory,
    sni_certificates: dict[str, Issued],
    server_hostname: str,
    expected: str,
) -> None:
    server = await start(trionet_tcp_server, sni_context(sni_certificates))
    # A client that checks host names where the right certificate must verify;
    # one that does not where the default (for "localhost") is the answer.
    client = pki.client(check_hostname=expected != "default")
    der = await certificate_served(server, client, server_hostname)
    assert der == sni_certificates[expected].der


@pytest.fixture
def openssl() -> str:
    """The path of ``openssl``; skipped without it, failed under ``CI=true``
    so that the interop test never silently stops running. (A sync fixture, so
    that the skip happens before trio runs and keeps its reason.)"""
    return require_executable("openssl", "apt-get install openssl")


async def s_client(openssl: str, port: int, *args: str) -> str:
    """Run ``openssl s_client`` against a loopback port with nothing to send;
    return its output."""
    command = [openssl, "s_client", "-connect", f"{LOOPBACK}:{port}", *args]
    with trio.fail_after(OPENSSL_TIMEOUT):
        result = await trio.run_process(
            command, stdin=b"", capture_stdout=True, capture_stderr=True, check=False
        )
    output = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, f"{command} exited {result.returncode}: {result.stderr!r}"
    return output


def line_value(output: str, prefix: str) -> str:
    match = re.search(rf"^{re.escape(prefix)}\s*(.*)$", output, re.MULTILINE)
    assert match, f"no {prefix!r} line in:\n{output}"
    return match.group(1).strip()


@pytest.mark.parametrize(
    ("arguments", "expected_cn"),
    [
        (["-servername", "a.example.test"], "a.example.test"),
        (["-servername", "A.EXAMPLE.TEST"], "a.example.test"),  # compared case-insensitively
        (["-servername", "q.wild.example.test"], "*.wild.example.test"),
        (["-servername", "nobody.example.test"], "localhost"),
        (["-noservername"], "localhost"),
    ],
)
async def test_sni_and_alpn_with_openssl_s_client(
    openssl: str,
    trionet_tcp_server: ServerFactory,
    sni_certificates: dict[str, Issued],
    arguments: list[str],
    expected_cn: str,
) -> None:
    server = await start(trionet_tcp_server, sni_context(sni_certificates))
    output = await s_client(openssl, server.port, *arguments, "-alpn", "http/1.1")
    assert line_value(output, "subject=").endswith(f"CN = {expected_cn}")
    assert line_value(output, "ALPN protocol:") == "http/1.1"


# -- reload ---------------------------------------------------------------------


async def test_reload_new_handshakes_get_the_new_certificate_open_connections_keep_theirs(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    old = pki.issue("server", "localhost")
    context = trionet.tls.server_context(old.certfile, old.keyfile)
    server = await start(trionet_tcp_server, context)
    client = pki.client()

    async with await connect(server, client) as first:
        await round_trip(first, b"before")
        assert served_der(first) == old.der
        # Renewal: other files in place of the old ones, signed by another CA.
        new = pki.issue("server", "localhost", ca=pki.other_ca)
        assert (new.certfile, new.keyfile) == (old.certfile, old.keyfile)
        assert await certificate_served(server, client) == old.der  # not read until reload
        # It touches no context in use, so it may run in a worker thread.
        await trio.to_thread.run_sync(context.reload)
        async with await connect(server, client) as second:
            await round_trip(second, b"after")
            assert served_der(second) == new.der
        # The connection opened before the reload is unaffected.
        await round_trip(first, b"still here")
        assert served_der(first) == old.der
    assert server.statistics().handshake_failures == 0


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (trustme.KeyType.ECDSA, trustme.KeyType.RSA),
        (trustme.KeyType.RSA, trustme.KeyType.ECDSA),
    ],
    ids=["ecdsa-to-rsa", "rsa-to-ecdsa"],
)
async def test_reload_to_another_key_type_serves_only_the_new_certificate(
    pki: PKI,
    trionet_tcp_server: ServerFactory,
    before: trustme.KeyType,
    after: trustme.KeyType,
) -> None:
    # OpenSSL keeps one certificate per key type in a context: loading an RSA
    # certificate into a context that has served an ECDSA one leaves the ECDSA
    # one there, preferred by clients. A reload must not leave it reachable.
    old = pki.issue("server", "localhost", key_type=before)
    context = trionet.tls.server_context(old.certfile, old.keyfile)
    server = await start(trionet_tcp_server, context)
    new = pki.issue("server", "localhost", key_type=after)
    context.reload()
    for maximum in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        client = pki.client()
        client.maximum_version = maximum
        assert await certificate_served(server, client) == new.der


def test_the_traps_reload_avoids_are_real(pki: PKI) -> None:
    # The behaviour of plain ssl/OpenSSL that reload() is built to avoid, shown
    # without trionet (the module docstring's "Reload" paragraph).
    ecdsa = pki.issue("ecdsa", "localhost", key_type=trustme.KeyType.ECDSA)
    rsa = pki.issue("rsa", "localhost", key_type=trustme.KeyType.RSA)
    # 1. load_cert_chain into a live context is no replacement when the key type changes.
    live = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    live.load_cert_chain(ecdsa.certfile, ecdsa.keyfile)
    assert memory_handshake(live, pki.client()).der == ecdsa.der
    live.load_cert_chain(rsa.certfile, rsa.keyfile)
    assert memory_handshake(live, pki.client()).der == ecdsa.der  # the "replaced" one
    # 2. A load that fails half-way (new certificate, old key) breaks a live context.
    live = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    live.load_cert_chain(ecdsa.certfile, ecdsa.keyfile)
    renewed = pki.issue("renewed", "localhost")
    with pytest.raises(ssl.SSLError):
        live.load_cert_chain(renewed.certfile, ecdsa.keyfile)
    with pytest.raises(ssl.SSLError, match="NO_SHARED_CIPHER"):
        memory_handshake(live, pki.client())


@dataclass(frozen=True)
class Handshake:
    der: bytes
    session: ssl.SSLSession | None
    reused: bool


def memory_handshake(
    server_context: ssl.SSLContext,
    client_context: ssl.SSLContext,
    session: ssl.SSLSession | None = None,
) -> Handshake:
    """Handshake two SSLObjects over memory BIOs, then pass one byte so that the
    client reads the server's TLS 1.3 session tickets."""
    client_in, client_out, server_in, server_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_context.wrap_bio(
        client_in, client_out, server_hostname="localhost", session=session
    )
    server = server_context.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(5):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        server_in.write(client_out.read())
        client_in.write(server_out.read())
    server.write(b"!")
    client_in.write(server_out.read())
    assert client.read(1) == b"!"
    der = client.getpeercert(binary_form=True)
    assert der is not None
    return Handshake(der, client.session, client.session_reused)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_sessions_resume_across_a_reload(pki: PKI, version: ssl.TLSVersion) -> None:
    # The session cache and ticket keys belong to the ServerContext itself,
    # which a reload keeps: what the reload docstring promises.
    old = pki.issue("server", "localhost")
    context = trionet.tls.server_context(old.certfile, old.keyfile)
    client = pki.client()
    client.maximum_version = version
    first = memory_handshake(context, client)
    assert not first.reused
    new = pki.issue("server", "localhost", ca=pki.other_ca)
    context.reload()
    resumed = memory_handshake(context, client, first.session)
    assert resumed.reused
    assert resumed.der == old.der  # a resumption shows no new certificate
    fresh = memory_handshake(context, client)
    assert (fresh.reused, fresh.der) == (False, new.der)


async def test_failed_reload_keeps_serving_the_old_certificate(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    old = pki.issue("server", "localhost")
    context = trionet.tls.server_context(old.certfile, old.keyfile)
    server = await start(trionet_tcp_server, context)
    client = pki.client()
    old_key = old.keyfile.read_bytes()

    # Half a renewal: the new certificate is written, the key not yet.
    new = pki.issue("server", "localhost")
    new_key = new.keyfile.read_bytes()
    old.keyfile.write_bytes(old_key)
    with pytest.raises(ssl.SSLError, match="does not match") as caught:
        context.reload()
    assert str(old.certfile) in str(caught.value)
    assert await certificate_served(server, client) == old.der

    old.keyfile.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(old.keyfile))):
        context.reload()
    old.certfile.write_text("not a certificate\n")
    old.keyfile.write_bytes(new_key)
    with pytest.raises(ssl.SSLError, match="no PEM certificate"):
        context.reload()
    assert await certificate_served(server, client) == old.der

    # The renewal completes: the next reload takes it.
    write_certificate(new.cert, new.certfile, new.keyfile)
    context.reload()
    assert await certificate_served(server, client) == new.der
    assert server.statistics().handshake_failures == 0


async def test_reload_rereads_every_sni_certificate_all_or_nothing(
    pki: PKI, trionet_tcp_server: ServerFactory, sni_certificates: dict[str, Issued]
) -> None:
    context = sni_context(sni_certificates)
    server = await start(trionet_tcp_server, context)
    client = pki.client()
    old_default, old_a = sni_certificates["default"], sni_certificates["a"]

    new_default = pki.issue("default", "localhost", ca=pki.other_ca)
    old_a.certfile.unlink()  # one file of many missing: nothing is reloaded
    with pytest.raises(FileNotFoundError, match=re.escape(str(old_a.certfile))):
        context.reload()
    assert await certificate_served(server, client) == old_default.der
    assert await certificate_served(server, client, "a.example.test") == old_a.der

    new_a = pki.issue("a", "a.example.test", ca=pki.other_ca)
    new_wild = pki.issue("wild", "*.wild.example.test", ca=pki.other_ca)
    context.reload()
    assert await certificate_served(server, client) == new_default.der
    assert await certificate_served(server, client, "a.example.test") == new_a.der
    assert await certificate_served(server, client, "z.wild.example.test") == new_wild.der
    assert await certificate_served(server, client, "b.example.test") == sni_certificates["b"].der


async def test_reload_rereads_the_client_ca(pki: PKI, trionet_tcp_server: ServerFactory) -> None:
    default = pki.issue("default", "localhost")
    first_ca, second_ca = trustme.CA(), trustme.CA()
    alice = pki.issue("alice", "alice@example.test", ca=first_ca)
    bob = pki.issue("bob", "bob@example.test", ca=second_ca)
    client_ca = pki.trust_file(first_ca)
    context = trionet.tls.server_context(default.certfile, default.keyfile, client_ca=client_ca)
    server = await start(trionet_tcp_server, context)
    as_alice = pki.client(certfile=alice.certfile, keyfile=alice.keyfile)
    as_bob = pki.client(certfile=bob.certfile, keyfile=bob.keyfile)
    await certificate_served(server, as_alice)
    await refused(server, as_bob)

    client_ca.write_bytes(second_ca.cert_pem.bytes())  # the first CA is retired
    context.reload()
    await certificate_served(server, as_bob)
    await refused(server, as_alice)
    await wait_until(lambda: server.statistics().handshake_failures == 2)


# -- errors ---------------------------------------------------------------------


def encrypted_key(issued: Issued, password: bytes) -> Path:
    key = serialization.load_pem_private_key(issued.cert.private_key_pem.bytes(), password=None)
    path = issued.keyfile.with_suffix(".encrypted.key")
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password),
        )
    )
    return path


async def test_encrypted_key_needs_its_password(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    default = pki.issue("default", "localhost")
    keyfile = encrypted_key(default, b"s3cret")
    # Without a password OpenSSL would prompt on the terminal: refused instead.
    with pytest.raises(ValueError, match=f"{re.escape(str(keyfile))}.*encrypted: pass password="):
        trionet.tls.server_context(default.certfile, keyfile)
    with pytest.raises(ssl.SSLError, match="wrong password"):
        trionet.tls.server_context(default.certfile, keyfile, password="guess")
    asked: list[str] = []

    def password() -> str:
        asked.append("password")
        return "s3cret"

    context = trionet.tls.server_context(default.certfile, keyfile, password=password)
    context.reload()
    assert asked == ["password", "password"]  # asked again on each reload
    server = await start(trionet_tcp_server, context)
    assert await certificate_served(server, pki.client()) == default.der


def test_file_errors_name_the_file(pki: PKI, tmp_path: Path) -> None:
    default = pki.issue("default", "localhost")
    other = pki.issue("other", "localhost")
    missing = tmp_path / "missing.pem"
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")

    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        trionet.tls.server_context(missing, default.keyfile)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        trionet.tls.server_context(default.certfile, missing)
    with pytest.raises(IsADirectoryError, match=re.escape(str(tmp_path))):
        trionet.tls.server_context(tmp_path, default.keyfile)
    with pytest.raises(ssl.SSLError, match=f"{re.escape(repr(str(junk)))} holds no PEM cert"):
        trionet.tls.server_context(junk, default.keyfile)
    with pytest.raises(ssl.SSLError, match=f"{re.escape(repr(str(junk)))} holds no PEM private"):
        trionet.tls.server_context(default.certfile, junk)
    with pytest.raises(ssl.SSLError, match="does not match") as caught:
        trionet.tls.server_context(default.certfile, other.keyfile)
    assert caught.value.reason == "KEY_VALUES_MISMATCH"
    with pytest.raises(ssl.SSLError, match="holds no PEM private key"):
        trionet.tls.server_context(default.certfile)  # the key is not in the certfile
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        trionet.tls.server_context(
            default.certfile, default.keyfile, sni={"a.test": (missing, None)}
        )
    with pytest.raises(FileNotFoundError, match=f"client CA.*{re.escape(str(missing))}"):
        trionet.tls.server_context(default.certfile, default.keyfile, client_ca=missing)
    with pytest.raises(ssl.SSLError, match=f"client CA {re.escape(repr(str(junk)))}"):
        trionet.tls.server_context(default.certfile, default.keyfile, client_ca=junk)
    with pytest.raises(FileNotFoundError, match=f"CA file.*{re.escape(str(missing))}"):
        trionet.tls.client_context(cafile=missing)
    with pytest.raises(ssl.SSLError, match=f"CA file {re.escape(repr(str(junk)))}"):
        trionet.tls.client_context(cafile=junk)
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        trionet.tls.client_context(certfile=missing)


def test_combined_pem_file_needs_no_keyfile(pki: PKI, tmp_path: Path) -> None:
    default = pki.issue("default", "localhost")
    combined = tmp_path / "combined.pem"
    combined.write_bytes(default.keyfile.read_bytes() + default.certfile.read_bytes())
    context = trionet.tls.server_context(combined)
    assert memory_handshake(context, pki.client()).der == default.der


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("a.*.test", "whole leftmost label"),
        ("f*o.test", "whole leftmost label"),
        ("*", "matches nothing"),
        ("a..test", "empty label"),
        ("127.0.0.1", "IP address"),
        ("::1", "IP address"),
        ("☃.test", "not a valid international host name"),
    ],
)
def test_bad_sni_names_are_refused(pki: PKI, name: str, complaint: str) -> None:
    default = pki.issue("default", "localhost")
    with pytest.raises(ValueError, match=re.escape(complaint)):
        trionet.tls.server_context(
            default.certfile, default.keyfile, sni={name: (default.certfile, default.keyfile)}
        )


async def test_international_server_names_are_matched_by_their_a_labels(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    # The sni table may name faß.de as people write it; clients send its
    # IDNA 2008 A-label (xn--fa-hia.de), which trionet's connect also sends
    # for server_hostname="faß.de" (Python's IDNA 2003 codec would send
    # fass.de, a different domain, and the check would fail).
    default = pki.issue("default", "localhost")
    german = pki.issue("german", "xn--fa-hia.de")
    wild = pki.issue("wild", "*.xn--bcher-kva.test")
    context = trionet.tls.server_context(
        default.certfile,
        default.keyfile,
        sni={
            "faß.de": (german.certfile, german.keyfile),
            "*.Bücher.test": (wild.certfile, wild.keyfile),
        },
    )
    server = await start(trionet_tcp_server, context)
    client = pki.client()
    assert await certificate_served(server, client, "faß.de") == german.der
    assert await certificate_served(server, client, "xn--fa-hia.de") == german.der
    assert await certificate_served(server, client, "shop.bücher.test") == wild.der
    # fass.de is another name: the default certificate (not valid for it).
    unchecked = pki.client(check_hostname=False)
    assert await certificate_served(server, unchecked, "fass.de") == default.der


def test_bad_arguments_are_refused(pki: PKI) -> None:
    default = pki.issue("default", "localhost")
    pair = (default.certfile, default.keyfile)
    with pytest.raises(ValueError, match="twice"):
        trionet.tls.server_context(*pair, sni={"a.test": pair, "A.test": pair})
    with pytest.raises(ValueError, match="pair"):
        trionet.tls.server_context(*pair, sni={"a.test": default.certfile})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="sequence of protocol names"):
        trionet.tls.server_context(*pair, alpn="http/1.1")
    with pytest.raises(ValueError, match="1 to 255 bytes"):
        trionet.tls.server_context(*pair, alpn=("",))
    with pytest.raises(ValueError, match="1 to 255 bytes"):
        trionet.tls.client_context(alpn=("x" * 256,))
    with pytest.raises(ValueError, match="go with a certfile"):
        trionet.tls.client_context(keyfile=default.keyfile)


def test_server_context_refuses_changes_that_would_not_apply(pki: PKI) -> None:
    default = pki.issue("default", "localhost")
    context = trionet.tls.server_context(default.certfile, default.keyfile)
    with pytest.raises(TypeError, match="reload"):
        context.load_cert_chain(default.certfile, default.keyfile)
    with pytest.raises(TypeError, match="client_ca="):
        context.load_verify_locations(default.certfile)
    with pytest.raises(TypeError, match="alpn="):
        context.set_alpn_protocols(["h2"])
    with pytest.raises(TypeError, match="sni="):
        context.sni_callback = None
    with pytest.raises(TypeError, match="sni="):
        context.set_servername_callback(None)
    assert context.sni_callback is not None


# -- the client context ---------------------------------------------------------


async def test_client_context_verifies_by_default(
    pki: PKI, trionet_tcp_server: ServerFactory
) -> None:
    default = pki.issue("default", "localhost")
    server = await start(
        trionet_tcp_server, trionet.tls.server_context(default.certfile, default.keyfile)
    )
    system_trust = trionet.tls.client_context()
    assert (system_trust.verify_mode, system_trust.check_hostname) == (ssl.CERT_REQUIRED, True)
    assert system_trust.minimum_version == ssl.TLSVersion.TLSv1_2
    # trustme's CA is in no system store.
    assert "certificate" in await refused(server, system_trust)
    own_ca = trionet.tls.client_context(cafile=pki.trust_file(pki.ca), alpn=["http/1.1"])
    async with await connect(server, own_ca) as conn:
        assert conn.tls is not None
        assert conn.tls.alpn_protocol == "http/1.1"
    # The host name is checked too.
    assert "hostname" in (await refused(server, own_ca, "elsewhere.test")).lower()
    # A cafile replaces the system store rather than adding to it.
    assert own_ca.cert_store_stats()["x509_ca"] == 1
