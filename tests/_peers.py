"""The one place that decides what happens when a test's outside peer is
missing (Node, an npm package, curl, openssl, Chromium, websocat, REDbot,
Autobahn|Testsuite's Python 2.7...).

Locally the test is skipped, with a reason that starts ``missing tool:`` and
names the tool and how to get it; the session lists every such skip by tool
at the end of the run (``tests/conftest.py``). On CI (``CI=true``) the test
fails instead: a peer that silently stopped being there would otherwise turn
the interop tests into green no-ops.

Before the tests run, the session prepares what it can: ``npm ci`` from the
lockfile when Node is there and ``node_modules`` is missing or older than
``package-lock.json`` (``prepare_node_packages``)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules"
LOCKFILE = REPO / "package-lock.json"

# What every skip for a missing peer starts with: the session's summary
# groups them by what follows.
MISSING_PREFIX = "missing tool: "

# Seconds `npm ci` may take: a cold cache on a slow network downloads
# playwright-core and ws (a few MB); instant from the cache.
NPM_CI_TIMEOUT = 600


def on_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(tool: str, how: str) -> NoReturn:
    """Fail (on CI) or skip (elsewhere) the running test because ``tool`` is
    missing; ``how`` says how to get it."""
    message = f"{MISSING_PREFIX}{tool} ({how})"
    if on_ci():
        pytest.fail(f"{message}; CI must run the tests that need it")
    pytest.skip(message)


def require_executable(name: str, how: str) -> str:
    """The path of the program ``name``, or the test is failed or skipped."""
    path = shutil.which(name)
    if path is None:
        missing(name, how)
    return path


def require_file(tool: str, path: Path, how: str) -> Path:
    """``path``, which ``tool`` must have put there, or the test is failed or
    skipped."""
    if not path.exists():
        missing(tool, how)
    return path


def node_packages_stale() -> bool:
    """Whether ``node_modules`` is missing or older than the lockfile
    (``npm ci`` writes ``node_modules/.package-lock.json`` last)."""
    marker = NODE_MODULES / ".package-lock.json"
    if not marker.is_file():
        return True
    return marker.stat().st_mtime < LOCKFILE.stat().st_mtime


def prepare_node_packages() -> str | None:
    """Run ``npm ci`` if Node and npm are here and the packages are missing
    or stale; return a line saying what was done, or ``None`` if nothing was.
    Two sessions at once take turns (a lock file); a failure is reported,
    and the tests needing the packages then skip or fail as without them."""
    if not LOCKFILE.is_file() or shutil.which("node") is None:
        return None
    npm = shutil.which("npm")
    if npm is None or not node_packages_stale():
        return None
    with open(REPO / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not node_packages_stale():  # the other session did it
            return None
        try:
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=NPM_CI_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"npm ci took over {NPM_CI_TIMEOUT} s and was stopped"
    if result.returncode != 0:
        return f"npm ci failed: {(result.stdout + result.stderr).strip()[-500:]}"
    return "npm ci: installed the Node packages from package-lock.json"
