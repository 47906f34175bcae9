"""Deprecated: the Hermes tool-call parser moved to :mod:`ascl_env.turns`.

The names below stay importable from here for code outside this project; each access warns.
"""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = ("MalformedCall", "ParsedAction", "ToolCall", "TurnKind", "parse_action", "read_turn")


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'ascl_env.parsing' has no attribute {name!r}")
    warnings.warn(
        f"ascl_env.parsing.{name} is deprecated; use ascl_env.turns.{name}",
        DeprecationWarning,
        stacklevel=2,
    )
    from ascl_env import turns

    return getattr(turns, name)
