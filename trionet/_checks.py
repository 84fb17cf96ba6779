"""Argument checks, with one strictness for the whole package.

Every public function checks its numbers and choices here before it does
anything (binds, connects, starts a task), so that a bad argument fails at
the call, not later inside a task. Every refusal reads the same way::

    NAME must be CONDITION, not VALUE

raised as :exc:`TypeError` when the value is not of the right kind (a
string, a ``bool`` where a number is meant, a float where a count is meant)
and as :exc:`ValueError` when it is out of range (NaN is out of every
range). The checks return the value, normalised (seconds as ``float``), so
a caller can check and keep in one line.
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["count", "fraction", "non_negative_seconds", "one_of", "seconds", "timeouts"]


def _is_number(value: object) -> bool:
    # bool is an int to Python, never a number of anything to a caller.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _or_none(condition: str, none: bool) -> str:
    return f"{condition} or None" if none else condition


def seconds(name: str, value: object, *, none: bool = False) -> float | None:
    """A duration: a number of seconds > 0 (infinity means no limit), or
    ``None`` where ``none`` allows it.

    Raises:
        TypeError: It is not a number (``bool`` included).
        ValueError: It is 0, negative or NaN.
    """
    if value is None and none:
        return None
    if not _is_number(value):
        raise TypeError(f"{name} must be {_or_none('a number of seconds', none)}, not {value!r}")
    assert isinstance(value, int | float)
    if not value > 0:  # NaN fails this too
        raise ValueError(f"{name} must be {_or_none('> 0 seconds', none)}, not {value!r}")
    return float(value)


def non_negative_seconds(name: str, value: object, *, none: bool = False) -> float | None:
    """A duration that may be 0 (a grace period: "at once").

    Raises:
        TypeError: It is not a number (``bool`` included).
        ValueError: It is negative or NaN.
    """
    if value is None and none:
        return None
    if not _is_number(value):
        raise TypeError(f"{name} must be {_or_none('a number of seconds', none)}, not {value!r}")
    assert isinstance(value, int | float)
    if not value >= 0:  # NaN fails this too
        raise ValueError(f"{name} must be {_or_none('>= 0 seconds', none)}, not {value!r}")
    return float(value)


def count(
    name: str,
    value: object,
    *,
    minimum: int = 1,
    maximum: int | None = None,
    none: bool = False,
) -> int | None:
    """A whole number in ``minimum..maximum`` (no upper bound when
    ``maximum`` is ``None``), or ``None`` where ``none`` allows it.

    Raises:
        TypeError: It is not an ``int`` (a ``float`` or ``bool`` included).
        ValueError: It is out of range.
    """
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be {_or_none('an int', none)}, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{name} must be {_or_none(bound, none)}, not {value!r}")
    return value


def fraction(name: str, value: object) -> float:
    """A probability: a number in 0..1.

    Raises:
        TypeError: It is not a number (``bool`` included).
        ValueError: It is outside 0..1, or NaN.
    """
    if not _is_number(value):
        raise TypeError(f"{name} must be a number in 0..1, not {value!r}")
    assert isinstance(value, int | float)
    if not 0 <= value <= 1:  # NaN fails this too
        raise ValueError(f"{name} must be in 0..1, not {value!r}")
    return float(value)


def one_of(name: str, value: object, choices: Collection[str]) -> str:
    """One of a few strings.

    Raises:
        ValueError: It is not one of ``choices``.
    """
    if not isinstance(value, str) or value not in choices:
        listed = " or ".join(f'"{choice}"' for choice in choices)
        raise ValueError(f"{name} must be {listed}, not {value!r}")
    return value


def timeouts(**values: object) -> None:
    """Several timeouts at once, by keyword: each a number of seconds > 0,
    or ``None`` (no limit).

    Raises:
        TypeError: One is not a number.
        ValueError: One is 0, negative or NaN.
    """
    for name, value in values.items():
        seconds(name, value, none=True)
