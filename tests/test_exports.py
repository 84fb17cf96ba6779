"""Every public name is exported, documented and typed (after trio's test_exports)."""

from __future__ import annotations

import inspect
import typing

import pytest

import trionet
import trionet.http
import trionet.testing
import trionet.tls
import trionet.websocket

PUBLIC_MODULES = [trionet, trionet.http, trionet.testing, trionet.tls, trionet.websocket]


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
