"""ASCL-v0 as a verifiers 0.4 (``verifiers.v1``) environment: taskset, lookup toolset, reward.

verifiers 0.4 composes an environment from a taskset package (``vf-eval <taskset-id>``): a
:class:`ASCLTaskset` yields one :class:`ASCLTask` per ASCL task, its shared
:class:`ASCLLookupToolset` serves ``lookup_safety_rules(query)`` over MCP (the env's retriever
and formatting, :func:`ascl_env.integrations.scoring.lookup`), and :meth:`ASCLTask.ascl` is the
``@vf.reward``: it reads the lookups and the final assistant text off verifiers' trace and
replays them through ``ASCLEnv.step`` (:func:`ascl_env.integrations.scoring.score`), so the
reward is the env's reward for the same turns. The outcome (``refused``, ``safety``,
``judge_error``, ...) lands in ``trace.info["ascl"]``.

verifiers resolves a taskset id by importing a top-level module, so the id is
``ascl-env-verifiers`` (the ``ascl_env_verifiers`` package re-exports this module's plugin
classes). :class:`ASCLHarness` is its default harness: verifiers' own chat program
(``null`` harness), run with this interpreter on the local subprocess runtime instead of a
``uv``-built script environment, so it works offline; in other runtimes it is the ``null``
harness unchanged.

>>> from ascl_env.integrations.verifiers import load_environment  # doctest: +SKIP
>>> env = load_environment(tasks="bundled", ascl={"judge": "keyword", "top_k": 3})
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import verifiers.v1 as vf
from pydantic import Field, field_validator
from verifiers.v1.harnesses.null import NullHarness
from verifiers.v1.harnesses.utils.launch import CHAT_PROGRAM_SOURCE, launch_chat_program

from ascl_env.config import ASCLConfig, as_config
from ascl_env.env import default_system_prompt
from ascl_env.integrations.scoring import Scored, as_task, lookup, score
from ascl_env.lookup import TOOL_NAME as LOOKUP_TOOL_NAME
from ascl_env.lookup import tool_docstring
from ascl_env.tasks import Task, load_task_spec
from ascl_env.turns import tool_calls_to_text

TASKSET_ID = "ascl-env-verifiers"
"""The taskset id verifiers imports (``vf-eval ascl-env-verifiers``, ``--env.taskset.id``)."""


def _ascl_fields(value: Any) -> dict[str, Any]:
    """Validate ASCLConfig fields (a clear error names the bad field) and keep them as a dict."""
    if isinstance(value, ASCLConfig):
        return value.model_dump(mode="json")
    if not isinstance(value, Mapping):
        raise ValueError(f"ascl must be a dict of ASCLConfig fields, got {type(value).__name__}")
    config = as_config(dict(value))
    if config.rules_mode != "tool":
        raise ValueError(
            f"the verifiers environment offers the lookup tool, so ascl.rules_mode must be "
            f"'tool', got {config.rules_mode!r}"
        )
    return dict(value)


class ASCLTaskConfig(vf.TaskConfig):
    """Per-task config: the :class:`~ascl_env.config.ASCLConfig` fields scoring uses."""

    ascl: dict[str, Any] = Field(default_factory=dict)
    """ASCLConfig fields (``judge``, ``rewards``, ``top_k``, ``max_turns``, ...)."""

    @field_validator("ascl")
    @classmethod
    def _check_ascl(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _ascl_fields(value)


class ASCLTasksetConfig(vf.TasksetConfig):
    """``--env.taskset.*``: which ASCL tasks, and the env config they are scored with."""

    tasks: str = "bundled"
    """A ``load_task_spec`` string: ``bundled``, ``xstest:PATH``, a JSONL path, ..."""
    task: ASCLTaskConfig = ASCLTaskConfig()
    """Per-task config; ``task.ascl`` holds the ASCLConfig fields (lookup and scoring)."""
    system_prompt_text: str | None = None
    """The system prompt (default: the env's tool-mode prompt; "" for none)."""


class ASCLData(vf.TaskData):
    """One ASCL task on verifiers' wire: the prompt plus the whole task as ``ascl_task``."""

    ascl_task: dict[str, Any]


class ASCLLookupConfig(vf.SharedToolsetConfig):
    """The lookup server's config: the ASCLConfig fields (retriever, ``top_k``, ...)."""

    ascl: dict[str, Any] = Field(default_factory=dict)


class ASCLLookupToolset(vf.Toolset[ASCLLookupConfig]):
    """The env's lookup as an MCP tool, served once per environment (a shared toolset)."""

    TOOL_PREFIX = None  # advertise the bare tool name, as the env and its prompt spell it

    def __init__(self, config: ASCLLookupConfig) -> None:
        super().__init__(config)
        self.ascl_config = as_config(config.ascl)

    @vf.tool(name=LOOKUP_TOOL_NAME)
    async def lookup_safety_rules(self, query: str) -> str:
        return lookup(query, self.ascl_config)[0]

    # verifiers takes the MCP tool's description from this docstring: the tool's own.
    lookup_safety_rules.__doc__ = tool_docstring()


class ASCLTask(vf.Task[ASCLData, vf.State, ASCLTaskConfig]):
    """One ASCL task; its reward is the env's, replayed from the trace."""

    @property
    def key(self) -> str:
        return f"{self.data.ascl_task.get('source', '')}:{self.data.ascl_task['id']}"

    @vf.reward
    async def ascl(self, trace: vf.Trace) -> float:
        """The env's reward for the lookups and final answer on ``trace``."""
        scored = score_trace(self.data.ascl_task, trace, as_config(self.config.ascl))
        trace.info["ascl"] = scored.outcome
        return scored.reward


class ASCLTaskset(vf.Taskset[ASCLTask, ASCLTasksetConfig]):
    """The ASCL tasks of ``config.tasks``, each with the env's tool-mode system prompt."""

    def load(self) -> Iterable[ASCLTask]:
        tasks = load_task_spec(self.config.tasks)
        if not tasks:
            raise ValueError(f"taskset.tasks {self.config.tasks!r} holds no tasks")
        for task in tasks:
            yield ASCLTask(task_data(task, self.config.system_prompt_text), self.config.task)

    @classmethod
    def toolsets(cls, config: ASCLTasksetConfig) -> list[vf.Toolset]:
        return [ASCLLookupToolset(ASCLLookupConfig(ascl=config.task.ascl))]


class ASCLHarness(NullHarness):
    """verifiers' chat harness (``null``), run with this interpreter on the subprocess runtime.

    The ``null`` harness prepares its chat program with ``uv sync --script`` (downloading
    ``uv`` and the program's dependencies); on the local subprocess runtime this harness runs
    the same program with ``sys.executable``, whose environment already has them (verifiers
    depends on ``openai``, ``mcp``, ``httpx``, ``httpx2``, ``tenacity``). Elsewhere it defers
    to the ``null`` harness.
    """

    async def setup(self, runtime: Any) -> None:
        if runtime.type != "subprocess":
            await super().setup(runtime)

    async def launch(self, ctx, trace, runtime, endpoint, secret, mcp_urls, data, **kw) -> Any:
        if runtime.type != "subprocess":
            return await super().launch(ctx, trace, runtime, endpoint, secret, mcp_urls, data, **kw)
        system_prompt, prompt = self.resolve_prompt(data)
        url = kw.get("tool_interception_url")
        return await launch_chat_program(
            CHAT_PROGRAM_SOURCE,
            self.config,
            ctx,
            trace,
            _HostPython(runtime),
            endpoint,
            secret,
            mcp_urls,
            system_prompt,
            prompt,
            extra_args=[f"--tool-interception-url={url}"] if url else (),
        )


class _HostPython:
    """A subprocess runtime whose PEP 723 scripts run with this interpreter (no ``uv``)."""

    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runtime, name)

    async def prepare_uv_script(self, script: str | bytes, env=None, *, activate=True):
        data = script.encode() if isinstance(script, str) else script
        path = f"vf-chat-{hashlib.sha256(data).hexdigest()[:16]}.py"
        await self._runtime.write(path, data)
        return [sys.executable, path]


