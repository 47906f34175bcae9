"""Weighted, seeded sampling over several task sources."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Protocol

from ascl_env.tasks.model import TASK_KINDS, Task, TaskError, TaskKind


class UniformSource(Protocol):
    """Has ``random() -> float`` in [0, 1): ``random.Random``, ``numpy.random.Generator``."""

    def random(self) -> float: ...


class TaskMixture:
    """Sample tasks from named sources with given weights.

    A draw picks a source with probability proportional to its weight, then a task of that source
    uniformly. With ``kind``, only tasks of that kind count: sources without any are skipped and
    the remaining weights renormalised. Draws use the mixture's own ``random.Random(seed)`` unless
    an ``rng`` is passed (e.g. a Gymnasium env's ``np_random``), so the same seed and the same
    calls give the same tasks.

    Args:
        sources: source name -> its tasks (each non-empty).
        weights: source name -> weight >= 0, for every source; default: proportional to the
            number of tasks (i.e. uniform over all tasks).
        seed: seed of the internal generator.
    """

    def __init__(
        self,
        sources: Mapping[str, Sequence[Task]],
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        if not sources:
            raise TaskError("TaskMixture needs at least one source")
        for name, tasks in sources.items():
            if not tasks:
                raise TaskError(f"TaskMixture source {name!r} has no tasks")
        self.sources = {name: tuple(tasks) for name, tasks in sources.items()}
        if weights is None:
            weights = {name: float(len(tasks)) for name, tasks in self.sources.items()}
        missing = sorted(set(self.sources) - set(weights))
        unknown = sorted(set(weights) - set(self.sources))
        if missing or unknown:
            raise TaskError(
                f"TaskMixture weights must name every source exactly: missing {missing}, "
                f"unknown {unknown}"
            )
        for name, weight in weights.items():
            if not math.isfinite(weight) or weight < 0:
                raise TaskError(
                    f"TaskMixture weight for {name!r} must be finite and >= 0, got {weight}"
                )
        if not any(weights[name] > 0 for name in self.sources):
            raise TaskError("TaskMixture weights are all zero")
        self.weights = {name: float(weights[name]) for name in self.sources}
        self._by_kind: dict[TaskKind, dict[str, tuple[Task, ...]]] = {
            kind: {
                name: picked
                for name, tasks in self.sources.items()
                if (picked := tuple(t for t in tasks if t.kind == kind))
            }
            for kind in TASK_KINDS
        }
        self._by_id: dict[str, Task] = {}
        for task in self.tasks:
            if task.id in self._by_id:
                raise TaskError(f"TaskMixture: task id {task.id!r} appears in two sources or twice")
            self._by_id[task.id] = task
        self._rng = random.Random(seed)

    @property
    def tasks(self) -> tuple[Task, ...]:
        """All tasks, sources in the given order."""
        return tuple(itertools.chain.from_iterable(self.sources.values()))

    def __len__(self) -> int:
        return sum(len(tasks) for tasks in self.sources.values())

    def get(self, task_id: str) -> Task:
        try:
            return self._by_id[task_id]
        except KeyError:
            raise KeyError(f"no task with id {task_id!r} in this mixture") from None

    def reseed(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def sample(self, kind: TaskKind | None = None, rng: UniformSource | None = None) -> Task:
        """One task (of ``kind`` when given); raises ``TaskError`` if no source can supply it."""
        rng = self._rng if rng is None else rng
        pool = self.sources if kind is None else self._by_kind.get(kind)
        if pool is None:
            raise ValueError(f"kind must be one of {TASK_KINDS}, got {kind!r}")
        names = [name for name in pool if self.weights[name] > 0]
        if not names:
            raise TaskError(f"no source with a positive weight has tasks of kind {kind!r}")
        cdf = list(itertools.accumulate(self.weights[name] for name in names))
        pick = min(bisect.bisect_right(cdf, rng.random() * cdf[-1]), len(names) - 1)
        tasks = pool[names[pick]]
        return tasks[min(int(rng.random() * len(tasks)), len(tasks) - 1)]
