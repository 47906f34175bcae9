"""Run verl 0.9.1's own ``main_ppo`` without an accelerator or vLLM (opt-in test harness).

Import this module in every verl process with
``VERL_USE_EXTERNAL_MODULES=verl_recipes.plugin,verl_recipes.cpu,verl_recipes.trainer``
(``verl_recipes/scripts/smoke_cpu.sh`` does it). Importing it:

- registers the ``cpu`` platform (:mod:`.platform`, public ``PlatformRegistry``); verl selects it
  only with ``VERL_PLATFORM=cpu``, never by auto-detection,
- registers the ``hf`` rollout backend (:mod:`.hf_rollout`, ``rollout.name=hf``), which also runs
  on a CUDA GPU; inert unless a config asks for it,
- and only under ``VERL_PLATFORM=cpu``: makes verl's process group plain ``gloo``
  (:mod:`.workarounds`) and selects verl's FSDP engine for the ``cpu`` device through verl's
  documented ``VERL_ENGINE_DEVICE`` override (``verl/workers/engine/base.py:405``; the FSDP
  engines are registered for ``cuda``/``npu`` only).

It refuses any verl other than 0.9.x. A harness for smoke tests and small studies, not a
training mode: verl's maintainers removed CPU support on purpose.
"""

from __future__ import annotations

import os

from verl_recipes.cpu import hf_rollout
from verl_recipes.cpu.platform import PlatformCPU, cpu_platform_requested
from verl_recipes.cpu.workarounds import check_verl_version, patch_process_group_backend

__all__ = ["PlatformCPU", "activate", "cpu_platform_requested"]


def activate() -> None:
    """Register the backends; under ``VERL_PLATFORM=cpu`` also apply the CPU workarounds."""
    check_verl_version()
    hf_rollout.register()
    if cpu_platform_requested():
        patch_process_group_backend()
        os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")


activate()
