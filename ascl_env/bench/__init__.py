"""The benchmark harness behind ``ascl-bench``: agents, the batched runner, metrics, reports
and the ``judge-eval`` subcommand (:mod:`ascl_env.bench.judge_eval`).

Importing it is cheap: transformers, vLLM, matplotlib and tqdm are imported only where used
(matplotlib and tqdm come with the ``bench`` extra).
"""

from ascl_env.bench.agents import (
    Agent,
    AgentError,
    AgentOptions,
    AgentSpecError,
    Conversation,
    make_agent,
)
from ascl_env.bench.runner import EpisodePlan, RunError, plan_episodes, run_episodes

__all__ = [
    "Agent",
    "AgentError",
    "AgentOptions",
    "AgentSpecError",
    "Conversation",
    "EpisodePlan",
    "RunError",
    "make_agent",
    "plan_episodes",
    "run_episodes",
]
