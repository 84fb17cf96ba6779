"""Every console block of the documentation is true.

A console block holds commands (``$ ...``), each followed by the output it
prints. A command shown with output must have a *scenario* here: the servers
it talks to, started on loopback ports the system picks, and what to
substitute in the command (the ports, a certificate's path); a documented
server is given port 0, and the port it prints stands for the documented one.
The command then runs for real, in ``bash``, and its output (standard output
and standard error, as a terminal shows them) must be the output shown, line
for line, once the parts that change from run to run (times, dates) are
normalised. A command shown without
output must be one trionet knows how to run: its arguments are parsed as the
real program would parse them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType

import pytest
import trio

import trionet
import trionet.http
import trionet.tls
import trionet.websocket
from tests._docs import EXAMPLES, ROOT, Block, Command, console_commands, every_block
from tests._process import child_env, refusing_port, running
from trionet.cli import build_parser
from trionet.tls._devcert import dev_certificate

# The section of docs/cli.rst that documents `trionet demo` belongs to the
# demo's own tests (tests/test_cli.py), which run the demo itself; its blocks
# are checked there, and only their commands here (test_docs.py).
OWNED_ELSEWHERE = {("cli.rst", "``trionet demo``")}

# Seconds a documented command may take (a cold Python start on a busy machine,
# plus the sleeps some commands hold their input open with).
COMMAND_TIMEOUT = 30.0


def console_blocks() -> list[Block]:
    return [
        block
        for block in every_block()
        if block.language == "console" and (block.path.name, block.section) not in OWNED_ELSEWHERE
    ]


def every_command() -> list[Command]:
    return [command for block in console_blocks() for command in console_commands(block)]


def load_example(name: str) -> ModuleType:
    """An ``examples/`` program as a module (its ``__main__`` part does not run)."""
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- normalising what changes from run to run -----------------------------------


def same(line: str) -> str:
    return line


def http_date(line: str) -> str:
    return re.sub(r"^date: .*", "date: <date>", line)


def trace(line: str) -> str:
    line = re.sub(r"\d+\.\d ms", "<ms>", line)
    line = re.sub(r"^\[ *<ms>\]", "[<ms>]", line)
    line = re.sub(r"name lookup: (\S+) -> .* \(", r"name lookup: \1 -> <addresses> (", line)
    line = re.sub(r"TLSv1\.\d \S+, ALPN", "<tls version> <cipher>, ALPN", line)
    line = re.sub(r"user-agent: trionet/\S+", "user-agent: trionet/<version>", line)
    return re.sub(r"<   date: .*", "<   date: <date>", line)


def clock(line: str) -> str:
    return re.sub(r"\d\d:\d\d:\d\d", "<time>", line)


# -- scenarios: what each documented command runs against -----------------------


@dataclass
class Setup:
    """What a scenario prepared: ``substitutions`` replace text of the
    documented command (a port, a path) with the real one, and are undone in
    the output; ``normalise`` is applied to every line of both outputs;
    ``long_running`` commands (servers) are stopped once they printed as many
    lines as the documentation shows. A server command has its documented
    port substituted by ``0``: ``bound_port`` then matches the line it prints
    once listening, its first group the port it bound, which the output is
    checked with in place of the documented port."""

    substitutions: dict[str, str] = field(default_factory=dict)
    normalise: Callable[[str], str] = same
    long_running: bool = False
    bound_port: str | None = None


Scenario = Callable[[trio.Nursery], Awaitable[Setup]]


async def serve_tcp_handler(nursery: trio.Nursery, handler: object, **kwargs: object) -> int:
    server = await nursery.start(partial(trionet.serve_tcp, handler, 0, "127.0.0.1", **kwargs))
    return server.port


async def serve_http(nursery: trio.Nursery, app: object, **kwargs: object) -> int:
    server = await nursery.start(partial(trionet.http.serve, app, 0, "127.0.0.1", **kwargs))
    return server.port


def dev_tls() -> tuple[str, trionet.tls.ServerContext]:
    """``trionet demo``'s development certificate (made in the test's own
    cache directory) and a server context serving it."""
    cert, key = dev_certificate()
    return str(cert), trionet.tls.server_context(cert, key)


async def first_server(nursery: trio.Nursery) -> Setup:
    # A port chosen here and handed over could be taken before the server
    # binds it: the system picks one, and the server says which.
    return Setup({"8000": "0"}, long_running=True, bound_port=r"^listening on 127\.0\.0\.1:(\d+)$")


async def first_client(nursery: trio.Nursery) -> Setup:
    port = await serve_tcp_handler(nursery, load_example("first_server").shout)
    return Setup({"8000": str(port)})


async def tcp_close(nursery: trio.Nursery) -> Setup:
    return Setup()


async def https_hello_trace(nursery: trio.Nursery) -> Setup:
    cafile, context = dev_tls()
    port = await serve_http(nursery, load_example("https_hello").hello, ssl_context=context)
    return Setup({"8000": str(port), "~/.cache/trionet/dev-cert/cert.pem": cafile}, normalise=trace)


async def https_hello_untrusted(nursery: trio.Nursery) -> Setup:
    _, context = dev_tls()
    port = await serve_http(nursery, load_example("https_hello").hello, ssl_context=context)
    return Setup({"8000": str(port)})


async def http_hello(nursery: trio.Nursery) -> Setup:
    port = await serve_http(nursery, load_example("http_hello").hello)
    return Setup({"12010": str(port)}, normalise=http_date)


async def tcp_welcome(nursery: trio.Nursery) -> Setup:
    port = await serve_tcp_handler(nursery, load_example("tcp_welcome").welcome)
    return Setup({"8124": str(port)})


async def nothing_on_tcp_9(nursery: trio.Nursery) -> Setup:
    port = await nursery.start(hold_refusing_port)
    return Setup({"9": str(port)})


async def hold_refusing_port(task_status: trio.TaskStatus[int]) -> None:
    """A port that refuses connections until the test ends (held bound, so
    that no other process takes it meanwhile)."""
    with refusing_port() as port:
        task_status.started(port)
        await trio.sleep_forever()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def nothing_on_udp_9(nursery: trio.Nursery) -> Setup:
    return Setup({"9": str(free_udp_port())})


async def udp_server(nursery: trio.Nursery) -> Setup:
    port = await nursery.start(receive_and_answer_nothing)
    return Setup({"41234": str(port)})


async def receive_and_answer_nothing(task_status: trio.TaskStatus[int]) -> None:
    """What examples/udp_server.py does on the wire: receive, answer nothing."""
    async with trionet.open_udp_socket("127.0.0.1") as sock:
        task_status.started(sock.port)
        async for _ in sock:
            pass


async def ws_echo(nursery: trio.Nursery) -> Setup:
    app = partial(load_example("ws_echo").app, trionet.websocket.DEFAULT_MAX_MESSAGE_SIZE)
    port = await serve_http(nursery, app)
    return Setup({"9001": str(port)})


async def not_found(nursery: trio.Nursery) -> Setup:
    async def app(request: trionet.http.Request) -> trionet.http.Response:
        return trionet.http.Response(404, {"content-type": "text/plain"}, b"not found\n")

    port = await serve_http(nursery, app)
    return Setup({"8080": str(port)})


async def asgi_hello(nursery: trio.Nursery) -> Setup:
    serving = r"^trionet serve: asgi_hello:app on http://127\.0\.0\.1:(\d+) \(Ctrl-C to stop\)$"
    return Setup({"8000": "0"}, long_running=True, bound_port=serving)


# Every command the documentation shows with its output, exactly as written.
SCENARIOS: dict[str, Scenario] = {
    "uv run python examples/first_server.py --port 8000": first_server,
    "uv run python examples/first_client.py --port 8000": first_client,
    "uv run python examples/tcp_close.py": tcp_close,
    "uv run trionet get --trace --cafile ~/.cache/trionet/dev-cert/cert.pem"
    " https://localhost:8000/ > /dev/null": https_hello_trace,
    "uv run trionet get http://127.0.0.1:12010/hello": http_hello,
    "echo hello | uv run trionet tcp 127.0.0.1 8124": tcp_welcome,
    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | uv run trionet tcp 127.0.0.1 12010": http_hello,
    "uv run trionet tcp 127.0.0.1 9": nothing_on_tcp_9,
    "uv run trionet tcp --tls 127.0.0.1 8000": https_hello_untrusted,
    "echo 深入浅出Node.js | uv run trionet udp 127.0.0.1 41234": udp_server,
    "echo hello | uv run trionet udp 127.0.0.1 9": nothing_on_udp_9,
    "(echo hello; sleep 2) | uv run trionet ws ws://127.0.0.1:9001/": ws_echo,
    "(echo hello; sleep 2) | uv run trionet ws --binary ws://127.0.0.1:9001/": ws_echo,
    "uv run trionet ws ws://127.0.0.1:8080/nowhere": not_found,
    "uv run trionet serve asgi_hello:app --app-dir examples --port 8000": asgi_hello,
}


# -- running a command ------------------------------------------------------------


def word(text: str) -> str:
    """A pattern for ``text`` standing alone, not inside a longer number or name."""
    return rf"(?<![\w.]){re.escape(text)}(?![\w])"


def substitute(text: str, substitutions: dict[str, str]) -> str:
    for old, new in substitutions.items():
        text = re.sub(word(old), lambda _, new=new: new, text)
    return text


def shell_command(command: str) -> str:
    """The command as the test runs it: ``uv run`` is the test's own
    environment, whose scripts are first on ``PATH``."""
    return command.replace("uv run ", "")


async def run(command: str, setup: Setup, expected_lines: int) -> list[str]:
    """Run ``command`` in bash; return its output lines (stdout and stderr)."""
    env = child_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    shell = f"{{ {shell_command(substitute(command, setup.substitutions))}\n}} 2>&1"
    lines: list[str] = []
    async with running(["bash", "-c", shell], env=env, stdin=subprocess.DEVNULL) as (
        process,
        output,
    ):
        with trio.fail_after(COMMAND_TIMEOUT):
            while not (setup.long_running and len(lines) >= expected_lines):
                line = await output.readline()
                if line is None:
                    break
                lines.append(line)
            if not setup.long_running:
                await process.wait()
    reverse = {new: old for old, new in setup.substitutions.items()}
    if setup.bound_port is not None:
        documented = reverse.pop("0")
        bound = (re.search(setup.bound_port, line) for line in lines)
        # Without the line, nothing is replaced and the comparison shows the output.
        match = next((match for match in bound if match is not None), None)
        if match is not None:
            reverse[match.group(1)] = documented
    return [substitute(line, reverse) for line in lines]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The development certificate goes to the test's own cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def shown_with_output() -> list[Command]:
    return [
        command for command in every_command() if command.output or command.command in SCENARIOS
    ]


@pytest.mark.parametrize(
    "command", shown_with_output(), ids=lambda command: f"{command.block.where} {command.command}"
)
async def test_command_prints_what_the_docs_show(command: Command, nursery: trio.Nursery) -> None:
    scenario = SCENARIOS.get(command.command)
    assert scenario is not None, (
        f"{command.block.where}: no scenario in tests/test_docs_console.py runs "
        f"{command.command!r}, so the output shown is not checked"
    )
    setup = await scenario(nursery)
    real = await run(command.command, setup, len(command.output))
    assert [setup.normalise(line) for line in real] == [
        setup.normalise(line) for line in command.output
    ]
    nursery.cancel_scope.cancel()


def test_every_scenario_is_used() -> None:
    shown = {command.command for command in every_command()}
    assert set(SCENARIOS) <= shown, f"no longer in the docs: {sorted(set(SCENARIOS) - shown)}"


# -- commands shown without output --------------------------------------------------


def check_command(command: str) -> None:
    """Fail unless ``command`` is one the project can run: ``uv run`` of
    ``trionet`` (its arguments parse), of an ``examples/`` program (the file
    and its options exist), of ``pytest`` (the paths exist), or of the
    documentation build CI runs."""
    found = re.search(r"uv run ([^|>]*)", command)
    assert found, f"{command!r} does not run anything of this project with `uv run`"
    argv = shlex.split(found.group(1))
    if argv[0] == "trionet":
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:
            raise AssertionError(f"{command!r}: trionet refuses these arguments") from exc
    elif argv[:1] == ["python"] and len(argv) > 1 and argv[1].startswith("examples/"):
        program = ROOT / argv[1]
        assert program.is_file(), f"{command!r}: {argv[1]} does not exist"
        source = program.read_text("utf-8")
        for option in (arg.split("=")[0] for arg in argv[2:] if arg.startswith("--")):
            assert f'"{option}"' in source, f"{command!r}: {argv[1]} has no option {option}"
    elif argv[0] == "pytest":
        for path in (arg for arg in argv[1:] if not arg.startswith("-")):
            assert (ROOT / path.split("::")[0]).exists(), f"{command!r}: no {path}"
    elif argv[0] == "sphinx-build":
        ci = (ROOT / ".ci" / "run").read_text("utf-8")
        assert " ".join(argv) in ci, f"{command!r} is not the documentation build CI runs"
    else:
        raise AssertionError(f"{command!r}: no test knows how to check {argv[0]!r}")


@pytest.mark.parametrize(
    "command",
    [command for command in every_command() if not command.output],
    ids=lambda command: f"{command.block.where} {command.command}",
)
def test_command_shown_without_output_runs(command: Command) -> None:
    check_command(command.command)
