"""run_openai_episode against a real local HTTP server, with both client kinds and tool modes.

The scripted episodes are the ones the TRL test replays; the reward and outcome must equal the
env's for the same turns.
"""

from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAIServer, FakeRequest, completion
from scripted_episodes import SCRIPTS, TASKS, env_outcome

from ascl_env import ASCLEnv
from ascl_env.episode import arun_openai_episode, run_openai_episode
from ascl_env.integrations.scoring import OUTCOME_FIELDS
from ascl_env.openai_compat import ChatClient


def _native(text: str, turn: int) -> dict:
    """The reply a tool-parsing server sends for a scripted turn."""
    if not text.startswith("<tool_call>"):
        return completion(text)
    call = json.loads(text.split("\n")[1])
    function = {"name": call["name"], "arguments": json.dumps(call["arguments"])}
    tool_call = {"id": f"srv_{turn}", "type": "function", "function": function}
    return completion(None, "tool_calls", [tool_call])


def _scripted(server: FakeOpenAIServer, native: bool) -> FakeOpenAIServer:
    """``server``, answering each request with the scripted turn its messages have reached."""

    def respond(request: FakeRequest) -> dict:
        messages = request.body["messages"]
        user = next(m["content"] for m in messages if m["role"] == "user")
        task_id = next(t for t, task in TASKS.items() if task.prompt == user)
        turn = sum(m["role"] == "assistant" for m in messages)
        text = SCRIPTS[task_id][turn]
        return _native(text, turn) if native else completion(text)

    server.respond = respond
    return server


@pytest.mark.parametrize("native", [True, False], ids=["native", "hermes"])
def test_chat_client_episode_equals_env(openai_server, native):
    fake = _scripted(openai_server, native)
    with ChatClient(fake.url, "fake", deadline_s=20) as client:
        for task_id, turns in SCRIPTS.items():
            mode = "native" if native else "hermes"
            episode = run_openai_episode(client, None, TASKS[task_id], tool_mode=mode, seed=3)
            ref_reward, ref_info = env_outcome(TASKS[task_id], turns)
            assert episode.reward == ref_reward == 1.0
            assert episode.terminated and not episode.truncated
            assert episode.outcome == {key: ref_info[key] for key in OUTCOME_FIELDS}, task_id
            assert [m["role"] for m in episode.messages] == [
                m["role"] for m in ref_info["messages"]
            ]
            assert [t.finish_reason for t in episode.turns][-1] == "stop"
            assert episode.completion_tokens == 7 * len(turns)
        bodies = fake.bodies
    sent_tools = [bool(b.get("tools")) for b in bodies]
    assert all(sent_tools) if native else not any(sent_tools)
    if native:
        # the follow-up request pairs the server's call id with the tool result
        follow = next(b for b in bodies if any(m["role"] == "tool" for m in b["messages"]))
        assistant = next(m for m in follow["messages"] if m.get("tool_calls"))
        tool = next(m for m in follow["messages"] if m["role"] == "tool")
        assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"].strip()
        assert tool["content"].startswith("[")  # the env's rules text


def test_openai_sdk_client_and_env_argument(openai_server):
    openai = pytest.importorskip("openai")
    fake = _scripted(openai_server, native=True)
    client = openai.OpenAI(base_url=fake.url, api_key="x", max_retries=0)
    env = ASCLEnv(tasks=list(TASKS.values()))
    episode = run_openai_episode(
        client, "fake", env, reset_options={"task_id": "t-math"}, temperature=0.0
    )
    assert episode.reward == 1.0 and episode.outcome["correct"] is True
    assert episode.outcome["tool_calls"] == 2
    assert [t.finish_reason for t in episode.turns] == ["tool_calls", "tool_calls", "stop"]
    assert fake.requests[0].body["temperature"] == 0.0


async def test_async_openai_client(openai_server):
    openai = pytest.importorskip("openai")
    fake = _scripted(openai_server, native=True)
    client = openai.AsyncOpenAI(base_url=fake.url, api_key="x", max_retries=0)
    episode = await arun_openai_episode(client, "fake", TASKS["t-harm"])
    assert episode.reward == 1.0 and episode.outcome["refused"] is True


def test_truncation_and_bad_reply(openai_server):
    # always looks up: the env truncates at max_turns
    openai_server.respond = lambda request: completion(SCRIPTS["t-harm"][0])
    with ChatClient(openai_server.url, "fake", deadline_s=20) as client:
        episode = run_openai_episode(
            client, None, TASKS["t-harm"], tool_mode="hermes", config={"max_turns": 2}
        )
        assert episode.truncated and episode.reward == 0.0 and len(episode.turns) == 2
    with pytest.raises(ValueError, match="tool_mode"):
        run_openai_episode(None, "m", TASKS["t-harm"], tool_mode="xml")
    with pytest.raises(ValueError, match="env_or_task"):
        run_openai_episode(None, "m", {"kind": "harmful"})
