"""The bundled task sets: hand-written harmful and benign requests plus generated math."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources

import yaml
from pydantic import ValidationError

from ascl_env._unique import first_duplicate
from ascl_env.errors import format_problems, pydantic_problems, short_repr
from ascl_env.tasks.math_gen import generate_math_tasks
from ascl_env.tasks.model import TASK_KINDS, Task, TaskError, TaskKind

_FILES = {"harmful": "tasks_harmful.yaml", "benign": "tasks_benign.yaml"}


def load_task_yaml(text: str, kind: TaskKind, where: str, source: str = "bundled") -> list[Task]:
    """Parse a ``tasks:`` YAML list (items: ``id``, ``prompt``, optional ``category``)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TaskError(f"{where}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise TaskError(f"{where}: expected a mapping with a 'tasks' list")
    tasks = []
    for index, item in enumerate(data["tasks"]):
        if not isinstance(item, dict):
            raise TaskError(f"{where}: tasks[{index}] is not a mapping")
        try:
            task = Task(kind=kind, source=source, **item)
        except ValidationError as exc:
            problems = format_problems(pydantic_problems(exc))
            label = f"tasks[{index}] (id={short_repr(item.get('id'))})"
            raise TaskError(f"{where}: {label}: {problems}") from exc
        except TypeError as exc:  # a key that is not a string, or kind/source given twice
            raise TaskError(f"{where}: tasks[{index}]: {exc}") from exc
        tasks.append(task)
    duplicate = first_duplicate(task.id for task in tasks)
    if duplicate is not None:
        raise TaskError(f"{where}: tasks[{duplicate[2]}]: duplicate id {duplicate[0]!r}")
    return tasks


@functools.cache
def _bundled(kind: TaskKind) -> tuple[Task, ...]:
    name = _FILES[kind]
    text = resources.files("ascl_env.data").joinpath(name).read_text("utf-8")
    return tuple(load_task_yaml(text, kind, f"ascl_env/data/{name}"))


def bundled_tasks(
    kinds: Iterable[TaskKind] | None = None, n_math: int = 200, seed: int = 0
) -> list[Task]:
    """The bundled tasks, in a stable order (harmful, benign, math) with stable ids.

    Args:
        kinds: which kinds to include (default: all three).
        n_math: how many math word problems to generate.
        seed: the math generator's seed (the harmful and benign sets are fixed).
    """
    wanted = TASK_KINDS if kinds is None else tuple(kinds)
    unknown = [k for k in wanted if k not in TASK_KINDS]
    if unknown:
        raise ValueError(f"unknown task kind(s) {unknown}; expected some of {TASK_KINDS}")
    tasks: list[Task] = []
    for kind in ("harmful", "benign"):
        if kind in wanted:
            tasks.extend(_bundled(kind))
    if "math" in wanted:
        tasks.extend(generate_math_tasks(n_math, seed=seed))
    return tasks
