"""``PlatformCPU``: verl's device abstraction on a machine with no accelerator.

verl 0.9.1 ships platforms for NVIDIA, Ascend and ROCm only (its own CPU platform was removed
upstream: "Remove PlatformCPU as verl does not support CPU-only backend"). This one is
registered through the public ``PlatformRegistry`` and is chosen only with ``VERL_PLATFORM=cpu``:
auto-detection never picks it.

What it reports:

- ``device_name`` ``"cpu"``, ``current_device()`` ``"cpu"`` (verl passes it to ``.to(...)``; an
  int would make CPU torch raise "Cannot access accelerator device"),
- ``communication_backend_name()`` ``"gloo"``,
- ``ray_resource_name()`` ``"GPU"``: verl's resource pools count GPUs only, so a CPU run asks Ray
  for fake GPUs (``+ray_kwargs.ray_init.num_gpus=N``); each FSDP rank holds one,
- ``device_module``: :data:`CPU_DEVICE_MODULE`, a ``torch.cuda``-shaped namespace whose memory
  statistics are 0 and whose cache/stream calls do nothing.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import torch
from verl.plugin.platform import PlatformBase, PlatformRegistry

PLATFORM_NAME = "cpu"


class _CPUDeviceModule:
    """What verl calls on ``get_torch_device()`` (``torch.cuda`` on GPUs), answered for the CPU.

    Anything not defined here falls through to ``torch.cpu`` (``Stream``, ``Event``,
    ``current_stream``, ``stream``, ``synchronize``, ...).
    """

    __name__ = "verl_recipes.cpu.device"

    def __getattr__(self, name: str) -> Any:
        return getattr(torch.cpu, name)

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def current_device() -> str:
        return "cpu"

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def set_device(device: Any) -> None:
        return None

    @staticmethod
    def get_device_name(device: Any = None) -> str:
        return "CPU"

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def set_per_process_memory_fraction(fraction: float, device: Any = None) -> None:
        return None

    @staticmethod
    def memory_allocated(device: Any = None) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def reset_peak_memory_stats(device: Any = None) -> None:
        return None

    @staticmethod
    def mem_get_info(device: Any = None) -> tuple[int, int]:
        """(free, total) bytes of host memory."""
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_AVPHYS_PAGES") * page, os.sysconf("SC_PHYS_PAGES") * page

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    @staticmethod
    def get_rng_state(device: Any = None) -> torch.Tensor:
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state: torch.Tensor, device: Any = None) -> None:
        torch.set_rng_state(state)


CPU_DEVICE_MODULE = _CPUDeviceModule()


def cpu_platform_requested() -> bool:
    """True when ``VERL_PLATFORM=cpu`` is set in this process."""
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """verl platform for CPU-only runs (a test harness, not a training mode)."""

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> Any:
        return CPU_DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: only an explicit VERL_PLATFORM=cpu selects it.
        return cpu_platform_requested()

    def current_device(self) -> str:  # type: ignore[override]  # verl passes it to .to()
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
