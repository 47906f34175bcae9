"""verl plugin (entry point ``verl.plugins: ascl``), imported by ``import verl`` in every process.

Each import below is a registration module: cheap, idempotent, and free of vllm imports, because
this runs while ``verl/__init__`` is still executing. verl swallows plugin import errors at DEBUG
level, so a failure here only shows later as "Unknown advantage estimator simply: ifpo"; where
entry points are disabled or broken, set ``VERL_USE_EXTERNAL_MODULES=verl_recipes.plugin``,
which imports this module loudly.
"""

from importlib import import_module

# The estimator comes first: it is cheap, and verl swallows plugin errors, so a failure in the
# heavier agent-loop import (verl.experimental, ~2 s) must not leave "ifpo" unregistered.
for _module in (
    "verl_recipes.ifpo_estimator",  # registers the "ifpo" advantage estimator
    "verl_recipes.agent_loop",  # registers the "ascl_agent" agent loop
):
    import_module(_module)


def _patch_trl_probe() -> None:
    """verl 0.9.1 crashes building any FSDP model when trl 1.x is installed (it imports a class
    trl 1.x removed); the project's ``trl`` extra installs trl 1.x, so apply the same narrow fix
    the CPU path uses (``verl_recipes.cpu.workarounds.patch_trl_probe``), only when trl is there.
    """
    from importlib.util import find_spec

    if find_spec("trl") is None:
        return
    from verl_recipes.cpu.workarounds import patch_trl_probe

    patch_trl_probe()


_patch_trl_probe()
