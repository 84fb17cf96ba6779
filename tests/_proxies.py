"""Real reverse proxies in front of trionet servers, for the deployment
tests: nginx (HTTP proxying, and its ``stream`` module for PROXY protocol
v1) and HAProxy (TCP mode with PROXY protocol v2), each started by the test
with a generated configuration, on loopback.

The proxy's front port is a socket the test binds (port 0, read back) and
already listens on, handed to the proxy as an inherited descriptor: nginx
takes listening sockets from the ``NGINX`` environment variable (what its
binary upgrade uses), HAProxy from ``bind fd@N``. So there is no free-port
race, and no waiting for the proxy to come up: a connection made before it
is ready waits in the socket's queue. A proxy that fails to start closes
that socket, and the test's connection fails with the proxy's log in the
report.

A proxy missing from the machine fails the test on CI and skips it
elsewhere (``tests/_peers.py``); ``.ci/run`` installs Debian's nginx,
libnginx-mod-stream and haproxy.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from tests._leaks import SESSIONS
from tests._peers import require_executable, require_file
from tests._process import kill_group

NGINX_STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
APT = "apt-get install nginx libnginx-mod-stream haproxy"

# The configurations the deployment guide shows (examples/deploy/), run as
# they are: their trionet address is replaced by the test server's, their
# front address by the socket the test hands the proxy.
DEPLOY = Path(__file__).resolve().parent.parent / "examples" / "deploy"
APP_ADDRESS = "127.0.0.1:8000"
NGINX_FRONT = "listen 127.0.0.1:8080;"
HAPROXY_FRONT = "bind 127.0.0.1:8443"


def deploy_config(name: str, app_port: int) -> str:
    """The text of ``examples/deploy/NAME``, pointed at ``app_port``."""
    text = (DEPLOY / name).read_text()
    assert APP_ADDRESS in text, f"{name} no longer names {APP_ADDRESS}"
    return text.replace(APP_ADDRESS, f"127.0.0.1:{app_port}")


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A loopback socket bound to a port the system picked, listening, that
    a child process can inherit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@asynccontextmanager
async def _child(
    command: list[str], front: socket.socket, env: dict[str, str], log: Path
) -> AsyncIterator[None]:
    with open(log, "ab") as errors:  # noqa: ASYNC230 (a local file, opened once)
        process = await trio.lowlevel.open_process(
            command,
            pass_fds=[front.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,
        )
    SESSIONS.add(process.pid)
    front.close()  # the proxy holds it now; the test keeps no second copy
    try:
        yield
    finally:
        with trio.CancelScope(shield=True):
            kill_group(process.pid)
            await process.wait()
            kill_group(process.pid)
            # Shown by pytest when the test fails.
            print(f"{command[0]} log:", _read(log), sep="\n")


def _read(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else "(none)"


@asynccontextmanager
async def nginx(tmp_path: Path, body: str, *, stream: bool = False) -> AsyncIterator[int]:
    """Run nginx with ``body`` as its ``http`` block (or its ``stream``
    block when ``stream``), listening where ``body`` says ``listen
    127.0.0.1:8080;``; yield the port it listens on instead."""
    executable = require_executable("nginx", APT)
    if stream:
        require_file("nginx's stream module", NGINX_STREAM_MODULE, APT)
    front = listening_socket()
    port: int = front.getsockname()[1]
    prefix = tmp_path / "nginx"
    prefix.mkdir(exist_ok=True)
    log = prefix / "error.log"
    temp = "\n".join(
        f"{kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    assert NGINX_FRONT in body, f"no {NGINX_FRONT!r} to replace"
    block = body.replace(NGINX_FRONT, f"listen 127.0.0.1:{port};")
    if stream:
        config = f"load_module {NGINX_STREAM_MODULE};\n" + _nginx_main(prefix, log)
        config += f"stream {{\n{block}\n}}\n"
    else:
        config = _nginx_main(prefix, log)
        config += f"http {{\naccess_log off;\n{temp}\n{block}\n}}\n"
    conf = prefix / "nginx.conf"
    conf.write_text(config)
    # (master_process off and an inherited socket crash nginx 1.22: keep
    # the master, with one worker.)
    command = [
        executable,
        "-p",
        str(prefix),
        "-e",
        str(log),
        "-c",
        str(conf),
        "-g",
        "daemon off; master_process on; worker_processes 1;",
    ]
    env = {"PATH": "/usr/sbin:/usr/bin:/bin", "NGINX": f"{front.fileno()};"}
    async with _child(command, front, env, log):
        yield port


def _nginx_main(prefix: Path, log: Path) -> str:
    return (
        f"pid {prefix / 'nginx.pid'};\n"
        f"error_log {log} info;\n"
        "events { worker_connections 256; }\n"
    )


@asynccontextmanager
async def haproxy(tmp_path: Path, config: str) -> AsyncIterator[int]:
    """Run HAProxy with ``config``, its front socket handed over where the
    configuration says ``bind 127.0.0.1:8443``; yield that socket's port."""
    executable = require_executable("haproxy", APT)
    assert HAPROXY_FRONT in config, f"no {HAPROXY_FRONT!r} to replace"
    front = listening_socket()
    port: int = front.getsockname()[1]
    prefix = tmp_path / "haproxy"
    prefix.mkdir(exist_ok=True)
    log = prefix / "haproxy.log"
    conf = prefix / "haproxy.cfg"
    conf.write_text(config.replace(HAPROXY_FRONT, f"bind fd@{front.fileno()}"))
    command = [executable, "-db", "-f", str(conf)]
    async with _child(command, front, {"PATH": "/usr/sbin:/usr/bin:/bin"}, log):
        yield port
