"""The session's own checks (``tests/conftest.py``): a test session that
leaves a child process or a listening socket behind fails and says what it
left, and the process is killed; a test skipped for a missing tool is listed
by tool at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

INNER_CONFTEST = """
from tests.conftest import (  # noqa: F401
    pytest_sessionfinish,
    pytest_sessionstart,
    pytest_terminal_summary,
)
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("TRIONET_INNER_SESSION", "1")
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(INNER_CONFTEST)
    return pytester


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_session_leaving_a_process_behind_fails_and_the_process_is_killed(
    inner: pytest.Pytester, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    inner.makepyfile(
        f"""
        import subprocess
        from tests._leaks import SESSIONS

        def test_starts_a_server_and_forgets_it():
            child = subprocess.Popen(
                ["sleep", "1000"], start_new_session=True, stdin=subprocess.DEVNULL
            )
            SESSIONS.add(child.pid)
            open({str(pid_file)!r}, "w").write(str(child.pid))
        """
    )
    result = inner.runpytest_subprocess()
    result.stdout.fnmatch_lines(
        ["*left behind by the suite*", "*process * still running: sleep 1000*"]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert result.parseoutcomes()["passed"] == 1
    assert not alive(int(pid_file.read_text()))


def test_a_session_leaving_a_listening_socket_fails(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import socket

        KEPT = []

        def test_listens_and_forgets():
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            KEPT.append(sock)
        """
    )
    result = inner.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*left behind by the suite*", "*socket still open*tcp port*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_a_clean_session_passes(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        import socket

        def test_closes_what_it_opens():
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                sock.listen()
        """
    )
    result = inner.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.OK
    assert "left behind" not in result.stdout.str()


def test_skips_for_missing_tools_are_listed_by_tool(inner: pytest.Pytester) -> None:
    inner.makepyfile(
        """
        from tests._peers import missing, require_executable

        def test_one():
            require_executable("no-such-peer-program", "apt-get install it")

        def test_two():
            require_executable("no-such-peer-program", "apt-get install it")

        def test_three():
            missing("the npm package nothing", "npm ci")
        """
    )
    result = inner.runpytest_subprocess()
    result.stdout.fnmatch_lines(
        [
            "*skipped for missing tools*",
            "no-such-peer-program (apt-get install it): 2 tests",
            "the npm package nothing (npm ci): 1 test",
        ]
    )
    assert result.parseoutcomes()["skipped"] == 3


def test_on_ci_a_missing_tool_fails_instead(
    inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    inner.makepyfile(
        """
        from tests._peers import require_executable

        def test_needs_a_peer():
            require_executable("no-such-peer-program", "apt-get install it")
        """
    )
    result = inner.runpytest_subprocess()
    result.stdout.fnmatch_lines(["*missing tool: no-such-peer-program*CI must run*"])
    assert result.parseoutcomes()["failed"] == 1
