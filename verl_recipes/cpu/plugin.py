"""Registrations of the CPU harness; imported by verl itself via ``VERL_USE_EXTERNAL_MODULES``.

List it first (``verl_recipes.cpu.plugin,verl_recipes.plugin,verl_recipes.trainer``): the
platform must be registered before any module asks verl for its device. Importing it

- registers the ``cpu`` platform (public ``PlatformRegistry``); verl selects it only with
  ``VERL_PLATFORM=cpu``, never by auto-detection,
- registers the ``hf`` rollout backend, lazily (nothing is imported until a config asks for
  ``rollout.name=hf``): the replica through the public ``RolloutReplicaRegistry``, the in-worker
  adapter through :func:`~verl_recipes.cpu.workarounds.register_rollout_adapter`,
- keeps an installed trl 1.x (the project's ``trl`` extra) from crashing verl's FSDP model
  set-up (:func:`~verl_recipes.compat.patch_trl_probe`, which the main plugin applies too),
- and only under ``VERL_PLATFORM=cpu``: makes verl's process group plain ``gloo``
  (:func:`~verl_recipes.cpu.workarounds.patch_process_group_backend`) and selects verl's FSDP
  engine for the ``cpu`` device through verl's documented ``VERL_ENGINE_DEVICE`` override
  (``verl/workers/engine/base.py:405``; the FSDP engines are registered for cuda/npu only).

It refuses any verl other than 0.9.x. A harness for smoke tests and small studies, not a
training mode: verl's maintainers removed CPU support on purpose.
"""

from __future__ import annotations

import os
from importlib import import_module

from verl.workers.rollout.replica import RolloutReplicaRegistry

from verl_recipes.compat import check_verl_version, patch_trl_probe, trl_needs_probe_patch
from verl_recipes.cpu.platform import PlatformCPU, cpu_platform_requested
from verl_recipes.cpu.workarounds import patch_process_group_backend, register_rollout_adapter

__all__ = ["HF_ADAPTER", "HF_ROLLOUT", "PlatformCPU", "activate"]

HF_ROLLOUT = "hf"
HF_ADAPTER = "verl_recipes.cpu.hf_rollout.HFServerAdapter"


def _load_hf_replica() -> type:
    return import_module("verl_recipes.cpu.hf_rollout").HFReplica


def activate() -> None:
    """Register the backends; under ``VERL_PLATFORM=cpu`` also apply the CPU workarounds."""
    check_verl_version()
    RolloutReplicaRegistry.register(HF_ROLLOUT, _load_hf_replica)
    register_rollout_adapter(HF_ROLLOUT, HF_ADAPTER)
    if trl_needs_probe_patch():
        patch_trl_probe()
    if cpu_platform_requested():
        patch_process_group_backend()
        os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")


activate()
