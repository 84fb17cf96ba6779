"""Temporary: moved to :mod:`trionet.tls._stream` (removed once every import
points there)."""

from .tls._stream import *  # noqa: F403
from .tls._stream import client_handshake, describe_tls_failure  # noqa: F401