def task_data(task: Task, system_prompt: str | None = None) -> ASCLData:
    """verifiers' wire data for one ASCL task; the system prompt defaults to the env's."""
    if system_prompt is None:
        system_prompt = default_system_prompt("tool", task.kind)
    return ASCLData(
        id=task.id,
        name=f"{task.kind}:{task.id}",
        prompt=task.prompt,
        system_prompt=system_prompt or None,
        ascl_task=task.model_dump(mode="json"),
    )


def trace_lookups(trace: Any) -> tuple[list[Any], str]:
    """The lookup queries (in order) and the final answer text on a verifiers trace.

    Every assistant turn with tool calls is lookup turns (one query per ``lookup_safety_rules``
    call; a call to another tool or with unreadable arguments yields ``None``, which the env
    scores as a bad call). The last assistant message is the answer; if it still carries tool
    calls (the harness stopped on a tool turn) they are written as Hermes calls, so the env
    sees a lookup turn and scores the episode as truncated.
    """
    messages = list(trace.assistant_messages)
    lookups: list[Any] = []
    for message in messages[:-1]:
        for call in message.tool_calls or []:
            lookups.append(_query(call))
    if not messages:
        return lookups, ""
    last = messages[-1]
    content = last.content or ""
    if last.tool_calls:
        calls = [{"function": {"name": c.name, "arguments": c.arguments}} for c in last.tool_calls]
        return lookups, tool_calls_to_text(content, calls)
    return lookups, content


