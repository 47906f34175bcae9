"""The environment's task pool: tasks indexed by id and kind, and the seeded draw of one."""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from ascl_env._unique import first_duplicate
from ascl_env.errors import short_repr
from ascl_env.tasks.loaders import load_task_spec
from ascl_env.tasks.model import Task


class UniformSource(Protocol):
    """Has ``random() -> float`` in [0, 1): ``random.Random``, ``numpy.random.Generator``."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class TaskPool:
    """Tasks indexed for sampling; immutable, so environments with the same source share one.

    A draw (:meth:`sample`) picks a kind by ``kind_weights`` (default: loaded kinds equally
    likely), then a task of that kind uniformly.
    """

    by_id: Mapping[str, Task]
    by_kind: Mapping[str, tuple[Task, ...]]
    max_prompt_chars: int
    kinds: tuple[str, ...]
    kind_cdf: tuple[float, ...]

    @classmethod
    def build(
        cls,
        tasks: Sequence[Task],
        kinds: Sequence[str] | None = None,
        source: str = "[list of Task]",
        kind_weights: Mapping[str, float] | None = None,
    ) -> TaskPool:
        """Index ``tasks`` (only those of ``kinds`` when given); ``source`` names them in errors."""
        if kinds is not None:
            tasks = [t for t in tasks if t.kind in kinds]
        if not tasks:
            raise ValueError(f"no tasks to run: tasks={source} with task_kinds={kinds}")
        duplicate = first_duplicate(task.id for task in tasks)
        if duplicate is not None:
            raise ValueError(
                f"duplicate task id {duplicate[0]!r} in tasks={source}: "
                "reset(options={'task_id': ...}) needs unique ids"
            )
        by_kind: dict[str, list[Task]] = {}
        for task in tasks:
            by_kind.setdefault(task.kind, []).append(task)
        names, cdf = _kind_distribution(by_kind, kind_weights)
        return cls(
            by_id={task.id: task for task in tasks},
            by_kind={kind: tuple(pool) for kind, pool in by_kind.items()},
            max_prompt_chars=max(len(t.prompt) for t in tasks),
            kinds=tuple(names),
            kind_cdf=tuple(cdf),
        )

    def sample(self, rng: UniformSource, kind: str | None = None) -> Task:
        """One task, drawn with ``rng`` (of ``kind`` when given; ``ValueError`` if none loaded)."""
        if kind is None:
            pool = self.by_kind[self.kinds[bisect.bisect_right(self.kind_cdf, rng.random())]]
        else:
            pool = self.by_kind.get(kind)
            if pool is None:
                raise ValueError(
                    f"options['task_kind']={short_repr(kind)}: no such tasks; loaded kinds are "
                    f"{sorted(self.by_kind)}"
                )
        # floor(u * n) is uniform up to n / 2**53, and ~10x cheaper than rng.integers(n)
        return pool[int(rng.random() * len(pool))]


@lru_cache(maxsize=16)
def spec_pool(
    spec: str,
    kinds: tuple[str, ...] | None,
    kind_weights: tuple[tuple[str, float], ...] | None = None,
) -> TaskPool:
    """The pool of a ``load_task_spec`` string, loaded and indexed once per process (verl builds
    one environment per rollout)."""
    weights = None if kind_weights is None else dict(kind_weights)
    return TaskPool.build(load_task_spec(spec), kinds, repr(spec), weights)


def _kind_distribution(
    by_kind: Mapping[str, Sequence[Task]], weights: Mapping[str, float] | None
) -> tuple[list[str], list[float]]:
    """Kinds with a positive weight and the cumulative distribution over them."""
    if weights is None:
        weights = dict.fromkeys(by_kind, 1.0)
    missing = [k for k, v in weights.items() if v > 0 and k not in by_kind]
    if missing:
        raise ValueError(f"kind_weights gives weight to {missing}, but no such tasks are loaded")
    kinds = sorted(k for k in by_kind if weights.get(k, 0.0) > 0)
    if not kinds:
        raise ValueError(f"kind_weights={weights} gives no loaded kind a positive weight")
    total = sum(weights[k] for k in kinds)
    cdf = list(itertools.accumulate(weights[k] / total for k in kinds))
    cdf[-1] = 1.0  # rng.random() < 1, so rounding can never select past the last kind
    return kinds, cdf
