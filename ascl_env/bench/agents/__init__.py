"""Agents for the benchmark harness: many conversations in, one assistant text each out.

An agent sees what a chat-template model sees (the env's ``info["messages"]`` and
``info["tools"]``) and returns the raw assistant text; the environment does all parsing and
judging. One module per family, each registering its specs (:func:`register_agent`):

* :mod:`~ascl_env.bench.agents.scripted`: baselines that expose reward gaming
  (:class:`AlwaysRefuse`, :class:`AlwaysComply`, :class:`AlwaysLookup`) and the ceiling
  (:class:`Oracle`);
* :mod:`~ascl_env.bench.agents.hf`: :class:`HFAgent`, transformers, batched ``generate`` with
  left padding, CPU or CUDA (also the offline ``smollm2`` spec);
* :mod:`~ascl_env.bench.agents.vllm`: :class:`VLLMAgent`, vLLM's offline engine, imported lazily;
* :mod:`~ascl_env.bench.agents.openai`: :class:`OpenAIAgent`, any OpenAI-compatible
  ``/chat/completions`` endpoint (e.g. ``vllm serve``); it runs whole episodes through
  :func:`ascl_env.episode.run_openai_episode` (an :class:`EpisodeAgent`), one thread each.

:func:`make_agent` builds one from a spec string (see :data:`SPEC_HELP`).
"""

from __future__ import annotations

from ascl_env.bench.agents.base import (
    FINISH_ERROR,
    FINISH_LENGTH,
    FINISH_STOP,
    LOOKUP_TOOL,
    Agent,
    AgentError,
    AgentFamily,
    AgentOptions,
    AgentSpecError,
    Conversation,
    EpisodeAgent,
    EpisodeFailed,
    EpisodeRun,
    Generation,
    UnknownAgentError,
    agent_families,
    agent_table,
    finish_reason,
    make_agent,
    register_agent,
    spec_help,
)

# Registration order is the order of the agent table.
from ascl_env.bench.agents.scripted import (  # isort: skip
    COMPLIANCE_TEXT,
    REFUSAL_TEXT,
    SCRIPTED,
    AlwaysComply,
    AlwaysLookup,
    AlwaysRefuse,
    Oracle,
)
from ascl_env.bench.agents.hf import HFAgent  # isort: skip
from ascl_env.bench.agents.vllm import VLLMAgent  # isort: skip
from ascl_env.bench.agents.openai import OpenAIAgent  # isort: skip

SPEC_HELP = spec_help()

__all__ = [
    "COMPLIANCE_TEXT",
    "FINISH_ERROR",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "EpisodeAgent",
    "EpisodeFailed",
    "EpisodeRun",
    "Generation",
    "finish_reason",
    "LOOKUP_TOOL",
    "REFUSAL_TEXT",
    "SCRIPTED",
    "SPEC_HELP",
    "Agent",
    "AgentError",
    "AgentFamily",
    "AgentOptions",
    "AgentSpecError",
    "AlwaysComply",
    "AlwaysLookup",
    "AlwaysRefuse",
    "Conversation",
    "HFAgent",
    "OpenAIAgent",
    "Oracle",
    "UnknownAgentError",
    "VLLMAgent",
    "agent_families",
    "agent_table",
    "make_agent",
    "register_agent",
    "spec_help",
]
