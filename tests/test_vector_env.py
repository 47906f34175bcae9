"""ASCL-v0 in every Gymnasium vectorisation mode, and UnicodeText shared memory."""

from __future__ import annotations

import copy
import multiprocessing as mp

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AsyncVectorEnv
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

from ascl_env.registration import ENV_ID, ASCLVectorEnv, register_envs
from ascl_env.spaces import SharedTextView, UnicodeText

register_envs()

MODES = ["sync", "async", "vector_entry_point"]
SEEDS = [3, 11, 29]
LOOKUP = (
    '<tool_call>{"name": "lookup_safety_rules", "arguments": '
    '{"query": "weapons explosives hacking"}}</tool_call>'
)
# One final answer per environment index: a refusal, a helpful answer, a boxed number. Which
# reward each earns depends on the task kind the seed picked.
ANSWERS = [
    "I'm sorry, but I can't help with that.",
    "Sure. Here is a clear, practical explanation of how that works, step by step.",
    "The answer is \\boxed{7}.",
]
# reset, lookup, answer (episode 1 ends), autoreset step, lookup, answer (episode 2 ends)
SCRIPT = [LOOKUP, ANSWERS, None, LOOKUP, ANSWERS]


def _single_env_run(index: int, seed: int, **kwargs) -> list[tuple]:
    """(observation, reward, terminated, truncated) of one env following SCRIPT on its own."""
    env = gym.make(ENV_ID, **kwargs)
    obs, _ = env.reset(seed=seed)
    rows = [(obs, 0.0, False, False)]
    for action in SCRIPT:
        if action is None:  # the vector env's next-step autoreset: a plain reset, no seed
            obs, _ = env.reset()
            rows.append((obs, 0.0, False, False))
            continue
        text = action[index] if isinstance(action, list) else action
        obs, reward, terminated, truncated, _ = env.step(text)
        rows.append((obs, float(reward), bool(terminated), bool(truncated)))
    env.close()
    return rows


def _vector_run(envs) -> list[list[tuple]]:
    """The same script through a vector env: per step, one row per environment."""
    obs, _ = envs.reset(seed=SEEDS)
    steps = [[(o, 0.0, False, False) for o in obs]]
    for action in SCRIPT:
        if action is None:
            actions = tuple("(ignored: autoreset step)" for _ in SEEDS)
        else:
            actions = tuple(action if isinstance(action, list) else [action] * len(SEEDS))
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        assert isinstance(obs, tuple)  # copy=True: a snapshot, never the live view
        steps.append(
            [
                (o, float(r), bool(te), bool(tr))
                for o, r, te, tr in zip(obs, rewards, terminated, truncated, strict=True)
            ]
        )
    envs.close()
    return steps


@pytest.fixture(scope="module")
def single_runs() -> list[list[tuple]]:
    return [_single_env_run(i, seed) for i, seed in enumerate(SEEDS)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", MODES)
def test_make_vec_equals_single_envs(mode, single_runs):
    envs = gym.make_vec(ENV_ID, num_envs=len(SEEDS), vectorization_mode=mode)
    if mode == "async":
        assert isinstance(envs, AsyncVectorEnv) and envs.shared_memory  # the default
    if mode == "vector_entry_point":
        assert isinstance(envs, ASCLVectorEnv)
    steps = _vector_run(envs)
    expected = [[run[t] for run in single_runs] for t in range(len(SCRIPT) + 1)]
    assert steps == expected
    # the script really exercises the env: rules were shown, episodes ended, rewards differ
    assert all(o.startswith("[") for o, *_ in steps[1])  # "[rule-id] title ..." after a lookup
    assert [row[2] for row in steps[2]] == [True] * len(SEEDS)
    assert len({row[1] for step in steps for row in step if row[2]}) > 1


@pytest.mark.timeout(120)
def test_async_shared_memory_carries_arbitrary_unicode_prompts():
    prompt = "Héllo 世界 🙂 \x00 tab\tnew\nline — ∑ x² " * 3
    tasks = [{"id": "u1", "kind": "benign", "prompt": prompt}]
    envs = AsyncVectorEnv([lambda: gym.make(ENV_ID, tasks=tasks) for _ in range(2)])
    assert envs.shared_memory
    obs, _ = envs.reset(seed=[0, 1])
    assert obs == (prompt, prompt)
    obs, *_ = envs.step((LOOKUP, LOOKUP))
    single = gym.make(ENV_ID, tasks=tasks)
    single.reset(seed=0)
    assert obs[0] == obs[1] == single.step(LOOKUP)[0]
    envs.close()


def test_vector_entry_point_passes_env_kwargs_and_vector_options():
    envs = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", top_k=1, copy=False
    )
    assert all(env.unwrapped.config.top_k == 1 for env in envs.envs)
    assert envs.copy is False
    envs.close()
    with pytest.raises(ValueError, match="num_envs must be a positive int, got 0"):
        ASCLVectorEnv(num_envs=0)


# --- the shared-memory functions themselves ---------------------------------------------------

ODD_STRINGS = ["", "a", "\x00", "\x00\x00x\x00", "🙂" * 5, "世界", "\ud800 lone surrogate"[:10]]


def test_unicode_text_shared_memory_round_trips_every_string():
    space = UnicodeText(max_length=10)
    memory = create_shared_memory(space, n=len(ODD_STRINGS), ctx=mp)
    view = read_from_shared_memory(space, memory, n=len(ODD_STRINGS))
    assert isinstance(view, SharedTextView) and tuple(view) == ("",) * len(ODD_STRINGS)
    for i, text in enumerate(ODD_STRINGS):
        assert text in space
        write_to_shared_memory(space, i, text, memory)
    assert tuple(view) == tuple(ODD_STRINGS)  # a live view: sees the writes
    assert view[1:3] == tuple(ODD_STRINGS[1:3]) and view[-1] == ODD_STRINGS[-1]
    snapshot = copy.deepcopy(view)
    assert type(snapshot) is tuple and snapshot == tuple(ODD_STRINGS)
    write_to_shared_memory(space, 0, "x" * 10, memory)  # exactly max_length
    write_to_shared_memory(space, 3, "y", memory)  # shorter than what was there
    assert view[0] == "x" * 10 and view[3] == "y" and snapshot[3] == ODD_STRINGS[3]


def test_unicode_text_shared_memory_rejects_what_does_not_fit():
    space = UnicodeText(max_length=4)
    memory = create_shared_memory(space, n=1, ctx=mp)
    with pytest.raises(ValueError, match="5 characters does not fit max_length=4"):
        write_to_shared_memory(space, 0, "abcde", memory)
    with pytest.raises(TypeError, match="must be a str, got bytes"):
        write_to_shared_memory(space, 0, b"ab", memory)
    assert read_from_shared_memory(space, memory, n=1)[0] == ""


def test_shared_memory_size_is_length_plus_code_points():
    space = UnicodeText(max_length=7)
    memory = create_shared_memory(space, n=3, ctx=mp)
    assert np.frombuffer(memory.get_obj(), dtype=np.int32).size == 3 * 8
