"""What every agent family shares: the protocol, its input, its options, its errors, the registry.

An agent family registers itself with :func:`register_agent` (one module per family:
``scripted``, ``hf``, ``vllm``, ``openai``); :func:`make_agent` turns a spec string into an agent
through the registry, and :func:`spec_help` lists the registered specs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ascl_env.lookup import TOOL_NAME

LOOKUP_TOOL = TOOL_NAME
"""The env's lookup tool name (an alias of :data:`ascl_env.lookup.TOOL_NAME`)."""


@dataclass
class Conversation:
    """One episode's conversation so far, as the environment reports it.

    ``meta`` holds the task's public metadata and, from the runner, the episode's ``seed``: the
    vLLM and OpenAI agents seed that episode's requests with it (their own seed otherwise); the HF
    agent samples each batch from one generator seeded once.
    """

    messages: list[dict]
    tools: list[dict]
    meta: dict = field(default_factory=dict)


FINISH_STOP, FINISH_LENGTH, FINISH_ERROR = "stop", "length", "error"
_FINISH_ALIASES = {"tool_calls": FINISH_STOP, "function_call": FINISH_STOP, "eos": FINISH_STOP}


def finish_reason(raw: str | None) -> str | None:
    """A server's ``finish_reason`` as the harness records it: ``stop`` (the model ended its turn,
    tool calls included), ``length`` (the token limit cut it), others as given, ``None`` unknown.
    """
    return _FINISH_ALIASES.get(raw, raw) if raw is not None else None


@dataclass(frozen=True)
class Generation:
    """One generated turn with what the generator knows about it (an agent may return these
    instead of plain strings): why it stopped (:func:`finish_reason`), how many tokens it
    generated, and the seconds of generation attributable to it (its share of a batch)."""

    text: str
    finish_reason: str | None = None
    completion_tokens: int | None = None
    seconds: float | None = field(default=None, compare=False)


class Agent(Protocol):
    """A turn-level agent: the runner batches the next turn of many episodes into one call.

    ``generate`` returns one ``str`` or :class:`Generation` per conversation.
    """

    name: str

    def generate(self, conversations: Sequence[Conversation]) -> list[str | Generation]: ...


@dataclass
class EpisodeRun:
    """What an episode-level agent returns for one episode: the env's final ``info`` (with
    ``messages``), the final reward, and per-turn records ``{"finish_reason",
    "completion_tokens", "generate_s"}``."""

    info: dict
    reward: float
    turns: list[dict]


class EpisodeAgent(Protocol):
    """An episode-level agent (the OpenAI-compatible one): it runs whole episodes itself, one
    thread per episode, ``concurrency`` at a time. ``run_episode`` resets ``env`` with ``seed``
    and ``{"task_id": task_id}``; an episode it cannot finish raises :class:`EpisodeFailed`."""

    name: str
    concurrency: int

    def run_episode(self, env: object, *, seed: int, task_id: str) -> EpisodeRun: ...


class AgentError(RuntimeError):
    """An agent could not produce its answers (endpoint down, malformed response, ...)."""


class EpisodeFailed(AgentError):
    """One episode could not be finished (its requests failed after retries); the runner keeps
    it as an errored row and goes on. ``turns`` are the turns generated before the failure and
    ``messages`` the conversation as last sent."""

    def __init__(self, message: str, *, turns: list[dict], messages: list[dict]):
        super().__init__(message)
        self.turns = turns
        self.messages = messages


class AgentSpecError(ValueError):
    """An agent spec string cannot be turned into an agent."""


class UnknownAgentError(AgentSpecError):
    """A spec names no registered agent; ``agent_table`` lists the known ones, one per line."""

    def __init__(self, message: str, agent_table: Sequence[str]):
        self.message = message
        self.agent_table = list(agent_table)
        super().__init__("\n".join([message, *self.agent_table]))


@dataclass
class AgentOptions:
    """Generation options shared by the model agents (CLI flags)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 64
    allow_download: bool = False
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 2
    api_key_env: str = "OPENAI_API_KEY"
    tool_mode: str = "native"

    def generation(self) -> dict[str, float | int]:
        """The keyword arguments every model agent takes."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
        }


