"""The one duplicate-id check, shared by the rule base and the task loaders."""

from __future__ import annotations

from collections.abc import Iterable


def first_duplicate(ids: Iterable[str]) -> tuple[str, int, int] | None:
    """``(id, first index, repeat index)`` of the first id seen twice, or ``None``."""
    first: dict[str, int] = {}
    for index, item in enumerate(ids):
        seen = first.setdefault(item, index)
        if seen != index:
            return item, seen, index
    return None
