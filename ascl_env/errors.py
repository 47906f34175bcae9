"""Error messages that stay readable however bad the input is.

One file with a thousand bad records must not produce a message of hundreds of thousands of
characters. Every validation error that lists problems (rule bases, task files, configuration,
``reset`` options) goes through :func:`format_problems`: the first :data:`MAX_PROBLEMS` problems,
then how many more there are. :func:`pydantic_problems` turns a pydantic ``ValidationError`` into
such a list without echoing the offending input (which may itself be huge).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

__all__ = ["MAX_PROBLEMS", "MAX_VALUE_CHARS", "format_problems", "pydantic_problems", "short_repr"]

MAX_PROBLEMS = 10
"""How many problems an error message lists before it only counts the rest."""

MAX_VALUE_CHARS = 80
"""How much of an offending value an error message quotes."""


def format_problems(
    problems: Sequence[str], *, total: int | None = None, limit: int = MAX_PROBLEMS
) -> str:
    """``problems`` as one message: a single problem as is, several as a capped bullet list.

    ``total`` is the number of problems when ``problems`` holds only the first ones (describing
    each of thousands costs time too); by default ``len(problems)``.

    >>> format_problems(["a: bad"])
    'a: bad'
    >>> print(format_problems(["a: bad", "b: worse", "c: worst"], limit=2))
    3 problems:
      - a: bad
      - b: worse
      - and 1 more
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if not problems:
        raise ValueError("format_problems needs at least one problem")
    total = len(problems) if total is None else total
    if total < len(problems):
        raise ValueError(f"total={total} is less than the {len(problems)} problems given")
    if total == 1:
        return problems[0]
    shown = [f"  - {problem}" for problem in problems[:limit]]
    if total > len(shown):
        shown.append(f"  - and {total - len(shown)} more")
    return f"{total} problems:\n" + "\n".join(shown)


def pydantic_problems(
    exc: ValidationError, where: Callable[[tuple[int | str, ...]], str] | None = None
) -> list[str]:
    """One ``"<where>: <message>"`` line per error of ``exc``, without the input values.

    Labels and messages are cut to a readable length (a location can be a huge dict key).

    ``where`` turns an error location into a label; by default the location joined with dots
    (``rewards.lookup_cost``), or ``"value"`` for the top level.
    """
    label = where or (lambda loc: ".".join(map(str, loc)) or "value")
    return [
        f"{_cut(label(tuple(err['loc'])))}: {_cut(err['msg'], 4 * MAX_VALUE_CHARS)}"
        for err in exc.errors(include_url=False)
    ]


def short_repr(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (with the full length when cut)."""
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001  (a hostile __repr__ must not hide the real error)
        return f"<{type(value).__name__} object, repr failed: {type(exc).__name__}>"
    return _cut(text, limit)


def _cut(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 3]}... ({len(text)} characters)"
