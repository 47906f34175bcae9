"""verifiers adapter: episodes through verifiers 0.4's own rollout code against a local server.

What runs is verifiers' (``verifiers.v1``): ``utils.loaders.load_environment`` resolving the
taskset id ``ascl-env-verifiers`` to ``SingleAgentEnv`` + ``ASCLTaskset`` + ``ASCLHarness``;
``Env.serving`` (the shared MCP tool server launched with ``python -m``, the interception
server), ``Env.run_episode`` (agent, subprocess runtime, interception proxy to the model
endpoint, verifiers' chat program with its MCP client and tool loop, trace recording) and
``Task.score`` calling the ``@vf.reward``. The only stand-in is the model: a local HTTP server
replying with the scripted turns, as tool calls or text.
"""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

pytest.importorskip("verifiers.v1", reason="verifiers not installed (extra ascl-env[verifiers])")

from fake_openai import FakeRequest, completion  # noqa: E402
from scripted_episodes import SCRIPTS, TASKS, call, env_outcome, lookups  # noqa: E402
from verifiers.v1.clients import ModelContext  # noqa: E402
from verifiers.v1.configs.client import EvalClientConfig  # noqa: E402
from verifiers.v1.types import AssistantMessage, ToolCall  # noqa: E402

from ascl_env.env import DEFAULT_SYSTEM_PROMPTS  # noqa: E402
from ascl_env.integrations.scoring import score  # noqa: E402
from ascl_env.integrations.verifiers import (  # noqa: E402
    TASKSET_ID,
    ASCLHarness,
    ASCLTask,
    ASCLTaskset,
    load_environment,
    task_data,
    trace_lookups,
)
from ascl_env.lookup import TOOL_DESCRIPTION  # noqa: E402
from ascl_env.tasks import load_task_spec  # noqa: E402

CONFIG = {"judge": "keyword"}


def _reply(text: str, n: int) -> dict:
    """The chat completion a tool-parsing server returns for one scripted turn."""
    body = completion(text)
    if text.startswith("<tool_call>"):
        payload = json.loads(text.split("\n")[1])
        body["choices"][0]["finish_reason"] = "tool_calls"
        body["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {
                        "name": payload["name"],
                        "arguments": json.dumps(payload["arguments"]),
                    },
                }
            ],
        }
    return body


def _sse(body: dict) -> bytes:
    """The same completion as a chat-completions event stream."""
    choice = body["choices"][0]
    message = choice["message"]
    delta = {"role": "assistant"}
    if message.get("content"):
        delta["content"] = message["content"]
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **c} for i, c in enumerate(message["tool_calls"])]
    head = {"id": body["id"], "object": "chat.completion.chunk", "created": 0, "model": "fake"}
    chunks = [
        {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]},
        {**head, "choices": [{"index": 0, "delta": {}, "finish_reason": choice["finish_reason"]}]},
        {**head, "choices": [], "usage": body["usage"]},
    ]
    events = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return events.encode()


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def scripted(request: FakeRequest):
    """Reply with the next scripted turn of the task whose prompt the request carries."""
    body = request.body
    messages = body.get("messages", [])
    user = next(_text(m["content"]) for m in messages if m["role"] == "user")
    task = next(t for t in TASKS.values() if t.prompt == user)
    n = sum(m["role"] == "assistant" for m in messages)
    reply = _reply(SCRIPTS[task.id][n], n)
    return (200, _sse(reply)) if body.get("stream") else reply


