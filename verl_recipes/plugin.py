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
    """Apply the narrow trl fix (:mod:`verl_recipes.compat`) only where trl lacks the class
    verl imports; with verl's own pinned trl (the GPU install) nothing is patched and no
    verl-version check runs."""
    from verl_recipes.compat import patch_trl_probe, trl_needs_probe_patch

    if trl_needs_probe_patch():
        patch_trl_probe()


_patch_trl_probe()