# build(argument, options, math_answers): ``argument`` is the text after ``prefix:`` (None for a
# family without one).
Builder = Callable[[str | None, AgentOptions, Mapping[str, str]], Agent]


@dataclass(frozen=True)
class AgentFamily:
    """One registered spec: ``name`` alone, or ``name:ARGUMENT`` when ``argument`` is set."""

    name: str
    summary: str
    build: Builder
    argument: str | None = None

    @property
    def usage(self) -> str:
        return f"{self.name}:{self.argument}" if self.argument else self.name


_REGISTRY: dict[str, AgentFamily] = {}


def register_agent(
    name: str, summary: str, *, argument: str | None = None
) -> Callable[[Builder], Builder]:
    """Decorator: register ``build`` under the spec ``name`` (``name:ARGUMENT`` with ``argument``).

    ``summary`` is the one line :func:`spec_help` shows. A name can be registered once.
    """
    if not name or ":" in name:
        raise ValueError(f"agent name {name!r} must be non-empty and contain no ':'")

    def decorator(build: Builder) -> Builder:
        if name in _REGISTRY:
            raise ValueError(f"agent {name!r} is already registered")
        _REGISTRY[name] = AgentFamily(name, summary, build, argument)
        return build

    return decorator


def agent_families() -> dict[str, AgentFamily]:
    """The registered families, in registration order."""
    return dict(_REGISTRY)


def agent_table() -> list[str]:
    """One line per registered spec: its usage and summary."""
    return [f"  {family.usage:<20} {family.summary}" for family in _REGISTRY.values()]


def spec_help() -> str:
    return "\n".join(["agent specs:", *agent_table()])


def make_agent(
    spec: str,
    *,
    options: AgentOptions | None = None,
    math_answers: Mapping[str, str] | None = None,
) -> Agent:
    """Build the agent a spec names (see :func:`spec_help`); :class:`AgentSpecError` if it is bad.

    ``math_answers`` (task id → answer) is what the ``oracle`` gets to answer math. A spec naming
    no registered agent raises :class:`UnknownAgentError`, which lists the known specs.
    """
    options = options or AgentOptions()
    spec = spec.strip()
    prefix, sep, rest = spec.partition(":")
    family = _REGISTRY.get(prefix)
    if family is None:
        what = (
            f"unknown agent type {prefix!r} in {spec!r}" if sep else f"unknown agent spec {spec!r}"
        )
        raise UnknownAgentError(f"{what}; the known agents are:", agent_table())
    if family.argument is None and sep:
        raise UnknownAgentError(
            f"unknown agent spec {spec!r} ({prefix!r} takes no argument); the known agents are:",
            agent_table(),
        )
    if family.argument is not None and not rest:
        raise UnknownAgentError(
            f"unknown agent spec {spec!r}: write {family.usage}; the known agents are:",
            agent_table(),
        )
    return family.build(rest if family.argument else None, options, math_answers or {})


def resolve_model(source: str, prefix: str, allow_download: bool) -> tuple[str, bool]:
    """(name or path to load, local_files_only) for the ``hf:`` and ``vllm:`` families."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise AgentSpecError(
                f"{prefix}:{source}: {path} has no config.json (not a model folder)"
            )
        return str(path), True
    looks_like_path = source.startswith((".", "/", "~")) or source.count("/") > 1
    if looks_like_path or not allow_download:
        raise AgentSpecError(
            f"{prefix}:{source}: no such model folder"
            + (
                ""
                if looks_like_path
                else "; to fetch it from the Hugging Face Hub pass --allow-download"
            )
        )
    return source, False


__all__ = [
    "FINISH_ERROR",
    "FINISH_LENGTH",
    "FINISH_STOP",
    "Agent",
    "AgentError",
    "EpisodeAgent",
    "EpisodeFailed",
    "EpisodeRun",
    "Generation",
    "finish_reason",
    "AgentFamily",
    "AgentOptions",
    "AgentSpecError",
    "Conversation",
    "LOOKUP_TOOL",
    "UnknownAgentError",
    "agent_families",
    "agent_table",
    "make_agent",
    "register_agent",
    "resolve_model",
    "spec_help",
]
