"""The harness's optional dependencies (the ``bench`` extra: matplotlib, tqdm), imported lazily.

The environment itself needs neither; ``ascl-bench`` checks for them before it runs anything, so
a missing one is reported at once rather than after the episodes.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

INSTALL_HINT = "pip install -e '.[bench]' in a clone of ascl-env"


class MissingExtraError(ImportError):
    """An optional dependency of the harness is not installed."""


def _message(module: str, purpose: str) -> str:
    return f"{purpose} needs {module}, which is not installed; install it with: {INSTALL_HINT}"


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` saying what needs it and how."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(_message(module, purpose)) from exc


def check(*needs: tuple[str, str]) -> None:
    """Raise :class:`MissingExtraError` for the first ``(module, purpose)`` not installed.

    Cheap: finds the modules without importing them.
    """
    for module, purpose in needs:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(_message(module, purpose))


PLOTS = ("matplotlib", "the benchmark plots (report and comparison)")
PROGRESS = ("tqdm", "the progress bar (pass --no-progress to run without it)")
