"""Gymnasium registration of ``ASCL-v0`` (idempotent; does not import the environment module).

Also here: the vector entry point (``gymnasium.make_vec(..., vectorization_mode=
"vector_entry_point")``) and the helper that keeps ``env.spec`` JSON-serialisable.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import gymnasium
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AutoresetMode, SyncVectorEnv

if TYPE_CHECKING:
    from ascl_env.config import ASCLConfig

ENV_ID = "ASCL-v0"


def register_envs() -> None:
    """Register ``ASCL-v0`` once per process; calling it again is a no-op.

    No ``max_episode_steps``: the environment truncates itself at ``max_turns``, which is a
    ``make`` kwarg, so a fixed ``TimeLimit`` wrapper would disagree with it.
    """
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=ENV_ID,
            entry_point="ascl_env.env:ASCLEnv",
            vector_entry_point="ascl_env.registration:ASCLVectorEnv",
        )


def env_spec_kwargs(
    config: ASCLConfig, tasks: Any = None, render_mode: str | None = None
) -> dict[str, Any]:
    """JSON-ready ``make`` kwargs that rebuild an environment with this configuration.

    ``config`` is the environment's final configuration (a ``config=`` object and keyword
    overrides already merged); only fields that differ from the defaults are listed. ``tasks`` is
    the ``tasks=`` argument: a list of ``Task`` objects or dicts becomes a list of plain dicts (a
    string is already part of ``config``). The result always passes ``json.dumps``.
    """
    from ascl_env.tasks import Task

    kwargs = config.model_dump(mode="json", exclude_defaults=True)
    if tasks is not None and not isinstance(tasks, str):
        kwargs["tasks"] = [
            Task.model_validate(task).model_dump(mode="json", exclude_defaults=True)
            for task in tasks
        ]
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return kwargs


def jsonable_spec(spec: EnvSpec, config: ASCLConfig, render_mode: str | None) -> EnvSpec:
    """``spec`` with its kwargs replaced by :func:`env_spec_kwargs` (what ``env.spec`` shows).

    ``gymnasium.make`` records the raw ``make`` kwargs, which may hold an ``ASCLConfig``, ``Task``
    objects or paths that ``EnvSpec.to_json()`` cannot encode. The replacement describes the same
    environment with JSON values only, so ``gymnasium.make(env.spec)`` and
    ``EnvSpec.from_json(env.spec.to_json())`` rebuild it.
    """
    kwargs = env_spec_kwargs(config, spec.kwargs.get("tasks"), render_mode)
    return dataclasses.replace(spec, kwargs=kwargs)


class ASCLVectorEnv(SyncVectorEnv):
    """``num_envs`` ASCL-v0 environments stepped in turn: the vector entry point of ``ASCL-v0``.

    ``gymnasium.make_vec("ASCL-v0", num_envs=n, vectorization_mode="vector_entry_point",
    **kwargs)`` builds it; ``kwargs`` are the environment's ``make`` kwargs (the same for every
    environment), plus the ``SyncVectorEnv`` options ``copy`` and ``autoreset_mode``. Each
    environment is made with ``gymnasium.make``, exactly as in ``vectorization_mode="sync"``.
    """

    def __init__(
        self,
        num_envs: int = 1,
        *,
        copy: bool = True,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        **env_kwargs: Any,
    ) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        self._spec: EnvSpec | None = None
        super().__init__(
            [lambda: gymnasium.make(ENV_ID, **env_kwargs) for _ in range(num_envs)],
            copy=copy,
            autoreset_mode=autoreset_mode,
        )

    @property
    def spec(self) -> EnvSpec | None:
        """The ``make_vec`` spec, its environment kwargs made JSON-ready like ``env.spec``'s."""
        return self._spec

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        if value is not None:
            vector_keys = ("num_envs", "vectorization_mode", "copy", "autoreset_mode")
            kwargs = {k: v for k, v in value.kwargs.items() if k in vector_keys}
            if isinstance(kwargs.get("autoreset_mode"), AutoresetMode):
                kwargs["autoreset_mode"] = kwargs["autoreset_mode"].value
            env_spec = self.envs[0].unwrapped.spec
            kwargs.update(env_spec.kwargs if env_spec is not None else {})
            value = dataclasses.replace(value, kwargs=kwargs)
        self._spec = value
