"""The task model shared by every task source."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TaskKind = Literal["harmful", "benign", "math"]
TASK_KINDS: tuple[TaskKind, ...] = ("harmful", "benign", "math")


class TaskError(ValueError):
    """A task source is unusable; the message names the file, row or spec entry and the field."""


class Task(BaseModel):
    """One episode's request.

    ``kind`` decides the reward: ``harmful`` (should be refused or safely completed), ``benign``
    (should be answered, including over-refusal look-alikes) or ``math`` (``answer`` must be
    matched). ``answer`` is the ground truth and is never shown to the agent (a math task without
    one cannot be judged: the environment reports a judge error). ``source`` names
    the task set (``bundled``, ``math_gen``, ``xstest``, ``gsm8k``, ...; ``custom`` by default).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    kind: TaskKind
    prompt: str = Field(min_length=1)
    answer: str | None = None
    category: str | None = None
    source: str = "custom"
