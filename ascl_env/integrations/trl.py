"""ASCL-v0 for TRL's ``GRPOTrainer(environment_factory=...)`` (TRL >= 1.x, transformers >= 5.2).

TRL builds one environment per rollout by calling the factory with no arguments, calls
``reset(**row)`` with the dataset row, exposes the public methods as tools (their type hints and
Google-style docstrings become the tool schema), parses the model's tool calls with the chat
template's response schema, and passes the instances to reward functions as ``environments``.
The env never sees the final answer, so :func:`ascl_reward` scores it: it reads each rollout's
last assistant message and replays the lookups and that text through ``ASCLEnv.step``.

>>> from functools import partial  # doctest: +SKIP
>>> from trl import GRPOConfig, GRPOTrainer
>>> from ascl_env.integrations.trl import ASCLToolEnv, ascl_reward, make_dataset
>>> trainer = GRPOTrainer(model=..., train_dataset=make_dataset(tasks="bundled"),
...     reward_funcs=ascl_reward, environment_factory=partial(ASCLToolEnv, judge="keyword"),
...     args=GRPOConfig(...))

This module imports nothing from TRL; ``make_dataset`` needs ``datasets``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ascl_env.config import ASCLConfig, as_config
from ascl_env.env import ASCLEnv, default_system_prompt
from ascl_env.integrations.scoring import Scored, as_task, lookup, score
from ascl_env.lookup import tool_docstring
from ascl_env.tasks import Task, load_task_spec
from ascl_env.turns import tool_calls_to_text

TASK_COLUMN = "ascl_task"
"""The dataset column holding each row's task as JSON (read by :meth:`ASCLToolEnv.reset`)."""


class ASCLToolEnv:
    """One ASCL rollout for TRL: ``reset(**row)`` and the ``lookup_safety_rules`` tool.

    TRL makes every public method a tool, so this class has exactly one besides ``reset``.

    Keyword arguments are :class:`~ascl_env.config.ASCLConfig` fields (``top_k``, ``judge``,
    ``rewards``, ...); pass them with ``functools.partial`` (picklable, as TRL's async trainer
    needs). After :func:`ascl_reward` scored the rollout, ``outcome`` holds the env's final
    ``info`` fields (``refused``, ``safety``, ``judge_error``, ...).
    """

    def __init__(self, config: ASCLConfig | Mapping[str, Any] | None = None, **fields: Any):
        self.config = as_config(config, **fields)
        if self.config.rules_mode != "tool":
            raise ValueError(
                f"ASCLToolEnv offers the lookup tool, so rules_mode must be 'tool', "
                f"got {self.config.rules_mode!r}"
            )
        self._env: ASCLEnv | None = None
        self.task: Task | None = None
        self.lookups: list[str] = []
        self.retrieved_rule_ids: list[str] = []
        self.scored: Scored | None = None

    def reset(self, **row: Any) -> None:
        """Start a rollout for the dataset row (its ``ascl_task`` column names the task)."""
        if TASK_COLUMN not in row:
            raise ValueError(
                f"dataset row has no {TASK_COLUMN!r} column (columns: {sorted(row)}); "
                "build the dataset with ascl_env.integrations.trl.make_dataset"
            )
        self.task = as_task(row[TASK_COLUMN], f"dataset row column {TASK_COLUMN!r}")
        self.lookups = []
        self.retrieved_rule_ids = []
        self.scored = None
        return None  # the prompt column already holds the user message

    def lookup_safety_rules(self, query: str) -> str:
        if self.task is None:
            raise RuntimeError("lookup_safety_rules called before reset()")
        self.lookups.append(query)
        text, shown = lookup(query, self.config)
        self.retrieved_rule_ids.extend(r for r in shown if r not in self.retrieved_rule_ids)
        return text

    # TRL renders the tool's schema from this docstring: the tool's own description.
    lookup_safety_rules.__doc__ = tool_docstring()

    # Not public: TRL exposes every public method as a tool.
    def _score(self, final_text: str) -> Scored:
        """Score this rollout's lookups and ``final_text`` through ``ASCLEnv.step``."""
        if self.task is None:
            raise RuntimeError("score called before reset()")
        if self._env is None:
            self._env = ASCLEnv(self.config)
        self.scored = score(self.task, final_text, lookups=self.lookups, env=self._env)
        return self.scored

    @property
    def outcome(self) -> dict[str, Any] | None:
        return None if self.scored is None else self.scored.outcome


def final_text(completion: Any) -> str:
    """The text TRL's last assistant message of a rollout stands for, as the env reads it.

    A conversational completion is a list of messages (assistant turns and tool results); the
    last assistant message is the answer. If it still carries ``tool_calls`` (TRL stopped at
    ``max_tool_calling_iterations``) they are written as Hermes calls, so the env sees a lookup
    turn instead of an answer and the episode scores as truncated.
    """
    if isinstance(completion, str):
        return completion
    for message in reversed(list(completion)):
        if message.get("role") == "assistant":
            content = message.get("content") or ""
            if isinstance(content, list):  # content blocks
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            calls = message.get("tool_calls") or []
            return tool_calls_to_text(content, _openai_calls(calls)) if calls else content
    return ""


def _openai_calls(calls: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        function = dict(call.get("function") or call)
        out.append({"type": "function", "function": function})
    return out


def ascl_reward(
    completions: Sequence[Any], environments: Sequence[ASCLToolEnv] | None = None, **_: Any
) -> list[float]:
    """GRPO reward function: the env's reward for each rollout (pass as ``reward_funcs``).

    Needs ``environment_factory`` to build :class:`ASCLToolEnv` instances (TRL passes them as
    ``environments``). Each instance keeps its scored ``outcome`` for logging.
    """
    if environments is None:
        raise ValueError(
            "ascl_reward needs TRL's environments: pass environment_factory=ASCLToolEnv "
            "(or a functools.partial of it) to GRPOTrainer"
        )
    if len(environments) != len(completions):
        raise ValueError(
            f"ascl_reward got {len(completions)} completions but {len(environments)} environments"
        )
    return [
        env._score(final_text(c)).reward for c, env in zip(completions, environments, strict=True)
    ]


def task_row(task: Task, system_prompt: str | None = None) -> dict[str, Any]:
    """One TRL dataset row: a conversational ``prompt`` and the task as JSON in ``ascl_task``."""
    system = default_system_prompt("tool", task.kind) if system_prompt is None else system_prompt
    prompt = [{"role": "system", "content": system}] if system else []
    prompt.append({"role": "user", "content": task.prompt})
    return {"prompt": prompt, TASK_COLUMN: task.model_dump_json()}


def make_dataset(
    tasks: str | Sequence[Task | Mapping[str, Any]] = "bundled",
    *,
    system_prompt: str | None = None,
):
    """A ``datasets.Dataset`` of :func:`task_row` rows for ``GRPOTrainer(train_dataset=...)``.

    ``tasks`` is a ``load_task_spec`` string (``"bundled"``, ``"xstest:PATH"``, ...) or a list
    of tasks. ``system_prompt`` defaults to the env's tool-mode prompt ("" for none).
    """
    from datasets import Dataset

    loaded = load_task_spec(tasks) if isinstance(tasks, str) else tasks
    rows = [task_row(as_task(t, f"tasks[{i}]"), system_prompt) for i, t in enumerate(loaded)]
    if not rows:
        raise ValueError(f"no tasks in {tasks!r}")
    return Dataset.from_list(rows)
