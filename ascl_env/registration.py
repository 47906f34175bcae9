"""Gymnasium registration of ``ASCL-v0`` (idempotent; does not import the environment module)."""

from __future__ import annotations

import gymnasium

ENV_ID = "ASCL-v0"


def register_envs() -> None:
    """Register ``ASCL-v0`` once per process; calling it again is a no-op.

    No ``max_episode_steps``: the environment truncates itself at ``max_turns``, which is a
    ``make`` kwarg, so a fixed ``TimeLimit`` wrapper would disagree with it.
    """
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="ascl_env.env:ASCLEnv")
