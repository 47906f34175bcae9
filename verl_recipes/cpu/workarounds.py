"""Where the CPU harness reaches into verl 0.9.1 beyond its public extension points.

Everything else in :mod:`verl_recipes.cpu` uses verl's registries (``PlatformRegistry``,
``RolloutReplicaRegistry``, ``register_trainer``). Two things have no public hook: the
process-group backend string and the in-worker rollout registry. (The third patch, of verl's trl
probe, is not CPU-specific: it lives in :mod:`verl_recipes.compat`, which the production plugin
imports.) Each function checks that verl still has the exact code it works around and raises
:class:`~verl_recipes.compat.VerlDriftError` otherwise, so a verl upgrade fails loudly at
start-up (and in ``tests/test_verl_cpu.py``) instead of silently running a different code path.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from verl_recipes.compat import (
    PATCHED,
    SUPPORTED_VERL,
    VerlDriftError,
    check_verl_version,
    require_source,
)

__all__ = [
    "SUPPORTED_VERL",
    "VerlDriftError",
    "check_backend_string",
    "check_rollout_registry",
    "check_verl_version",
    "patch_process_group_backend",
    "register_rollout_adapter",
]

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


def check_backend_string() -> Callable[..., Any]:
    """Verify the backend-string code is unchanged; returns verl's original function."""
    from verl.utils import distributed

    current = distributed.initialize_global_process_group_ray
    original = getattr(current, PATCHED, current)
    require_source(original, BACKEND_SOURCE_LINE, "verl.utils.distributed")
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
    require_source(base.get_rollout_class, ROLLOUT_REGISTRY_LOOKUP, "get_rollout_class")
    return registry


def register_rollout_adapter(name: str, fqdn: str) -> None:
    """Add the in-worker adapter ``fqdn`` for ``rollout.name=name`` (mode ``async``)."""
    check_verl_version()
    registry = check_rollout_registry()
    existing = registry.get((name, "async"))
    if existing is not None and existing != fqdn:
        raise ValueError(f"rollout {name!r} is already registered to {existing}")
    registry[(name, "async")] = fqdn
