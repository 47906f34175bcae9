"""verl plugin (entry point ``verl.plugins: ascl``), imported by ``import verl`` in every process.

Each import below is a registration module: cheap, idempotent, and free of vllm imports, because
this runs while ``verl/__init__`` is still executing. verl swallows plugin import errors at DEBUG
level, so a failure here only shows later as "Unknown advantage estimator simply: ifpo"; where
entry points are disabled or broken, set ``VERL_USE_EXTERNAL_MODULES=verl_recipes.plugin``,
which imports this module loudly.
"""

import verl_recipes.agent_loop  # noqa: F401  registers the "ascl_agent" agent loop
import verl_recipes.ifpo_estimator  # noqa: F401  registers the "ifpo" advantage estimator
