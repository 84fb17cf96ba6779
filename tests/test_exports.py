"""Every public name is exported, documented and typed (after trio's test_exports)."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

import pytest

import trionet
import trionet.asgi
import trionet.http
import trionet.metrics
import trionet.testing
import trionet.tls
import trionet.websocket

PUBLIC_MODULES = [
    trionet,
    trionet.asgi,
    trionet.http,
    trionet.metrics,
    trionet.testing,
    trionet.tls,
    trionet.websocket,
]


def public_names(module: object) -> list[tuple[str, object]]:
    return [(name, getattr(module, name)) for name in module.__all__]  # type: ignore[attr-defined]


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda m: m.__name__)
def test_all_lists_exactly_the_public_names(module: object) -> None:
    exported = set(module.__all__)  # type: ignore[attr-defined]
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name not in {"annotations", "trio"}
    }
    assert public == exported - {"__version__"}


@pytest.mark.parametrize(
    ("name", "value"),
    [pair for module in PUBLIC_MODULES for pair in public_names(module)],
    ids=lambda x: x if isinstance(x, str) else "",
)
def test_public_name_is_documented_and_typed(name: str, value: object) -> None:
    if not (inspect.isclass(value) or inspect.isfunction(value)):
        return  # constants and type aliases: documented in the API reference
    assert inspect.getdoc(value), f"{name} has no docstring"
    if inspect.isfunction(value):
        doc = inspect.getdoc(value) or ""
        hints = typing.get_type_hints(value)
        assert "return" in hints, f"{name} has no return annotation"
        params = [p for p in inspect.signature(value).parameters if p != "task_status"]
        for param in params:
            assert param in hints, f"{name}({param}) is not annotated"
            assert param in doc, f"{name}'s docstring does not describe {param}"
        if params:
            assert "Args:" in doc, f"{name}'s docstring has no Args: section"
    if inspect.isclass(value):
        for attr, member in vars(value).items():
            if attr.startswith("_") or not callable(member):
                continue
            assert inspect.getdoc(member), f"{name}.{attr} has no docstring"


RENAMED = [
    (trionet.http, "DEFAULT_MAX_CONNECTIONS", "DEFAULT_CLIENT_MAX_CONNECTIONS"),
    (trionet.http, "ConnectError", "HTTPConnectError"),
    (trionet.http, "ConnectTimeout", "HTTPConnectTimeout"),
    (trionet.http, "TLSError", "HTTPTLSError"),
    (trionet.http, "Timeout", "HTTPTimeout"),
    (trionet.websocket, "ConnectionClosed", "WebSocketClosed"),
]


@pytest.mark.parametrize(("module", "old", "new"), RENAMED, ids=lambda x: getattr(x, "__name__", x))
def test_a_renamed_name_still_imports_with_a_deprecation_warning(
    module: object, old: str, new: str
) -> None:
    with pytest.warns(DeprecationWarning, match=rf"\.{old} is deprecated .*\.{new}$"):
        value = getattr(module, old)
    assert value is getattr(module, new)
    with pytest.warns(DeprecationWarning, match=new):
        exec(f"from {module.__name__} import {old}", {})  # type: ignore[attr-defined]
    assert old not in module.__all__  # type: ignore[attr-defined]


def test_the_changelog_lists_every_rename() -> None:
    changelog = (Path(__file__).parent.parent / "docs" / "changelog.rst").read_text()
    for module, old, new in RENAMED:
        name = module.__name__  # type: ignore[attr-defined]
        assert f"``{name}.{old}``" in changelog, old
        assert f"``{name}.{new}``" in changelog, new


def test_a_missing_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        trionet.http.Nothing  # type: ignore[attr-defined]  # noqa: B018


def test_no_two_public_names_mean_different_things() -> None:
    """A class or constant exported under one name means one thing: the
    functions ``trionet.http.serve`` and ``trionet.websocket.serve`` are each
    their package's server, which is what the name says."""
    meanings: dict[str, dict[int, str]] = {}
    for module in PUBLIC_MODULES:
        for name, value in public_names(module):
            if inspect.isfunction(value) or name == "__version__":
                continue
            meanings.setdefault(name, {})[id(value)] = module.__name__
    clashes = {name: sorted(found.values()) for name, found in meanings.items() if len(found) > 1}
    assert not clashes
