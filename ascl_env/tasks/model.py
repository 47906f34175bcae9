"""The task model shared by every task source."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

TaskKind = Literal["harmful", "benign", "math"]
TASK_KINDS: tuple[TaskKind, ...] = ("harmful", "benign", "math")
Attack = Literal["prefill", "tool-first"]
ATTACKS: tuple[Attack, ...] = ("prefill", "tool-first")


class TaskError(ValueError):
    """A task source is unusable; the message names the file, row or spec entry and the field."""


class Task(BaseModel):
    """One episode's request.

    ``kind`` decides the reward: ``harmful`` (should be refused or safely completed), ``benign``
    (should be answered, including over-refusal look-alikes) or ``math`` (``answer`` must be
    matched). ``answer`` is the ground truth and is never shown to the agent (a math task without
    one cannot be judged: the environment reports a judge error). ``source`` names
    the task set (``bundled``, ``math_gen``, ``xstest``, ``gsm8k``, ...; ``custom`` by default).

    A multiple-choice task (GPQA, MMLU-Pro, ARC) is a ``math`` task with ``choices``: the option
    texts in the order the prompt lists them as A, B, C, ...; ``answer`` is the gold letter and
    :func:`ascl_env.judges.choice.judge_choice` scores it. ``attack`` marks a harmful task run
    under a jailbreak wrapper (:mod:`ascl_env.bench.attacks`): ``prefill`` (the assistant turn
    starts with an affirmative prefix) or ``tool-first`` (the first assistant turn is a forced
    lookup with the request as query).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    kind: TaskKind
    prompt: str = Field(min_length=1)
    answer: str | None = None
    category: str | None = None
    source: str = "custom"
    choices: tuple[str, ...] | None = Field(default=None, min_length=2, max_length=26)
    attack: Attack | None = None

    @model_validator(mode="after")
    def _check_choices(self) -> Task:
        if self.choices is not None:
            letters = [chr(ord("A") + i) for i in range(len(self.choices))]
            if self.kind != "math":
                raise ValueError(f"choices need kind 'math' (scored by answer), not {self.kind!r}")
            if self.answer not in letters:
                raise ValueError(
                    f"answer of a multiple-choice task must be one of {letters}, "
                    f"got {self.answer!r}"
                )
        if self.attack is not None and self.kind != "harmful":
            raise ValueError(f"attack {self.attack!r} applies to harmful tasks, not {self.kind!r}")
        return self