def _query(call: Any) -> Any:
    if call.name != LOOKUP_TOOL_NAME:
        return None
    try:
        arguments = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return None
    return arguments.get("query") if isinstance(arguments, dict) else None


def score_trace(
    task: Task | Mapping[str, Any], trace: Any, config: ASCLConfig | None = None
) -> Scored:
    """Score a verifiers trace as the env scores the same turns."""
    lookups, final = trace_lookups(trace)
    return score(as_task(task), final, lookups=lookups, config=config)


def load_environment(
    tasks: str = "bundled",
    *,
    ascl: Mapping[str, Any] | ASCLConfig | None = None,
    system_prompt: str | None = None,
    **env_fields: Any,
) -> vf.Env:
    """The verifiers env for ASCL: ``vf.load_environment`` of this taskset.

    ``ascl`` holds :class:`~ascl_env.config.ASCLConfig` fields (``judge``, ``top_k``,
    ``rewards``, ...); ``system_prompt`` replaces the env's tool-mode prompt; further keyword
    arguments are ``EnvConfig`` fields (``agent={"runtime": {...}}``, ``timeout``, ...). The
    agent runs on the local subprocess runtime unless ``agent`` says otherwise (verifiers'
    own default is a Prime sandbox, which needs ``prime login``).
    """
    from verifiers.v1.utils.loaders import load_environment as vf_load
    from verifiers.v1.utils.loaders import resolve_env_config

    taskset = {
        "id": TASKSET_ID,
        "tasks": tasks,
        "task": {"ascl": _ascl_fields(ascl or {})},
        "system_prompt_text": system_prompt,
    }
    env_fields.setdefault("agent", {"runtime": {"type": "subprocess"}})
    return vf_load(resolve_env_config({**env_fields, "taskset": taskset}))


__all__ = ["ASCLHarness", "ASCLTaskset"]


if __name__ == "__main__":  # the lookup server, as verifiers starts it (python -m ...)
    ASCLLookupToolset.run()
