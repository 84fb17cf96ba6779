"""A self-signed development certificate for ``trionet demo``'s HTTPS.

Made on first use and kept in the user's cache directory
(``$XDG_CACHE_HOME/trionet/dev-cert``, else ``~/.cache/trionet/dev-cert``),
never in the project. It names ``localhost``, ``127.0.0.1`` and ``::1``, lasts
a year, and is made again when it is missing, unreadable or about to expire.
It is made with ``cryptography`` when that is installed (it is in trionet's
development environment, through trustme), else with the ``openssl`` command.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

__all__ = ["DevCertificateError", "dev_certificate"]

_NAMES = ("localhost",)
_ADDRESSES = ("127.0.0.1", "::1")
_DAYS = 365
_RENEW_BEFORE = datetime.timedelta(days=7)


class DevCertificateError(Exception):
    """No development certificate could be made (neither ``cryptography``
    nor ``openssl`` is available)."""


def cache_directory() -> Path:
    """Where the development certificate lives."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "trionet" / "dev-cert"


def dev_certificate() -> tuple[Path, Path]:
    """Return ``(certfile, keyfile)``, making them first if needed.

    Raises:
        DevCertificateError: The certificate could not be made.
    """
    directory = cache_directory()
    cert, key = directory / "cert.pem", directory / "key.pem"
    if _still_good(cert, key):
        return cert, key
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        new_cert, new_key = Path(scratch) / "cert.pem", Path(scratch) / "key.pem"
        try:
            _make_with_cryptography(new_cert, new_key)
        except ImportError:
            _make_with_openssl(new_cert, new_key)
        new_key.chmod(0o600)
        os.replace(new_key, key)  # key first: a cert never sits beside a stale key
        os.replace(new_cert, cert)
    return cert, key


def _still_good(cert: Path, key: Path) -> bool:
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        made = datetime.datetime.fromtimestamp(cert.stat().st_mtime, datetime.UTC)
    except (OSError, ssl.SSLError, ValueError):
        return False
    # The certificate was written when it was made: its age says when it expires.
    expires = made + datetime.timedelta(days=_DAYS)
    return expires - datetime.datetime.now(datetime.UTC) > _RENEW_BEFORE


def _make_with_cryptography(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trionet development")])
    now = datetime.datetime.now(datetime.UTC)
    alternative_names: list[x509.GeneralName] = [x509.DNSName(n) for n in _NAMES]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in _ADDRESSES]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )
    key.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _make_with_openssl(cert: Path, key: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DevCertificateError(
            "cannot make a development certificate: install 'cryptography' or 'openssl'"
        )
    names = ",".join([f"DNS:{n}" for n in _NAMES] + [f"IP:{a}" for a in _ADDRESSES])
    result = subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            str(_DAYS),
            "-subj",
            "/CN=trionet development",
            "-addext",
            f"subjectAltName={names}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DevCertificateError(f"openssl failed: {result.stderr.strip()}")