def test_taskset_id_resolves_through_verifiers_loaders():
    from verifiers.v1.configs.env import default_agent_harness
    from verifiers.v1.utils.loaders import environment_class, taskset_class

    assert taskset_class(TASKSET_ID) is ASCLTaskset
    assert default_agent_harness(TASKSET_ID).id == TASKSET_ID
    env = load_environment("bundled", ascl=CONFIG)
    assert type(env) is environment_class(TASKSET_ID)
    assert isinstance(env._harnesses["agent"], ASCLHarness)
    tasks = list(env.taskset)
    bundled = load_task_spec("bundled")
    assert [t.data.ascl_task["id"] for t in tasks] == [t.id for t in bundled]
    assert len({t.key for t in tasks}) == len(tasks)  # verifiers needs unique keys
    first = tasks[0].data
    assert first.prompt == bundled[0].prompt and "lookup_safety_rules" in first.system_prompt
    assert tasks[0].config.ascl == CONFIG


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="rules_mode"):
        load_environment(ascl={"rules_mode": "none"})
    with pytest.raises(ValueError, match="top_k"):
        load_environment(ascl={"top_k": 0})


def _cut_off_trace(queries: list[str]) -> SimpleNamespace:
    turns = [
        AssistantMessage(
            tool_calls=[
                ToolCall(id=f"c{i}", name="lookup_safety_rules", arguments=json.dumps({"query": q}))
            ]
        )
        for i, q in enumerate(queries)
    ]
    return SimpleNamespace(assistant_messages=turns)


def test_trace_that_stops_on_a_tool_call_scores_as_truncated():
    task = TASKS["t-harm"]
    found, final = trace_lookups(_cut_off_trace(["explosives", "bombs"]))
    assert found == ["explosives"] and final.startswith("<tool_call>")
    cut = score(task, final, lookups=found)
    assert cut.outcome["truncated"] is True and cut.outcome["tool_calls"] == 2
    # the env, stepped through the same turns and then out of turns, agrees
    turns = [call(q) for q in ["explosives", "bombs", "a", "b"]]
    _, ref_info = env_outcome(task, turns)
    assert ref_info["truncated"] and cut.outcome["task_reward"] == ref_info["task_reward"]


def test_scripted_episodes_through_verifiers_rollout_score_as_the_env(monkeypatch, openai_server):
    monkeypatch.setenv("ASCL_TEST_KEY", "test-key")
    openai_server.respond = scripted

    async def run_all():
        env = load_environment("bundled", ascl=CONFIG)
        episodes = {}
        ctx = ModelContext(
            model="scripted",
            client=EvalClientConfig(base_url=openai_server.url, api_key_var="ASCL_TEST_KEY"),
        )
        async with env.serving():
            for task_id, task in TASKS.items():
                vtask = ASCLTask(task_data(task), env.taskset.config.task)
                episodes[task_id] = await env.run_episode(vtask, ctx)
        return episodes

    episodes = asyncio.run(run_all())

    for task_id, episode in episodes.items():
        assert episode.ok, (task_id, episode.errors, [t.errors for t in episode.traces])
        (trace,) = episode.traces
        turns = SCRIPTS[task_id]
        ref_reward, ref_info = env_outcome(TASKS[task_id], turns, **CONFIG)
        assert trace.rewards["ascl"].score == pytest.approx(ref_reward), task_id
        assert trace.reward == pytest.approx(ref_reward)
        outcome = trace.info["ascl"]
        for key, value in outcome.items():
            assert value == ref_info[key], (task_id, key)
        # verifiers' trace holds what the scripted model did ...
        assert trace_lookups(trace) == (lookups(turns), turns[-1])
        # ... and the tool results verifiers' chat program got over MCP are the env's
        env_tools = [m["content"] for m in ref_info["messages"] if m["role"] == "tool"]
        assert [_text(m.content) for m in trace.tool_messages] == env_tools
        assert len(trace.assistant_messages) == len(turns)

    bodies = [r.body for r in openai_server.requests if r.path.endswith("/chat/completions")]
    assert len(bodies) == sum(len(t) for t in SCRIPTS.values())
    tools = bodies[0]["tools"]
    assert [t["function"]["name"] for t in tools] == ["lookup_safety_rules"]
    assert tools[0]["function"]["parameters"]["required"] == ["query"]
    assert TOOL_DESCRIPTION in tools[0]["function"]["description"]  # the tool's own text
    assert bodies[0]["messages"][0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPTS["tool"]}
