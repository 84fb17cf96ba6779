"""TLS contexts for servers and clients: certificates by name, mutual TLS, reload.

``trionet.tls.server_context(certfile, keyfile)`` returns an :class:`ssl.SSLContext`
to pass as ``ssl_context=`` to :func:`~trionet.serve_tcp` (and later the HTTPS
server): TLS 1.2 or newer, ALPN ``http/1.1``, optional client certificates,
several certificates chosen by server name, and :meth:`ServerContext.reload`
to pick up renewed certificates without a restart (Node's
``server.setSecureContext``). :func:`client_context` is the client side.

Theory of operation
-------------------

**Certificates by name (SNI).** A client names the host it wants in its
ClientHello (the ``server_name`` extension, RFC 6066 section 3), before the
server has sent anything. OpenSSL runs the context's servername callback on
every ClientHello, with or without that extension (Python's
``sni_callback``; ``server_name`` is ``None`` when the client sent none, as
clients do when they connect to an IP address). The callback may point the
connection at another ``SSLContext`` (``ssl_object.context = other``,
``SSL_set_SSL_CTX``), and the certificate is taken from that context. A
:class:`ServerContext` is such a *front* context: it holds no certificate at
all, and its callback always switches the connection to a *leaf* context that
holds exactly one certificate, the one for the name asked (exact names first,
then ``*.`` wildcards matching one label, then the default certificate).

**What comes from which context.** Some settings are copied into a connection
when it is created (``SSL_new``) and stay those of the front context: the
protocol versions, the options and ciphers, whether a client certificate is
requested, the session cache and the session-ticket keys. Others are read from
the connection's current context during the handshake, hence from the leaf:
the certificate, the trust store that verifies client certificates, the ALPN
choice (RFC 7301) and what ``getpeercert()`` reports. So every context of a
:class:`ServerContext`, front and leaves, is configured by one function with
the same settings; they differ only in the certificate.

**Reload.** Loading a certificate into a context that is already serving
(``load_cert_chain`` on the live context) does reach new handshakes while
open connections keep their own copy, but it has two traps, both shown by
this module's tests: OpenSSL keeps one certificate *per key type*, so after an
ECDSA certificate is replaced by an RSA one the old ECDSA certificate is still
offered to every client that prefers ECDSA (OpenSSL's own client does); and a load that fails
half-way (a renewed certificate beside a key not yet renewed) leaves the live
context with a certificate and no key, failing every handshake. So
:meth:`ServerContext.reload` never touches a context in use: it builds a
complete new set of leaf contexts from the files, and only once all of them
loaded does it swap them in, in a single assignment the callback reads once
per handshake. A failed reload changes nothing. Connections already open, or
already past their ClientHello, keep the certificate they got; sessions
resume across a reload because the ticket keys live in the front context.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import os
import ssl
import typing
import weakref

from ._arguments import check_alpn, check_minimum_version, check_pair, check_server_name

__all__ = ["ServerContext", "client_context", "server_context"]

_T = typing.TypeVar("_T")


# Python's defaults for server contexts since 3.10, restated so that the intent
# is written down, plus no renegotiation (a TLS 1.2 feature that has mostly
# been an attack surface, and that TLS 1.3 removed). Compression is off because
# of CRIME; ephemeral (EC)DH keys give forward secrecy.
_SERVER_OPTIONS = (
    ssl.OP_NO_COMPRESSION
    | ssl.OP_CIPHER_SERVER_PREFERENCE
    | ssl.OP_SINGLE_DH_USE
    | ssl.OP_SINGLE_ECDH_USE
    | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
)
_CLIENT_OPTIONS = ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)

_PEM_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"
_PEM_PRIVATE_KEY = b"PRIVATE KEY-----"  # PKCS#8, RSA, EC, encrypted PKCS#8
_PEM_ENCRYPTED = (b"ENCRYPTED PRIVATE KEY-----", b"Proc-Type: 4,ENCRYPTED")
_PEM_CERTIFICATE_END = b"-----END CERTIFICATE-----"

# The certificate (DER) each context built here presents in its handshakes,
# for TLSInfo.local_certificate: the ssl module cannot read it back.
_PRESENTED: weakref.WeakKeyDictionary[ssl.SSLContext, bytes] = weakref.WeakKeyDictionary()


def presented_certificate(context: ssl.SSLContext) -> bytes | None:
    """The certificate (DER) ``context`` presents, when trionet loaded it
    (:func:`server_context`, :func:`client_context` with ``certfile``);
    ``None`` for a context built elsewhere."""
    return _PRESENTED.get(context)


@dataclasses.dataclass(frozen=True)
class _Settings:
    """Everything but the certificate: the same in every context of a server."""

    minimum_version: ssl.TLSVersion
    alpn: tuple[str, ...]
    verify_mode: ssl.VerifyMode
    client_ca: str | None
    password: str | bytes | collections.abc.Callable[[], str | bytes] | None


@dataclasses.dataclass(frozen=True)
class _Source:
    """Where a certificate comes from (``keyfile`` ``None``: the key is in ``certfile``)."""

    certfile: str
    keyfile: str | None


@dataclasses.dataclass(frozen=True)
class _Generation:
    """One complete set of leaf contexts, swapped in whole by a reload."""

    default: ssl.SSLContext
    exact: dict[str, ssl.SSLContext]
    wildcard: dict[str, ssl.SSLContext]  # keyed by what follows "*."

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        if not server_name:
            return self.default
        # DNS names are case-insensitive (RFC 4343); a trailing dot is not
        # allowed in SNI (RFC 6066 section 3) but costs nothing to forgive.
        name = server_name.lower().removesuffix(".")
        found = self.exact.get(name)
        if found is not None:
            return found
        _, dot, parent = name.partition(".")
        if dot:
            found = self.wildcard.get(parent)
            if found is not None:
                return found
        return self.default


# The descriptor behind ssl.SSLContext.sni_callback, which ServerContext
# hides behind a property that refuses assignment.
_SNI_CALLBACK_SLOT: typing.Any = ssl.SSLContext.sni_callback


class ServerContext(ssl.SSLContext):
    """A server ``ssl.SSLContext`` that knows where its certificates came from.

    Build one with :func:`server_context`; pass it as ``ssl_context=`` to a
    trionet server. It chooses the certificate for each handshake by the name
    the client asked for (SNI), and :meth:`reload` re-reads every file it was
    built from (the default certificate, the certificate of every name, the
    client CA) while it serves.

    Its settings are fixed when it is built: ``load_cert_chain``,
    ``load_verify_locations``, ``set_alpn_protocols`` and assigning
    ``sni_callback`` raise ``TypeError``, because the certificates, trust
    store and ALPN protocols of a handshake come from contexts it builds
    itself, where such a change would silently not apply (see the module's
    theory of operation). Pass the arguments to :func:`server_context`
    instead.
    """

    _settings: _Settings
    _default_source: _Source
    _sni_sources: dict[str, _Source]
    _generation: _Generation

    def __new__(cls, *args: object, **kwargs: object) -> typing.Self:
        return super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)

    def __init__(
        self, settings: _Settings, default_source: _Source, sni_sources: dict[str, _Source]
    ) -> None:
        self._settings = settings
        self._default_source = default_source
        self._sni_sources = sni_sources
        _configure(self, settings)
        self._generation = self._build()
        _SNI_CALLBACK_SLOT.__set__(self, self._choose_certificate)

    def reload(self) -> None:
        """Re-read every certificate, key and client CA file; new handshakes
        use them, open connections are untouched (Node's
        ``server.setSecureContext``).

        All files are loaded into new contexts first; only when every one
        loaded are they put in service, all at once. If anything fails,
        nothing changes and the server goes on with the certificates it had.

        It is synchronous and reads files: call it from a signal handler task
        (``SIGHUP``) or a timer. It touches no context in use, so it may also
        run in a worker thread (``await trio.to_thread.run_sync(ctx.reload)``).

        Sessions survive it: a client resuming a session made before the
        reload is not shown the new certificate, and, with ``client_ca``, is
        not asked for its certificate again, so a client CA removed from
        ``client_ca`` stops new handshakes at once but resumptions only when
        their sessions expire (OpenSSL's default lifetime: two hours).

        Raises:
            FileNotFoundError: A file is missing (the message names it).
            OSError: A file cannot be read.
            ssl.SSLError: A file holds no usable certificate or key, or a key
                does not match its certificate (the message names the files).
            ValueError: A key is encrypted and no ``password`` was given.
        """
        self._generation = self._build()

    def _build(self) -> _Generation:
        leaves: dict[_Source, ssl.SSLContext] = {}

        def leaf(source: _Source) -> ssl.SSLContext:
            # Names sharing a certificate share a context: loaded once.
            if source not in leaves:
                leaves[source] = _leaf_context(self._settings, source)
            return leaves[source]

        default = leaf(self._default_source)
        exact: dict[str, ssl.SSLContext] = {}
        wildcard: dict[str, ssl.SSLContext] = {}
        for name, source in self._sni_sources.items():
            if name.startswith("*."):
                wildcard[name[2:]] = leaf(source)
            else:
                exact[name] = leaf(source)
        return _Generation(default, exact, wildcard)

    def _choose_certificate(
        self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext
    ) -> None:
        # Always switch, also to the default: this context holds no
        # certificate of its own, so a missed switch fails loudly instead of
        # serving something stale.
        ssl_object.context = self._generation.context_for(server_name)

    @property
    def sni_callback(self) -> typing.Any:
        """The callback choosing the certificate by name; read-only here."""
        return _SNI_CALLBACK_SLOT.__get__(self, type(self))

    @sni_callback.setter
    def sni_callback(self, value: object) -> None:
        raise TypeError(
            "a ServerContext chooses certificates by name itself: "
            "pass sni= to trionet.tls.server_context()"
        )

    def load_cert_chain(
        self, certfile: typing.Any, keyfile: typing.Any = None, password: typing.Any = None
    ) -> None:
        """Refused with ``TypeError``: pass the files to :func:`server_context`
        (``certfile``, ``sni``); :meth:`reload` re-reads them."""
        raise TypeError(
            "a ServerContext holds its certificates in contexts of its own: pass them to "
            "trionet.tls.server_context() (certfile, sni=), and call reload() to re-read them"
        )

    def load_verify_locations(
        self, cafile: typing.Any = None, capath: typing.Any = None, cadata: typing.Any = None
    ) -> None:
        """Refused with ``TypeError``: pass ``client_ca`` to :func:`server_context`."""
        raise TypeError(
            "a ServerContext verifies client certificates in contexts of its own: "
            "pass client_ca= to trionet.tls.server_context()"
        )

    def set_alpn_protocols(self, alpn_protocols: collections.abc.Iterable[str]) -> None:
        """Refused with ``TypeError``: pass ``alpn`` to :func:`server_context`."""
        raise TypeError(
            "a ServerContext negotiates ALPN in contexts of its own: "
            "pass alpn= to trionet.tls.server_context()"
        )


def server_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    *,
    password: str | bytes | collections.abc.Callable[[], str | bytes] | None = None,
    client_ca: str | os.PathLike[str] | None = None,
    require_client_certificate: bool = True,
    sni: collections.abc.Mapping[str, tuple[str | os.PathLike[str], str | os.PathLike[str] | None]]
    | None = None,
    alpn: collections.abc.Sequence[str] | None = ("http/1.1",),
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> ServerContext:
    """Build a TLS server context from certificate files (Node's
    ``tls.createSecureContext`` plus ``SNICallback``).

    The result serves TLS 1.2 and 1.3 with Python's default cipher list
    (forward-secret suites only), no compression, no renegotiation, and
    session resumption (tickets and session IDs). Files are PEM, as Node,
    nginx and certbot write them.

    Args:
        certfile: The default certificate, followed by its intermediate CA
            certificates; served when the client names no host, or one not
            in ``sni``.
        keyfile: Its private key; ``None`` when the key is in ``certfile``.
        password: Decrypts encrypted private keys (every key file uses the
            same one): the password, or a function returning it, called on
            each load, so on each :meth:`~ServerContext.reload` too.
        client_ca: A PEM file of the CA certificates that sign client
            certificates, or an OpenSSL hashed directory (``c_rehash``). With
            it, clients must present a certificate signed by one of them
            (mutual TLS), which the handler sees as the ``peer_certificate``
            of :attr:`TCPConnection.tls <trionet.TCPConnection.tls>`.
        require_client_certificate: With ``client_ca``: ``True`` (default)
            refuses a client without a certificate; ``False`` accepts it (its
            ``peer_certificate`` is ``None``) but still refuses a certificate
            that does not verify.
        sni: Other certificates by server name: ``{"api.example.com":
            (certfile, keyfile), "*.example.com": (certfile, None)}``. Names
            are compared case-insensitively; a ``*.`` entry matches exactly
            one more label (``a.example.com``, not ``example.com`` nor
            ``a.b.example.com``); exact names win over wildcards.
            Internationalized names may be given in either form
            (``bücher.example`` or its IDNA 2008 A-label,
            ``xn--bcher-kva.example``).
        alpn: The application protocols to offer in preference order
            (RFC 7301); ``None`` or ``()`` for no ALPN. The default offers
            only ``http/1.1``, what trionet's HTTP server speaks: offering
            ``h2`` would make browsers choose it. A client offering none of
            them gets no ALPN protocol (the handshake goes on).
        minimum_version: The oldest TLS version accepted: ``TLSv1_2``
            (default) or ``TLSv1_3``. Older ones are refused because TLS 1.0
            and 1.1 are deprecated (RFC 8996).

    Returns:
        A :class:`ServerContext`.

    Raises:
        FileNotFoundError: A file is missing (the message names it).
        OSError: A file cannot be read.
        ssl.SSLError: A file holds no usable certificate or key, or a key does
            not match its certificate (the message names the files).
        ValueError: An argument is invalid (an ``sni`` name, an ``alpn``
            protocol, ``minimum_version``), or a key is encrypted and no
            ``password`` was given.
    """
    settings = _Settings(
        minimum_version=check_minimum_version(minimum_version),
        alpn=check_alpn(alpn),
        verify_mode=(
            ssl.CERT_NONE
            if client_ca is None
            else ssl.CERT_REQUIRED
            if require_client_certificate
            else ssl.CERT_OPTIONAL
        ),
        client_ca=None if client_ca is None else os.fspath(client_ca),
        password=password,
    )
    sni_sources: dict[str, _Source] = {}
    for name, files in (sni or {}).items():
        key = check_server_name(name)
        if key in sni_sources:
            raise ValueError(f"sni names {name!r} twice (names are case-insensitive)")
        sni_sources[key] = _source(*check_pair(name, files))
    return ServerContext(settings, _source(certfile, keyfile), sni_sources)


def client_context(
    *,
    cafile: str | os.PathLike[str] | None = None,
    certfile: str | os.PathLike[str] | None = None,
    keyfile: str | os.PathLike[str] | None = None,
    password: str | bytes | collections.abc.Callable[[], str | bytes] | None = None,
    alpn: collections.abc.Sequence[str] | None = None,
    minimum_version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
) -> ssl.SSLContext:
    """Build a TLS client context that verifies the server (Node's
    ``tls.connect`` options ``ca``, ``cert``, ``key``, ``ALPNProtocols``).

    Certificates and host names are verified: pass the name to check as
    ``server_hostname`` when connecting.

    Args:
        cafile: A PEM file of the CA certificates to trust, or an OpenSSL
            hashed directory, *instead of* the system's trust store; ``None``
            (default) trusts the system's store.
        certfile: A client certificate (and its intermediates) to present to
            servers that ask for one (mutual TLS).
        keyfile: Its private key; ``None`` when the key is in ``certfile``.
        password: Decrypts an encrypted private key: the password, or a
            function returning it.
        alpn: The application protocols to offer in preference order
            (RFC 7301); ``None`` (default) offers none.
        minimum_version: The oldest TLS version accepted: ``TLSv1_2``
            (default) or ``TLSv1_3`` (RFC 8996 deprecates the older ones).

    Returns:
        An ``ssl.SSLContext`` for :func:`~trionet.connect_tcp`'s
        ``ssl_context``.

    Raises:
        FileNotFoundError: A file is missing (the message names it).
        OSError: A file cannot be read.
        ssl.SSLError: A file holds no usable certificate or key, or the key
            does not match the certificate.
        ValueError: An argument is invalid (``keyfile`` or ``password``
            without ``certfile``, an ``alpn`` protocol, ``minimum_version``),
            or the key is encrypted and no ``password`` was given.
    """
    minimum_version = check_minimum_version(minimum_version)
    protocols = check_alpn(alpn)
    if certfile is None and (keyfile is not None or password is not None):
        raise ValueError("keyfile and password go with a certfile")
    if cafile is None:
        context = ssl.create_default_context()  # verifying, with the system's store
    else:
        # With a CA argument, create_default_context loads that and nothing else.
        path = os.fspath(cafile)
        ca_file, ca_path = _trust_location(path, "CA file")
        context = _with_trust_errors(
            path,
            "CA file",
            lambda: ssl.create_default_context(cafile=ca_file, capath=ca_path),
        )
    context.minimum_version = minimum_version
    context.options |= _CLIENT_OPTIONS
    if protocols:
        context.set_alpn_protocols(protocols)
    if certfile is not None:
        _load_chain(context, _source(certfile, keyfile), password)
    return context


# -- building contexts ------------------------------------------------------------


def _configure(context: ssl.SSLContext, settings: _Settings) -> None:
    """The settings every context of a server shares (see the theory of operation)."""
    context.minimum_version = settings.minimum_version
    context.options |= _SERVER_OPTIONS
    context.verify_mode = settings.verify_mode
    if settings.alpn:
        # The base class's method: ServerContext refuses it to its users.
        ssl.SSLContext.set_alpn_protocols(context, settings.alpn)


def _leaf_context(settings: _Settings, source: _Source) -> ssl.SSLContext:
    """A context holding one certificate, configured like its server."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _configure(context, settings)
    _load_chain(context, source, settings.password)
    if settings.client_ca is not None:
        _load_trust(context, settings.client_ca, "client CA")
    return context


def _load_chain(
    context: ssl.SSLContext,
    source: _Source,
    password: str | bytes | collections.abc.Callable[[], str | bytes] | None,
) -> None:
    """``load_cert_chain`` with errors that name the file and say what is wrong."""
    certificate = _read(source.certfile, "certificate file")
    if _PEM_CERTIFICATE not in certificate:
        # (errno, message): a one-argument SSLError prints as a tuple.
        raise ssl.SSLError(0, f"{source.certfile!r} holds no PEM certificate")
    key = certificate if source.keyfile is None else _read(source.keyfile, "key file")
    key_path = source.certfile if source.keyfile is None else source.keyfile
    if _PEM_PRIVATE_KEY not in key:
        raise ssl.SSLError(0, f"{key_path!r} holds no PEM private key")
    encrypted = any(marker in key for marker in _PEM_ENCRYPTED)
    if encrypted and password is None:
        # Without a password OpenSSL would prompt on the terminal, which a
        # server (or a reload in a running one) must never do.
        raise ValueError(f"the private key in {key_path!r} is encrypted: pass password=")
    try:
        context.load_cert_chain(source.certfile, source.keyfile, password=password)
    except ssl.SSLError as exc:
        what = f"{source.certfile!r}"
        if source.keyfile is not None:
            what += f" with the key {source.keyfile!r}"
        if exc.reason == "KEY_VALUES_MISMATCH":
            why = "the private key does not match the certificate"
        elif encrypted:
            why = "wrong password?"
        else:
            why = str(exc.reason or exc)
        raise _ssl_error(exc, f"cannot load the certificate {what}: {why}") from exc
    # The first certificate of the file is the one presented (the rest are
    # its intermediates).
    start = certificate.index(_PEM_CERTIFICATE)
    end = certificate.find(_PEM_CERTIFICATE_END, start)
    if end != -1:
        pem = certificate[start : end + len(_PEM_CERTIFICATE_END)].decode("ascii", "replace")
        try:
            _PRESENTED[context] = ssl.PEM_cert_to_DER_cert(pem)
        except ValueError:
            pass  # OpenSSL took it; not knowing it only leaves local_certificate None


def _load_trust(context: ssl.SSLContext, path: str, what: str) -> None:
    """``load_verify_locations`` from a PEM file or a hashed directory."""
    _with_trust_errors(
        path, what, lambda: context.load_verify_locations(*_trust_location(path, what))
    )


def _trust_location(path: str, what: str) -> tuple[str | None, str | None]:
    """``(cafile, capath)``, whichever ``path`` is, once it proved readable."""
    if os.path.isdir(path):
        return None, path
    _read(path, what)
    return path, None


def _with_trust_errors(path: str, what: str, load: collections.abc.Callable[[], _T]) -> _T:
    try:
        return load()
    except ssl.SSLError as exc:
        raise _ssl_error(exc, f"cannot load the {what} {path!r}: {exc.reason or exc}") from exc


def _read(path: str, what: str) -> bytes:
    """A file's bytes, or an ``OSError`` whose message says which file it was."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot read the {what}: {exc.strerror}", path) from None


def _ssl_error(original: ssl.SSLError, message: str) -> ssl.SSLError:
    error = ssl.SSLError(original.errno, message)
    error.library = original.library
    error.reason = original.reason
    return error


# -- checking arguments -----------------------------------------------------------


def _source(certfile: str | os.PathLike[str], keyfile: str | os.PathLike[str] | None) -> _Source:
    return _Source(os.fspath(certfile), None if keyfile is None else os.fspath(keyfile))
