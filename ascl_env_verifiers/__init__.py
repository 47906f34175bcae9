"""verifiers' taskset id ``ascl-env-verifiers``: ASCL-v0 for ``vf-eval`` and prime-rl.

verifiers imports a taskset by a top-level module name and reads its plugin classes from
``__all__``; the implementation is :mod:`ascl_env.integrations.verifiers` (extra
``ascl-env[verifiers]``).
"""

from ascl_env.integrations.verifiers import ASCLHarness, ASCLTaskset

__all__ = ["ASCLHarness", "ASCLTaskset"]
