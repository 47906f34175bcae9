"""ascl-env: Adaptive Safe Context Learning (ASCL) as a Gymnasium environment.

``import ascl_env`` registers ``ASCL-v0`` with Gymnasium. The public classes are loaded lazily so
that importing the package stays cheap (no torch, transformers, vllm or verl). ``score`` scores
an episode from outside the env loop (its lookups and final text, replayed through the env).
"""

from __future__ import annotations

import importlib
from typing import Any

from ascl_env.registration import ENV_ID, register_envs

register_envs()

__version__ = "0.1.0"

_EXPORTS = {
    "Rule": "ascl_env.rules",
    "RuleBase": "ascl_env.rules",
    "RuleBaseError": "ascl_env.rules",
    "BM25Retriever": "ascl_env.retrieval",
    "Hit": "ascl_env.retrieval",
    "ASCLEnv": "ascl_env.env",
    "ASCLConfig": "ascl_env.config",
    "Task": "ascl_env.tasks",
    "EpisodeOutcome": "ascl_env.outcome",
    "score": "ascl_env.integrations.scoring",
    "Scored": "ascl_env.integrations.scoring",
}

__all__ = [*_EXPORTS, "ENV_ID", "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ascl_env' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
