"""Old spellings of renamed public names, kept importable.

A public module lists its renamed names and gives the result to its
module-level ``__getattr__``: reading an old name (attribute access or
``from module import name``) returns the very same object as the new name,
with a :class:`DeprecationWarning` that names the new spelling. Every rename
is also listed in ``docs/changelog.rst``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping

__all__ = ["aliases"]


def aliases(module: str, renamed: Mapping[str, tuple[str, object]]) -> Callable[[str], object]:
    """A module ``__getattr__`` serving ``renamed``: old name -> (new name,
    object).

    Args:
        module: The module's public name, for the messages.
        renamed: Each old name with its new name and the object both mean.

    Returns:
        The function to assign to the module's ``__getattr__``.
    """

    def __getattr__(name: str) -> object:
        try:
            new, value = renamed[name]
        except KeyError:
            raise AttributeError(f"module {module!r} has no attribute {name!r}") from None
        warnings.warn(
            f"{module}.{name} is deprecated (renamed): use {module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return __getattr__
