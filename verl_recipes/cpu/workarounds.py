"""Where the CPU harness reaches into verl 0.9.1 beyond its public extension points.

Everything else in :mod:`verl_recipes.cpu` uses verl's registries (``PlatformRegistry``,
``RolloutReplicaRegistry``, ``register_trainer``). Three things have no public hook: the
process-group backend string, the in-worker rollout registry, and verl's trl probe (which
breaks next to trl 1.x, as ``make setup`` installs it). Each function
checks that verl still has the exact code it works around and raises :class:`VerlDriftError`
otherwise, so a verl upgrade fails loudly at start-up (and in ``tests/test_verl_cpu.py``) instead
of silently running a different code path.
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

SUPPORTED_VERL = "0.9."
# Attribute on our wrappers holding verl's original function (also marks a function as patched).
PATCHED = "_ascl_original"

# verl/utils/distributed.py:89 (0.9.1), in initialize_global_process_group_ray:
#     backend = backend or f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"
# With the CPU platform that is "cpu:gloo,cpu:gloo", which torch rejects ("Duplicate device type
# cpu"); there is no config key for the backend, and verl/workers/engine_workers.py:38 imports the
# function by name, then calls it with no backend (engine_workers.py:89).
BACKEND_SOURCE_LINE = 'backend = backend or f"cpu:gloo,{get_device_name()}:{get_nccl_backend()}"'
ENGINE_WORKERS_IMPORT = "from verl.utils.distributed import initialize_global_process_group_ray"

# verl/workers/rollout/base.py:89 (0.9.1): _ROLLOUT_REGISTRY, a private module-level dict of the
# in-worker rollout adapters that get_rollout_class (base.py:106) asserts membership in. The
# replica side has a public RolloutReplicaRegistry; the adapter side has no register function.
ROLLOUT_REGISTRY_LOOKUP = "assert (rollout_name, mode) in _ROLLOUT_REGISTRY"


class VerlDriftError(RuntimeError):
    """The installed verl no longer has the code a workaround was written against."""


def check_verl_version() -> str:
    """The installed verl version; :class:`VerlDriftError` unless it is 0.9.x."""
    installed = version("verl")
    if not installed.startswith(SUPPORTED_VERL):
        raise VerlDriftError(
            f"verl_recipes.cpu supports verl {SUPPORTED_VERL}x only, found verl {installed}; "
            "re-check verl_recipes/cpu/workarounds.py against the new verl"
        )
    return installed


def _require_source(obj: Any, needle: str, what: str) -> None:
    source = inspect.getsource(obj)
    if needle not in source:
        raise VerlDriftError(
            f"{what}: expected the line {needle!r} in {inspect.getsourcefile(obj)}; verl changed, "
            "re-check verl_recipes/cpu/workarounds.py"
        )


def check_backend_string() -> Callable[..., Any]:
    """Verify the backend-string code is unchanged; returns verl's original function."""
    from verl.utils import distributed

    current = distributed.initialize_global_process_group_ray
    original = getattr(current, PATCHED, current)
    _require_source(original, BACKEND_SOURCE_LINE, "verl.utils.distributed")
    # Read, not imported: this runs while verl/__init__ is still executing.
    spec = importlib.util.find_spec("verl.workers.engine_workers")
    if spec is None or spec.origin is None:
        raise VerlDriftError("verl.workers.engine_workers is gone; re-check verl_recipes/cpu")
    if ENGINE_WORKERS_IMPORT not in Path(spec.origin).read_text(encoding="utf-8"):
        raise VerlDriftError(
            f"{spec.origin} no longer has {ENGINE_WORKERS_IMPORT!r}; verl changed, "
            "re-check verl_recipes/cpu/workarounds.py"
        )
    return original


def patch_process_group_backend() -> None:
    """Make verl's process group use plain ``gloo`` (only ever called under ``VERL_PLATFORM=cpu``).

    Replaces ``initialize_global_process_group_ray`` in ``verl.utils.distributed`` and in
    ``verl.workers.engine_workers`` (which holds its own reference; patched too if it is already
    imported, otherwise it imports the wrapper) with a wrapper that passes ``backend="gloo"``
    when the caller gave none. Idempotent.
    """
    check_verl_version()
    original = check_backend_string()
    from verl.utils import distributed

    if hasattr(distributed.initialize_global_process_group_ray, PATCHED):
        return

    @functools.wraps(original)
    def initialize_global_process_group_ray(timeout_second=None, backend=None):
        return original(timeout_second=timeout_second, backend=backend or "gloo")

    setattr(initialize_global_process_group_ray, PATCHED, original)

    distributed.initialize_global_process_group_ray = initialize_global_process_group_ray
    engine_workers = sys.modules.get("verl.workers.engine_workers")
    if engine_workers is not None:
        engine_workers.initialize_global_process_group_ray = initialize_global_process_group_ray


def check_rollout_registry() -> dict[tuple[str, str], str]:
    """Verify the private in-worker rollout registry is unchanged; returns the dict."""
    from verl.workers.rollout import base

    registry = getattr(base, "_ROLLOUT_REGISTRY", None)
    if not isinstance(registry, dict) or ("vllm", "async") not in registry:
        raise VerlDriftError(
            "verl.workers.rollout.base._ROLLOUT_REGISTRY is gone or changed shape; "
            "re-check verl_recipes/cpu/workarounds.py"
        )
    _require_source(base.get_rollout_class, ROLLOUT_REGISTRY_LOOKUP, "get_rollout_class")
    return registry


def register_rollout_adapter(name: str, fqdn: str) -> None:
    """Add the in-worker adapter ``fqdn`` for ``rollout.name=name`` (mode ``async``)."""
    check_verl_version()
    registry = check_rollout_registry()
    existing = registry.get((name, "async"))
    if existing is not None and existing != fqdn:
        raise ValueError(f"rollout {name!r} is already registered to {existing}")
    registry[(name, "async")] = fqdn


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
    _require_source(original, TRL_PROBE_SOURCE, "verl.utils.import_utils.is_trl_available")
    for name, needle in TRL_PROBE_USERS.items():
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise VerlDriftError(f"{name} is gone; re-check verl_recipes/cpu/workarounds.py")
        text = Path(spec.origin).read_text(encoding="utf-8")
        if TRL_PROBE_IMPORT not in text or needle not in text:
            raise VerlDriftError(
                f"{spec.origin} changed how it imports trl; verl changed, "
                "re-check verl_recipes/cpu/workarounds.py"
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
