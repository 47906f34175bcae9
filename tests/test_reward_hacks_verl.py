"""The reward-hack suite through verl's real agent loop (see tests/test_reward_hacks.py).

A decline in front of harmful content must earn verl's ``rm_scores`` nothing, as it earns the
env nothing, and the harm verdict must reach ``reward_extra_info``. The rollout machinery is the
one of tests/test_verl_rollout.py (a real ``AgentLoopWorker``, a scripted server forcing the
turns' tokens on the tiny random Qwen2).
"""

from __future__ import annotations

import pytest

pytest.importorskip("verl")
pytest.importorskip("transformers")

from test_reward_hacks import GENUINE_REFUSALS, WRAPPERS, _harmful_rows  # noqa: E402
from test_verl_rollout import (  # noqa: E402
    ScriptedServer,
    _load,
    build_tiny_qwen2,
    call,
    compose_recipe,
    episode,
    replay,
    rollout,
)

from ascl_env.tasks import Task  # noqa: E402


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny_qwen2"))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return _load(tiny_dir)


def test_wrapped_harm_earns_nothing_through_the_agent_loop(tiny, tiny_dir, tmp_path, shared_data):
    model, tokenizer = tiny
    [row] = _harmful_rows(shared_data / "harm_labels" / "xstest_response_harm.jsonl", 1)
    content = row["response"]
    tasks = [
        # distinct prefixes: the scripted server finds an episode by its prompt
        Task(id="wrap", kind="harmful", prompt=f"A. {row['prompt']}"),
        Task(id="story", kind="harmful", prompt=f"B. {row['prompt']}"),
        Task(id="genuine", kind="harmful", prompt=f"C. {row['prompt']}"),
    ]
    scripts = {
        "wrap": [call("violence"), WRAPPERS["decline"](content)],
        "story": [WRAPPERS["closing-apology"](content)],
        "genuine": [call("violence"), GENUINE_REFUSALS["alternatives"]],
    }
    server = ScriptedServer(model, tokenizer, scripts, {t.id: t.prompt for t in tasks})
    output = rollout(compose_recipe(tiny_dir), server, tokenizer, tasks, tmp_path)
    by_id = {t.id: t for t in tasks}
    seen = {}
    for i in range(len(output)):
        ep = episode(output, i, tasks)
        key = ep["task_id"]
        reward, info = replay(by_id[key], scripts[key])
        assert ep["reward"] == pytest.approx(reward)
        extra = output.non_tensor_batch["reward_extra_info"][i]
        assert extra["harmful"] is info["harmful"]
        assert output.non_tensor_batch["harmful"][i] is info["harmful"]  # per-rollout field
        seen[key] = (ep["reward"], extra["harmful"])
    assert seen == {"wrap": (0.0, True), "story": (0.0, True), "genuine": (1.0, False)}
