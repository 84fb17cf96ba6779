"""The test session: it prepares the outside peers it can (``npm ci``), lists
at the end every test skipped for a missing tool, by tool, and checks that the
suite left no child process and no listening socket behind."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from tests import _leaks, _record_requests
from tests._peers import MISSING_PREFIX, prepare_node_packages

pytest_plugins = ["pytester", "tests._httpbin", "tests._pproxy"]


@pytest.fixture(autouse=True)
def _no_real_sockets_under_virtual_time(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A test on ``autojump_clock`` must not touch a real socket: virtual time
    jumps ahead while the kernel works in real time, so such a test passes or
    fails with the machine's load. Memory streams and the virtual UDP network
    are the deterministic way to test timeouts."""
    if "autojump_clock" not in request.fixturenames:
        yield
        return

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError(
            "a real socket in a test on autojump_clock: use memory streams "
            "(trionet.testing) or real time"
        )

    monkeypatch.setattr(trio._socket._SocketType, "__init__", refuse)
    yield


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("TRIONET_INNER_SESSION"):
        return  # a pytester session inside this one: the outer one prepared
    said = prepare_node_packages()
    if said is not None:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(said)
    _leaks.remember_baseline()
    _record_requests.install()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("TRIONET_RECORD_REQUESTS"):
        _record_requests.save()
    left = _leaks.leftovers()
    if left:
        session.config.stash[_leaks.REPORT] = left
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    by_tool: collections.Counter[str] = collections.Counter()
    other = 0
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(MISSING_PREFIX):
            by_tool[reason.removeprefix(MISSING_PREFIX)] += 1
        else:
            other += 1
    if by_tool:
        terminalreporter.section("skipped for missing tools")
        for tool, count in sorted(by_tool.items()):
            terminalreporter.write_line(f"{tool}: {count} test{'s' if count != 1 else ''}")
    if other:
        terminalreporter.write_line(
            f"{other} other skip(s): a feature this machine lacks (see the skip reasons above)"
        )
    left = terminalreporter.config.stash.get(_leaks.REPORT, None)
    if left:
        terminalreporter.section("left behind by the suite", red=True)
        for line in left:
            terminalreporter.write_line(line)


@pytest.fixture(params=["h11", "httptools"])
def http_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test under each HTTP request parser: a server built with the
    default ``parser="auto"`` in this process uses this one. HTTP server
    test modules use it on every test (``pytestmark``)."""
    from trionet.http._server import _limits

    parser: str = request.param
    monkeypatch.setattr(_limits, "_auto", lambda: parser)
    return parser
