"""verl compatibility patches that production code applies (the plugin, every verl process).

One patch lives here, the trl probe: verl 0.9.1 asks whether a package named ``trl`` exists and
then imports a class that trl 1.x (the project's ``trl`` extra) removed, so building any FSDP
model crashes next to trl 1.x. :func:`patch_trl_probe` makes the probe true only for a trl that
still has the class. ``verl_recipes.plugin`` applies it where :func:`trl_needs_probe_patch`
says so; with verl's own pinned trl nothing is patched and no verl-version check runs.

Like the CPU harness's workarounds (:mod:`verl_recipes.cpu.workarounds`, which reuse the drift
checks below), every patch checks that verl still has the exact code it works around and raises
:class:`VerlDriftError` otherwise, so a verl upgrade fails loudly at start-up instead of
silently running a different code path. This module imports verl only inside its functions.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

__all__ = [
    "PATCHED",
    "SUPPORTED_VERL",
    "VerlDriftError",
    "check_trl_probe",
    "check_verl_version",
    "patch_trl_probe",
    "require_source",
    "trl_has_value_head",
    "trl_needs_probe_patch",
]

SUPPORTED_VERL = "0.9."
# Attribute on our wrappers holding verl's original function (also marks a function as patched).
PATCHED = "_ascl_original"


class VerlDriftError(RuntimeError):
    """The installed verl no longer has the code a workaround was written against."""


def check_verl_version() -> str:
    """The installed verl version; :class:`VerlDriftError` unless it is 0.9.x."""
    installed = version("verl")
    if not installed.startswith(SUPPORTED_VERL):
        raise VerlDriftError(
            f"verl_recipes supports verl {SUPPORTED_VERL}x only for its workarounds, found verl "
            f"{installed}; re-check verl_recipes/compat.py and verl_recipes/cpu/workarounds.py "
            "against the new verl"
        )
    return installed


def require_source(obj: Any, needle: str, what: str) -> None:
    """:class:`VerlDriftError` unless ``needle`` is in the source of ``obj`` (verl's code)."""
    source = inspect.getsource(obj)
    if needle not in source:
        raise VerlDriftError(
            f"{what}: expected the line {needle!r} in {inspect.getsourcefile(obj)}; verl changed, "
            "re-check verl_recipes/compat.py and verl_recipes/cpu/workarounds.py"
        )


# verl/models/transformers/monkey_patch.py:352 (0.9.1), run while every FSDP model is built:
#     if is_trl_available():
#         try:
#             from trl.experimental.ppo import AutoModelForCausalLMWithValueHead
#         except ImportError:
#             from trl import AutoModelForCausalLMWithValueHead
# is_trl_available (verl/utils/import_utils.py:64) only asks whether a package named trl exists.
# trl 1.x (the project's `trl` extra, installed by `make setup` next to verl) no longer ships
# that class, so init_model dies with an ImportError. verl/utils/model.py:54 imports the same
# probe for value-head critics. Both modules import it by name.
TRL_PROBE_USERS = {
    "verl.models.transformers.monkey_patch": "from trl import AutoModelForCausalLMWithValueHead",
    "verl.utils.model": "from trl import AutoModelForCausalLMWithValueHead",
}
TRL_PROBE_IMPORT = "from verl.utils.import_utils import is_trl_available"
TRL_PROBE_SOURCE = 'trl_spec = importlib.util.find_spec("trl")'


# trl major version from which the class verl imports is gone
TRL_WITHOUT_VALUE_HEAD = 1


def trl_needs_probe_patch() -> bool:
    """Whether the installed trl lacks ``AutoModelForCausalLMWithValueHead``, which verl 0.9.1
    imports whenever a package named trl exists (read from package metadata, no import).

    ``verl[fsdp]==0.9.1`` pins trl 0.27, which has the class: no patch there. The project's
    ``trl`` extra installs trl 1.x, which removed it: verl then crashes building any FSDP model.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("trl")
    except PackageNotFoundError:
        return False
    return int(installed.split(".", 1)[0] or 0) >= TRL_WITHOUT_VALUE_HEAD


@functools.cache
def trl_has_value_head() -> bool:
    """Whether an installed trl provides ``AutoModelForCausalLMWithValueHead`` (verl's use)."""
    if importlib.util.find_spec("trl") is None:
        return False
    for module in ("trl.experimental.ppo", "trl"):
        try:
            if hasattr(importlib.import_module(module), "AutoModelForCausalLMWithValueHead"):
                return True
        except ImportError:
            continue
    return False


def check_trl_probe() -> Callable[..., Any]:
    """Verify the trl probe and its two users are unchanged; returns verl's original probe."""
    from verl.utils import import_utils

    current = import_utils.is_trl_available
    original = getattr(current, PATCHED, current)
    require_source(original, TRL_PROBE_SOURCE, "verl.utils.import_utils.is_trl_available")
    for name, needle in TRL_PROBE_USERS.items():
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise VerlDriftError(f"{name} is gone; re-check verl_recipes/compat.py")
        text = Path(spec.origin).read_text(encoding="utf-8")
        if TRL_PROBE_IMPORT not in text or needle not in text:
            raise VerlDriftError(
                f"{spec.origin} changed how it imports trl; verl changed, "
                "re-check verl_recipes/compat.py"
            )
    return original


def patch_trl_probe() -> None:
    """Make verl's ``is_trl_available`` true only for a trl that has the class verl imports.

    With no trl, or a trl that still ships ``AutoModelForCausalLMWithValueHead``, verl behaves
    exactly as before. With trl 1.x, verl skips its value-head patch (which only concerns
    trl value-head models) instead of crashing. Idempotent; the check of trl runs on first use.
    """
    check_verl_version()
    original = check_trl_probe()
    from verl.utils import import_utils

    if hasattr(import_utils.is_trl_available, PATCHED):
        return

    @functools.wraps(original)
    def is_trl_available() -> bool:
        return original() and trl_has_value_head()

    setattr(is_trl_available, PATCHED, original)

    import_utils.is_trl_available = is_trl_available
    for name in TRL_PROBE_USERS:
        module = sys.modules.get(name)
        if module is not None:
            module.is_trl_available = is_trl_available
